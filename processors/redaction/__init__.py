from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.redaction.config import RedactionConfig
from processors.redaction.processor import RedactionProcessor


def _create(settings: CreateSettings, config: RedactionConfig) -> RedactionProcessor:
    return RedactionProcessor(str(settings.id), config, settings.telemetry)


factory = Factory(type="redaction", kind=PROCESSOR, config_model=RedactionConfig, create=_create)
