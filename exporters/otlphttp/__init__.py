"""`otlphttp` exporter (the Collector's otlphttpexporter): OTLP/HTTP with protobuf or JSON
bodies. Also registered as `otlp_http`, its Collector 0.165 name (exporters.otlphttp.alias)."""

from __future__ import annotations

from exporters.otlphttp.config import OTLPHttpConfig
from exporters.otlphttp.exporter import OTLPHttpExporter
from otlp.component import EXPORTER, CreateSettings, Factory


def _create(settings: CreateSettings, config: OTLPHttpConfig) -> OTLPHttpExporter:
    return OTLPHttpExporter(str(settings.id), config, settings.telemetry, settings.signals)


factory = Factory(
    type="otlphttp",
    kind=EXPORTER,
    config_model=OTLPHttpConfig,
    create=_create,
    description="forwards OTLP over HTTP (protobuf or JSON)",
)

__all__ = ["OTLPHttpConfig", "OTLPHttpExporter", "factory"]
