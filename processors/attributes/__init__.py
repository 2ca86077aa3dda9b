from otlp.component import PROCESSOR, CreateSettings, Factory
from otlp.errors import ConfigError
from processors.attributes.config import AttributesConfig
from processors.attributes.processor import AttributesProcessor


def _create(settings: CreateSettings, config: AttributesConfig) -> AttributesProcessor:
    try:
        return AttributesProcessor(str(settings.id), config, settings.telemetry, settings.signals)
    except ValueError as exc:
        raise ConfigError(f"processors.{settings.id}: {exc}") from None


factory = Factory(type="attributes", kind=PROCESSOR, config_model=AttributesConfig, create=_create)
