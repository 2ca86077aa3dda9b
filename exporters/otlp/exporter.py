"""`otlp` exporter: Export*ServiceRequest over gRPC (grpc.aio), the columnar batch encoded
once to protobuf bytes and sent through a generic unary call (no message round trip)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from exporters.otlp.common import RESPONSES, PartialSuccess
from exporters.otlp.config import OTLPGrpcConfig, TLSClientConfig
from exporters.otlp.errors import from_rpc_error
from otlp.batch import Batch
from otlp.component import Exporter, Host
from otlp.encode import encode_protobuf
from otlp.errors import ConfigError, RetryableError
from otlp.telemetry import Telemetry

log = logging.getLogger("airis.exporter.otlp")

METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


def grpc_target(endpoint: str) -> tuple[str, bool | None]:
    """configgrpc: `host:port`, or a URL whose scheme says TLS (https) or not (http);
    `unix:` and `dns:` targets pass through to grpc. Returns (target, tls-from-scheme)."""
    text = endpoint.strip()
    for scheme, secure in (("https://", True), ("http://", False)):
        if text.startswith(scheme):
            return text[len(scheme) :].rstrip("/"), secure
    return text, None


def _read(path: str, inline: str) -> bytes | None:
    if path:
        return Path(path).read_bytes()
    return inline.encode() if inline else None


def channel_credentials(tls: TLSClientConfig) -> grpc.ChannelCredentials:
    cert, key = _read(tls.cert_file, tls.cert_pem), _read(tls.key_file, tls.key_pem)
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file, tls.ca_pem),
        private_key=key if cert and key else None,
        certificate_chain=cert if cert and key else None,
    )


def channel_options(config: OTLPGrpcConfig) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.lb_policy_name", config.balancer_name or "round_robin"),
        # telemetry requests may be large; the server sets its own limit
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
    ]
    if config.tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", config.tls.server_name_override))
    if config.authority:
        options.append(("grpc.default_authority", config.authority))
    if config.keepalive is not None:
        ka = config.keepalive
        if ka.time:
            options.append(("grpc.keepalive_time_ms", int(ka.time * 1000)))
        if ka.timeout:
            options.append(("grpc.keepalive_timeout_ms", int(ka.timeout * 1000)))
        options.append(("grpc.keepalive_permit_without_calls", int(ka.permit_without_stream)))
    return options


def compression_of(exporter_id: str, name: str) -> grpc.Compression:
    if name in ("", "none"):
        return grpc.Compression.NoCompression
    if name == "gzip":
        return grpc.Compression.Gzip
    if name in ("deflate", "zlib"):
        return grpc.Compression.Deflate
    # grpcio has no zstd/snappy/lz4 codec: gzip keeps the data compressed and every OTLP
    # server must accept it, so a Collector config using them still works
    log.warning(
        "grpcio cannot compress with this codec; using gzip",
        extra={"exporter": exporter_id, "compression": name},
    )
    return grpc.Compression.Gzip


class OTLPGrpcExporter(Exporter):
    def __init__(self, exporter_id: str, config: OTLPGrpcConfig, telemetry: Telemetry) -> None:
        if not config.endpoint:
            raise ConfigError(f"exporters::{exporter_id}: endpoint: must be set")
        self.id = exporter_id
        self.config = config
        self.target, scheme_tls = grpc_target(config.endpoint)
        self.secure = not config.tls.insecure if scheme_tls is None else scheme_tls
        self.metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self.compression = compression_of(exporter_id, config.compression)
        self.partial = PartialSuccess(exporter_id, telemetry)
        self._channel: aio.Channel | None = None
        self._calls: dict[str, Any] = {}

    async def start(self, host: Host | None = None) -> None:
        options = channel_options(self.config)
        if self.secure:
            self._channel = aio.secure_channel(
                self.target, channel_credentials(self.config.tls), options=options
            )
        else:
            self._channel = aio.insecure_channel(self.target, options=options)
        self._calls = {
            signal: self._channel.unary_unary(method) for signal, method in METHODS.items()
        }

    async def shutdown(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=1.0)
            self._channel = None

    async def export(self, batch: Batch) -> None:
        await self.send(batch.signal, encode_protobuf(batch))

    async def send(self, signal: str, body: bytes) -> None:
        """Send one serialized request; the loadbalancing exporter calls this directly."""
        call = self._calls.get(signal)
        if call is None:
            raise RetryableError(f"exporter {self.id} is not started", retry_after=1.0)
        try:
            reply: bytes = await call(
                body,
                timeout=self.config.timeout or None,
                metadata=self.metadata,
                compression=self.compression,
                wait_for_ready=self.config.wait_for_ready,
            )
        except aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        response = RESPONSES[signal]()
        try:
            response.ParseFromString(reply)
        except Exception:  # the data was accepted; an odd reply body is not a failure
            return
        self.partial.record(signal, response)
