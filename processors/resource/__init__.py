from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.resource.config import ResourceConfig
from processors.resource.processor import ResourceProcessor


def _create(settings: CreateSettings, config: ResourceConfig) -> ResourceProcessor:
    return ResourceProcessor(str(settings.id), config, settings.telemetry)


factory = Factory(type="resource", kind=PROCESSOR, config_model=ResourceConfig, create=_create)
