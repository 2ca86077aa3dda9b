"""`otlp` exporter (the Collector's otlpexporter): OTLP over gRPC to the next hop. Also
registered as `otlp_grpc`, the name the Collector 0.165 gives it (exporters.otlp.alias)."""

from __future__ import annotations

from exporters.otlp.config import OTLPGrpcConfig, TLSClientConfig
from exporters.otlp.exporter import OTLPGrpcExporter
from otlp.component import EXPORTER, CreateSettings, Factory


def _create(settings: CreateSettings, config: OTLPGrpcConfig) -> OTLPGrpcExporter:
    return OTLPGrpcExporter(str(settings.id), config, settings.telemetry)


factory = Factory(
    type="otlp",
    kind=EXPORTER,
    config_model=OTLPGrpcConfig,
    create=_create,
    description="forwards OTLP over gRPC (sidecar → gateway, or to any OTLP backend)",
)

__all__ = ["OTLPGrpcConfig", "OTLPGrpcExporter", "TLSClientConfig", "factory"]
