from otlp.component import PROCESSOR, CreateSettings, Factory
from processors.memory_limiter.config import MemoryLimiterConfig
from processors.memory_limiter.processor import MemoryLimiter


def _create(settings: CreateSettings, config: MemoryLimiterConfig) -> MemoryLimiter:
    return MemoryLimiter(str(settings.id), config, settings.telemetry)


factory = Factory(
    type="memory_limiter", kind=PROCESSOR, config_model=MemoryLimiterConfig, create=_create
)
