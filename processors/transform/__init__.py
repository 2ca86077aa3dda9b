from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.transform.config import TransformConfig
from processors.transform.processor import TransformProcessor


def _create(settings: CreateSettings, config: TransformConfig) -> TransformProcessor:
    return TransformProcessor(str(settings.id), config, settings.telemetry)


factory = Factory(type="transform", kind=PROCESSOR, config_model=TransformConfig, create=_create)
