"""health_check extension (the Collector contrib healthcheckextension, legacy v1 behaviour)."""

from __future__ import annotations

from extensions.health_check.config import HealthCheckConfig
from extensions.health_check.extension import HealthCheckExtension
from otlp.component import EXTENSION, CreateSettings, Factory


def _create(settings: CreateSettings, config: HealthCheckConfig) -> HealthCheckExtension:
    return HealthCheckExtension(str(settings.id), config)


factory = Factory(
    type="health_check",
    kind=EXTENSION,
    config_model=HealthCheckConfig,
    create=_create,
    signals=frozenset(),
    description="HTTP health probe: 200 when every pipeline is up, 503 otherwise",
)

__all__ = ["HealthCheckConfig", "HealthCheckExtension", "factory"]
