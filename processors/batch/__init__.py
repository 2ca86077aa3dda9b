from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.batch.config import BatchConfig
from processors.batch.processor import BatchProcessor


def _create(settings: CreateSettings, config: BatchConfig) -> BatchProcessor:
    return BatchProcessor(str(settings.id), config, settings.telemetry)


factory = Factory(type="batch", kind=PROCESSOR, config_model=BatchConfig, create=_create)
