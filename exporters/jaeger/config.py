"""Config of the `jaeger` exporter: where the spans go (`protocol`, `endpoint`), the gRPC
client settings the Collector's configgrpc client has (tls, headers, compression, keepalive,
...), and exporterhelper's timeout / sending_queue / retry_on_failure.

`protocol: grpc` speaks Jaeger's own api_v2 (`jaeger.api_v2.CollectorService/PostSpans`,
Jaeger collectors listen on 14250), as the Collector's former jaegerexporter did;
`protocol: otlp` sends OTLP over gRPC, which Jaeger v2 (and v1.35+) accepts on 4317.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from exporters.otlp.config import Compression, OTLPGrpcConfig

Protocol = Literal["grpc", "otlp"]


class JaegerConfig(OTLPGrpcConfig):
    """OTLPGrpcConfig's keys (configgrpc client + exporterhelper) plus `protocol`; being an
    OTLPGrpcConfig, it configures the `otlp` exporter's code directly for `protocol: otlp`."""

    protocol: Protocol = "grpc"
    # None: the protocol's default, resolved below: no compression for api_v2 (the
    # jaegerexporter's default; not every Jaeger v1 collector registers a gzip decoder),
    # gzip for OTLP (the otlp exporter's default)
    compression: Compression | None = None

    @model_validator(mode="after")
    def _default_compression(self) -> JaegerConfig:
        if self.compression is None:
            self.compression = "gzip" if self.protocol == "otlp" else "none"
        return self
