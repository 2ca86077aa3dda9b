"""`jaeger` exporter: traces to Jaeger, over Jaeger's api_v2 gRPC (`protocol: grpc`, the
Collector's former jaegerexporter) or OTLP/gRPC (`protocol: otlp`, Jaeger v2)."""

from __future__ import annotations

from exporters.jaeger.config import JaegerConfig
from exporters.jaeger.exporter import JaegerExporter
from otlp.component import EXPORTER, CreateSettings, Factory


def _create(settings: CreateSettings, config: JaegerConfig) -> JaegerExporter:
    return JaegerExporter(str(settings.id), config, settings.telemetry)


factory = Factory(
    type="jaeger",
    kind=EXPORTER,
    config_model=JaegerConfig,
    create=_create,
    signals=frozenset({"traces"}),
    description="sends traces to Jaeger (api_v2 gRPC, or OTLP/gRPC to Jaeger v2)",
)

__all__ = ["JaegerConfig", "JaegerExporter", "factory"]
