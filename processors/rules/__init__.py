from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.rules.config import RulesConfig
from processors.rules.processor import RulesProcessor, shared_engine


def _create(settings: CreateSettings, config: RulesConfig) -> RulesProcessor:
    engine = shared_engine(str(settings.id), config, settings.telemetry)
    return RulesProcessor(str(settings.id), engine, settings.telemetry, settings.signals)


factory = Factory(type="rules", kind=PROCESSOR, config_model=RulesConfig, create=_create)
