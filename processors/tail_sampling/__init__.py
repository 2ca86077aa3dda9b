from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.tail_sampling.config import TailSamplingConfig
from processors.tail_sampling.processor import TailSamplingProcessor


def _create(settings: CreateSettings, config: TailSamplingConfig) -> TailSamplingProcessor:
    return TailSamplingProcessor(str(settings.id), config, settings.telemetry)


factory = Factory(
    type="tail_sampling",
    kind=PROCESSOR,
    config_model=TailSamplingConfig,
    create=_create,
    signals=frozenset({"traces"}),
)
