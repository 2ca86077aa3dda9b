"""`loadbalancing` exporter (the Collector contrib loadbalancingexporter): trace-ID (or
service, resource, metric, stream) aware routing over a consistent-hash ring of OTLP
backends. Also registered as `load_balancing`, the contrib's newer name."""

from __future__ import annotations

from exporters.loadbalancing.config import LoadBalancingConfig
from exporters.loadbalancing.exporter import LoadBalancingExporter
from otlp.component import EXPORTER, CreateSettings, Factory


def _create(settings: CreateSettings, config: LoadBalancingConfig) -> LoadBalancingExporter:
    return LoadBalancingExporter(str(settings.id), config, settings.telemetry, settings.signals)


factory = Factory(
    type="loadbalancing",
    kind=EXPORTER,
    config_model=LoadBalancingConfig,
    create=_create,
    description="routes by trace ID / service / resource / metric / stream to OTLP backends",
)

__all__ = ["LoadBalancingConfig", "LoadBalancingExporter", "factory"]
