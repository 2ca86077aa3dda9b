from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.probabilistic_sampler.config import ProbabilisticSamplerConfig
from processors.probabilistic_sampler.processor import ProbabilisticSamplerProcessor


def _create(
    settings: CreateSettings, config: ProbabilisticSamplerConfig
) -> ProbabilisticSamplerProcessor:
    return ProbabilisticSamplerProcessor(str(settings.id), config, settings.telemetry)


factory = Factory(
    type="probabilistic_sampler",
    kind=PROCESSOR,
    config_model=ProbabilisticSamplerConfig,
    create=_create,
    signals=frozenset({"traces", "logs"}),
)
