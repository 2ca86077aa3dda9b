"""The `otlp` and `otlphttp` exporters against stand-in next hops: what they send (the
request, headers, compression) and how the next hop's answers map to our errors (OTLP
specification, "Failures"). The stand-ins are minimal servers (a grpc.aio generic handler
and an asyncio HTTP server) because the real Collector cannot be made to answer with a
chosen status, RetryInfo or partial_success on demand; the chain and interop tests cover
real peers."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import zstandard
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from pydantic import ValidationError

from exporters.otlp import OTLPGrpcConfig, OTLPGrpcExporter
from exporters.otlp.errors import from_http, parse_retry_after
from exporters.otlphttp import OTLPHttpConfig, OTLPHttpExporter
from otlp import decode, jsonpb, registry
from otlp.errors import PermanentError, RetryableError
from otlp.telemetry import Telemetry
from tests.otlp_samples import assert_batches_equal, sample_traces

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _batch() -> Any:
    return decode.decode_traces(sample_traces())


def _status(code: grpc.StatusCode, retry: float | None) -> bytes:
    status = status_pb2.Status(code=code.value[0], message="refused")
    if retry is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry * 1e9))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(detail)
    return status.SerializeToString()


@dataclass
class GrpcPeer:
    port: int = 0
    answer: tuple[grpc.StatusCode, float | None] | None = None
    partial: int = 0
    requests: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
async def grpc_peer() -> AsyncIterator[GrpcPeer]:
    peer = GrpcPeer()

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        peer.requests.append((request, dict(context.invocation_metadata() or ())))
        if peer.answer is not None:
            code, retry = peer.answer
            context.set_trailing_metadata((("grpc-status-details-bin", _status(code, retry)),))
            await context.abort(code, "refused")
        response = ExportTraceServiceResponse()
        if peer.partial:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=peer.partial, error_message="too old")
            )
        return response.SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    peer.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield peer
    await server.stop(None)


async def _grpc_exporter(peer: GrpcPeer, **extra: Any) -> tuple[OTLPGrpcExporter, Telemetry]:
    telemetry = Telemetry()
    config = OTLPGrpcConfig.model_validate(
        {"endpoint": f"127.0.0.1:{peer.port}", "tls": {"insecure": True}, **extra}
    )
    exporter = OTLPGrpcExporter("otlp", config, telemetry)
    await exporter.start()
    return exporter, telemetry


async def test_grpc_sends_the_batch_with_headers(grpc_peer: GrpcPeer) -> None:
    exporter, _ = await _grpc_exporter(grpc_peer, headers={"X-Tenant": "a"})
    try:
        batch = _batch()
        await exporter.export(batch)
    finally:
        await exporter.shutdown()
    body, metadata = grpc_peer.requests[0]
    assert metadata["x-tenant"] == "a"
    assert_batches_equal(decode.decode_protobuf("traces", body), batch)


@pytest.mark.parametrize(
    ("code", "retry", "expected", "delay"),
    [
        (grpc.StatusCode.UNAVAILABLE, 2.5, RetryableError, 2.5),
        (grpc.StatusCode.UNAVAILABLE, None, RetryableError, None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, RetryableError, None),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 1.0, RetryableError, 1.0),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, PermanentError, None),
        (grpc.StatusCode.INVALID_ARGUMENT, None, PermanentError, None),
        (grpc.StatusCode.UNAUTHENTICATED, None, PermanentError, None),
    ],
)
async def test_grpc_error_mapping(
    grpc_peer: GrpcPeer, code: grpc.StatusCode, retry: float | None, expected: type, delay: Any
) -> None:
    grpc_peer.answer = (code, retry)
    exporter, _ = await _grpc_exporter(grpc_peer)
    try:
        with pytest.raises(expected) as info:
            await exporter.export(_batch())
    finally:
        await exporter.shutdown()
    if expected is RetryableError:
        assert info.value.retry_after == delay


async def test_grpc_partial_success_is_counted(grpc_peer: GrpcPeer) -> None:
    grpc_peer.partial = 3
    exporter, telemetry = await _grpc_exporter(grpc_peer)
    try:
        await exporter.export(_batch())  # not an error: retrying would duplicate the rest
        await exporter.export(_batch())
    finally:
        await exporter.shutdown()
    value = telemetry.value(
        "airis_exporter_partial_success_rejected_items_total", exporter="otlp", data_type="traces"
    )
    assert value == 6


async def test_grpc_unreachable_is_retryable() -> None:
    config = OTLPGrpcConfig.model_validate(
        {"endpoint": "127.0.0.1:1", "tls": {"insecure": True}, "timeout": "2s"}
    )
    exporter = OTLPGrpcExporter("otlp", config, Telemetry())
    await exporter.start()
    try:
        with pytest.raises(RetryableError):
            await exporter.export(_batch())
    finally:
        await exporter.shutdown()


# ---- HTTP -----------------------------------------------------------------------------------


@dataclass
class HttpPeer:
    port: int = 0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = "application/x-protobuf"
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def http_peer() -> AsyncIterator[HttpPeer]:
    peer = HttpPeer()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            lines = head.decode().split("\r\n")
            path = lines[0].split()[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            peer.requests.append((path, headers, body))
            extra = "".join(f"{k}: {v}\r\n" for k, v in peer.headers.items())
            writer.write(
                f"HTTP/1.1 {peer.status} X\r\nContent-Type: {peer.content_type}\r\n{extra}"
                f"Content-Length: {len(peer.body)}\r\n\r\n".encode()
                + peer.body
            )
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    yield peer
    server.close()
    await server.wait_closed()


async def _http_exporter(peer: HttpPeer, **extra: Any) -> tuple[OTLPHttpExporter, Telemetry]:
    telemetry = Telemetry()
    config = OTLPHttpConfig.model_validate({"endpoint": f"http://127.0.0.1:{peer.port}", **extra})
    exporter = OTLPHttpExporter("otlphttp", config, telemetry, {"traces"})
    await exporter.start()
    return exporter, telemetry


def _decompress(headers: dict[str, str], body: bytes) -> bytes:
    encoding = headers.get("content-encoding")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 26)
    return body


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("encoding", ["proto", "json"])
async def test_http_sends_the_batch(http_peer: HttpPeer, compression: str, encoding: str) -> None:
    exporter, _ = await _http_exporter(
        http_peer, compression=compression, encoding=encoding, headers={"X-Tenant": "a"}
    )
    try:
        batch = _batch()
        await exporter.export(batch)
    finally:
        await exporter.shutdown()
    path, headers, body = http_peer.requests[0]
    assert path == "/v1/traces"
    assert headers["x-tenant"] == "a"
    assert headers.get("content-encoding") == (None if compression == "none" else compression)
    raw = _decompress(headers, body)
    if encoding == "json":
        assert headers["content-type"] == "application/json"
        got = decode.decode_traces(jsonpb.parse_request("traces", raw))
    else:
        assert headers["content-type"] == "application/x-protobuf"
        got = decode.decode_protobuf("traces", raw)
    assert_batches_equal(got, batch)


async def test_http_signal_endpoint_overrides_base(http_peer: HttpPeer) -> None:
    exporter, _ = await _http_exporter(
        http_peer, traces_endpoint=f"http://127.0.0.1:{http_peer.port}/custom/path"
    )
    try:
        await exporter.export(_batch())
    finally:
        await exporter.shutdown()
    assert http_peer.requests[0][0] == "/custom/path"


@pytest.mark.parametrize(
    ("status", "retry_after", "expected", "delay"),
    [
        (503, "3", RetryableError, 3.0),
        (429, "1", RetryableError, 1.0),
        (502, None, RetryableError, None),
        (504, None, RetryableError, None),
        (400, None, PermanentError, None),
        (401, None, PermanentError, None),
        (404, None, PermanentError, None),
        (500, None, PermanentError, None),
    ],
)
async def test_http_error_mapping(
    http_peer: HttpPeer, status: int, retry_after: str | None, expected: type, delay: Any
) -> None:
    http_peer.status = status
    http_peer.body = status_pb2.Status(code=3, message="bad things").SerializeToString()
    if retry_after:
        http_peer.headers["Retry-After"] = retry_after
    exporter, _ = await _http_exporter(http_peer)
    try:
        with pytest.raises(expected) as info:
            await exporter.export(_batch())
    finally:
        await exporter.shutdown()
    assert "bad things" in str(info.value)
    if expected is RetryableError:
        assert info.value.retry_after == delay


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
async def test_http_partial_success_is_counted(http_peer: HttpPeer, content_type: str) -> None:
    http_peer.content_type = content_type
    if content_type == "application/json":
        http_peer.body = b'{"partialSuccess": {"rejectedSpans": "4", "errorMessage": "old"}}'
    else:
        http_peer.body = ExportTraceServiceResponse(
            partial_success=ExportTracePartialSuccess(rejected_spans=4, error_message="old")
        ).SerializeToString()
    exporter, telemetry = await _http_exporter(http_peer)
    try:
        await exporter.export(_batch())
    finally:
        await exporter.shutdown()
    value = telemetry.value(
        "airis_exporter_partial_success_rejected_items_total",
        exporter="otlphttp",
        data_type="traces",
    )
    assert value == 4


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("soon") is None
    assert isinstance(from_http(503, "", "Thu, 01 Jan 2099 00:00:00 GMT"), RetryableError)


# ---- config -----------------------------------------------------------------------------------


def test_collector_names_and_keys_load() -> None:
    for name in ("otlp", "otlp_grpc", "otlphttp", "otlp_http"):
        assert registry.lookup("exporter", name) is not None, name
    grpc_cfg = OTLPGrpcConfig.model_validate(
        {
            "endpoint": "gateway:4317",
            "tls": {
                "insecure": False,
                "ca_file": "/etc/ca.pem",
                "cert_file": "/etc/c.pem",
                "key_file": "/etc/k.pem",
                "insecure_skip_verify": False,
                "server_name_override": "gw",
            },
            "headers": {"a": "b"},
            "compression": "zstd",
            "timeout": "3s",
            "balancer_name": "pick_first",
            "sending_queue": {"enabled": True, "num_consumers": 2, "queue_size": 100},
            "retry_on_failure": {"enabled": True, "initial_interval": "1s"},
        }
    )
    assert grpc_cfg.timeout == 3.0 and grpc_cfg.sending_queue.queue_size == 100
    http_cfg = OTLPHttpConfig.model_validate(
        {"traces_endpoint": "https://x/v1/traces", "encoding": "json", "compression": "none"}
    )
    assert http_cfg.url("traces") == "https://x/v1/traces" and http_cfg.url("logs") == ""
    with pytest.raises(ValidationError, match="endpoint"):
        OTLPGrpcConfig.model_validate({})
    with pytest.raises(ValidationError, match="endpoint"):
        OTLPHttpConfig.model_validate({"endpoint": "gateway:4318"})
    with pytest.raises(ValidationError):
        OTLPHttpConfig.model_validate({"endpoint": "http://x", "encoding": "xml"})
