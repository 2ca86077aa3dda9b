from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.filter.config import FilterConfig
from processors.filter.processor import FilterProcessor


def _create(settings: CreateSettings, config: FilterConfig) -> FilterProcessor:
    return FilterProcessor(str(settings.id), config, settings.telemetry)


factory = Factory(type="filter", kind=PROCESSOR, config_model=FilterConfig, create=_create)
