"""OTLP/gRPC: the three Export services on a grpc.aio server, taking the request as raw bytes.

Handlers are registered without a request deserializer, so grpcio hands us the (already
gzip-decompressed, size-checked) message bytes and decoding and its errors are ours. A
signal without a pipeline has no service registered, so grpc answers UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn

import grpc
from grpc import aio

from otlp.auth import lower_headers
from otlp.errors import InvalidRequestError
from receivers.otlp import status
from receivers.otlp.config import GRPCServerConfig, split_endpoint

if TYPE_CHECKING:
    from receivers.otlp.receiver import OTLPReceiver

log = logging.getLogger("airis.receiver.otlp")

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}
STATUS_DETAILS_KEY = "grpc-status-details-bin"
GRACE_SECONDS = 5.0

Handler = Callable[[bytes, aio.ServicerContext], Awaitable[bytes]]


def server_options(cfg: GRPCServerConfig, reuse_port: bool) -> list[tuple[str, int]]:
    """configgrpc settings as grpc-core channel arguments (0 keeps grpc's default)."""
    ms = 1000
    sp = cfg.keepalive.server_parameters
    ep = cfg.keepalive.enforcement_policy
    options = [
        ("grpc.max_receive_message_length", cfg.max_recv_bytes()),
        # grpc-core sets SO_REUSEPORT by default; a second process must not silently share
        # the port unless workers are configured
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.keepalive_permit_without_calls", int(ep.permit_without_stream)),
    ]
    optional = (
        ("grpc.max_concurrent_streams", cfg.max_concurrent_streams),
        # Go's read buffer has no grpc-core twin; the closest is the largest read per syscall
        ("grpc.experimental.tcp_max_read_chunk_size", cfg.read_buffer_size),
        ("grpc.http2.write_buffer_size", cfg.write_buffer_size),
        ("grpc.max_connection_idle_ms", int(sp.max_connection_idle * ms)),
        ("grpc.max_connection_age_ms", int(sp.max_connection_age * ms)),
        ("grpc.max_connection_age_grace_ms", int(sp.max_connection_age_grace * ms)),
        ("grpc.keepalive_time_ms", int(sp.time * ms)),
        ("grpc.keepalive_timeout_ms", int(sp.timeout * ms)),
        ("grpc.http2.min_ping_interval_without_data_ms", int(ep.min_time * ms)),
        ("grpc.max_allowed_incoming_connections", cfg.max_connections),
        ("grpc.max_metadata_size", cfg.max_header_bytes),
    )
    options.extend((name, value) for name, value in optional if value > 0)
    return options


def bind_address(cfg: GRPCServerConfig) -> str:
    if cfg.transport == "unix":
        return "unix:" + cfg.endpoint
    host, port = split_endpoint(cfg.endpoint)
    if not host:
        host = "0.0.0.0" if cfg.transport == "tcp4" else "::"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _metadata(context: aio.ServicerContext) -> dict[str, str]:
    """include_metadata: `client.address` and `metadata.<key>` (binary keys left out)."""
    out: dict[str, str] = {}
    peer = context.peer() or ""
    # "ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "unix:/path"
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        out["client.address"] = address.rpartition(":")[0].strip("[]")
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            name = "metadata." + key
            out[name] = f"{out[name]},{value}" if name in out else value
    return out


async def _abort(context: aio.ServicerContext, failure: status.Failure) -> NoReturn:
    await context.abort(
        failure.grpc_code,
        failure.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.status_protobuf(failure)),),
    )
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class GRPCServer:
    def __init__(self, receiver: OTLPReceiver, cfg: GRPCServerConfig) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.port: int | None = None
        self._server: aio.Server | None = None

    def _handler(self, signal: str) -> Handler:
        export = self.receiver.export
        include_metadata = self.cfg.include_metadata
        receiver = self.receiver
        secured = "grpc" in receiver.authenticators

        async def handle(request: bytes, context: aio.ServicerContext) -> bytes:
            principal = None
            if secured:
                headers = lower_headers(context.invocation_metadata() or ())
                try:
                    principal = await receiver.authenticate("grpc", signal, headers)
                except status.Failure as failure:
                    await _abort(context, failure)
            try:
                batch = receiver.decode(signal, request, False, "grpc")
            except InvalidRequestError as exc:
                await _abort(context, status.invalid(str(exc)))
            except Exception as exc:
                # a decoder bug on odd input: the same bytes will fail again, do not retry
                log.exception("decoding failed", extra={"receiver": self.receiver.id})
                await _abort(context, status.invalid(f"cannot decode request: {exc}"))
            if include_metadata:
                batch.context.update(_metadata(context))
            try:
                partial = await export(signal, batch, "grpc", principal, len(request))
            except status.Failure as failure:
                await _abort(context, failure)
            if partial is None:
                return b""  # an empty Export*ServiceResponse
            return status.partial_success_response(signal, *partial).SerializeToString()

        return handle

    async def start(self) -> None:
        cfg = self.cfg
        server = aio.server(options=server_options(cfg, self.receiver.reuse_port))
        for signal in self.receiver.consumers:
            if signal in SERVICES:
                # no deserializer/serializer: the handler takes and returns bytes
                handler = grpc.unary_unary_rpc_method_handler(self._handler(signal))
                server.add_registered_method_handlers(SERVICES[signal], {"Export": handler})
        address = bind_address(cfg)
        try:
            if cfg.tls is not None:
                from receivers.otlp.tls import grpc_credentials

                port = server.add_secure_port(address, grpc_credentials(cfg.tls))
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"otlp receiver: cannot listen for gRPC on {address}: {exc}") from None
        if port == 0 and cfg.transport != "unix":
            raise OSError(f"otlp receiver: cannot listen for gRPC on {address}")
        await server.start()
        self._server, self.port = server, port
        log.info(
            "Starting GRPC server",
            extra={"receiver": self.receiver.id, "endpoint": address, "port": port},
        )

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(GRACE_SECONDS)
            self._server = None
