"""The otlp receiver, in process: real OTel SDK exporters, raw gRPC and HTTP clients with bad
input, consumer errors, CORS, TLS, config. Downstream is a small collecting consumer."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
import zstandard
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp import jsonpb
from otlp.batch import Batch
from otlp.component import RECEIVER, ComponentID, CreateSettings
from otlp.errors import (
    BackpressureError,
    InvalidRequestError,
    PermanentError,
    RetryableError,
)
from otlp.telemetry import Telemetry
from receivers.otlp import factory
from receivers.otlp.config import OTLPReceiverConfig
from receivers.otlp.receiver import OTLPReceiver
from tests.certs import make_ca

SIGNALS = ("traces", "metrics", "logs")
SERVICES = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
BODY_LIMIT = 256 * 1024

# every async test runs in the module's loop, where the shared receiver lives
pytestmark = pytest.mark.asyncio(loop_scope="module")


# --- harness -----------------------------------------------------------------------------


class Sink:
    """The downstream consumer: keeps what it is given, or raises the error it is told to."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.error: Exception | None = None

    async def consume(self, batch: Batch) -> None:
        if self.error is not None:
            raise self.error
        self.batches.append(batch)

    def items(self) -> int:
        return sum(b.item_count() for b in self.batches)


@dataclass
class ServiceHost:
    telemetry: Telemetry = field(default_factory=Telemetry)

    def extension(self, component_id: str) -> Any:
        return None


@dataclass
class Running:
    receiver: OTLPReceiver
    sinks: dict[str, Sink]
    telemetry: Telemetry
    baseline: dict[tuple[str, str], float] = field(default_factory=dict)

    def reset(self) -> None:
        """Fresh sinks and counters read from here on, so tests can share one receiver."""
        self.sinks = {signal: Sink() for signal in self.sinks}
        self.receiver.consumers.update(self.sinks)
        self.baseline = {}
        for metric in self.telemetry.registry.collect():
            for sample in metric.samples:
                if sample.labels.get("receiver") == "otlp":
                    self.baseline[(sample.name, sample.labels["transport"])] = sample.value

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.receiver.grpc_port}"

    def count(self, metric: str, transport: str) -> float:
        value = self.telemetry.value(metric, receiver="otlp", transport=transport)
        return value - self.baseline.get((metric, transport), 0.0)


def default_raw_config(**http: Any) -> dict[str, Any]:
    return {
        "protocols": {
            "grpc": {
                "endpoint": "127.0.0.1:0",
                "max_recv_msg_size_mib": 1,
                "include_metadata": True,
            },
            "http": {
                "endpoint": "127.0.0.1:0",
                "max_request_body_size": BODY_LIMIT,
                "include_metadata": True,
                "cors": {
                    "allowed_origins": ["https://*.example.com", "http://localhost:3000"],
                    "allowed_headers": ["X-Tenant"],
                    "max_age": 600,
                },
                **http,
            },
        }
    }


@contextlib.asynccontextmanager
async def running(
    raw: dict[str, Any] | None = None, signals: tuple[str, ...] = SIGNALS
) -> AsyncIterator[Running]:
    config = OTLPReceiverConfig.model_validate(raw if raw is not None else default_raw_config())
    host = ServiceHost()
    settings = CreateSettings(
        id=ComponentID("otlp"), kind=RECEIVER, telemetry=host.telemetry, signals=set(signals)
    )
    receiver = factory.create(settings, config)
    assert isinstance(receiver, OTLPReceiver)
    sinks = {s: Sink() for s in signals}
    receiver.consumers.update(sinks)
    await receiver.start(host)
    try:
        yield Running(receiver, sinks, host.telemetry)
    finally:
        await receiver.shutdown()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared() -> AsyncIterator[Running]:
    async with running() as r:
        yield r


@pytest_asyncio.fixture(loop_scope="module")
async def rx(shared: Running) -> Running:
    """The module's receiver (started once: stopping uvicorn takes ~0.2 s), state reset."""
    shared.reset()
    return shared


# --- OTLP messages -----------------------------------------------------------------------


def _kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def trace_request(spans: int = 2, name: str = "op") -> trace_service_pb2.ExportTraceServiceRequest:
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        spans=[
                            trace_pb2.Span(
                                trace_id=bytes(range(16)),
                                span_id=(i + 1).to_bytes(8, "big"),
                                name=name,
                                start_time_unix_nano=1,
                                end_time_unix_nano=2,
                                attributes=[_kv("k", "v")],
                            )
                            for i in range(spans)
                        ]
                    )
                ]
            )
        ]
    )


def metrics_request(points: int = 2) -> metrics_service_pb2.ExportMetricsServiceRequest:
    gauge = metrics_pb2.Gauge(
        data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=5, as_int=i) for i in range(points)]
    )
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(metrics=[metrics_pb2.Metric(name="g", gauge=gauge)])
                ]
            )
        ]
    )


def logs_request(records: int = 2) -> logs_service_pb2.ExportLogsServiceRequest:
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        log_records=[
                            logs_pb2.LogRecord(
                                time_unix_nano=7, body=common_pb2.AnyValue(string_value="hi")
                            )
                            for _ in range(records)
                        ]
                    )
                ]
            )
        ]
    )


REQUESTS = {"traces": trace_request, "metrics": metrics_request, "logs": logs_request}
RESPONSES = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
REJECTED_FIELD = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}
PB = {"content-type": "application/x-protobuf"}
JS = {"content-type": "application/json"}


def with_invalid_utf8(message: trace_service_pb2.ExportTraceServiceRequest) -> bytes:
    """The span name replaced by bytes that are not UTF-8 (a valid protobuf otherwise)."""
    body = message.SerializeToString()
    marker = b"NAMEx"
    assert marker in body
    return body.replace(marker, b"\xff\xfe\xfd\xfcx")


async def grpc_export(target: str, signal: str, body: bytes, **kw: Any) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(SERVICES[signal])
        return await call(body, timeout=10, **kw)  # type: ignore[no-any-return]


async def grpc_error(target: str, signal: str, body: bytes, **kw: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(target, signal, body, **kw)
    return info.value


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no grpc-status-details-bin trailer")


def retry_delay(details: Any) -> float | None:
    for detail in details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


async def assert_serves(r: Running) -> None:
    """After anything, both transports still accept a valid request."""
    before = r.sinks["traces"].items()
    async with httpx.AsyncClient(base_url=r.http) as client:
        resp = await client.post(
            "/v1/traces", content=trace_request(1).SerializeToString(), headers=PB
        )
    assert resp.status_code == 200, resp.text
    await grpc_export(r.grpc_target, "traces", trace_request(1).SerializeToString())
    assert r.sinks["traces"].items() == before + 2


# --- the OTel SDK's exporters as clients ------------------------------------------------------


def sdk_data() -> tuple[Any, Any, Any]:
    """3 spans, 3 metric data points and 2 log records made by the SDK."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource.create({"service.name": "receiver-test"})
    span_sink = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_sink))
    tracer = tracer_provider.get_tracer("t", "1")
    with tracer.start_as_current_span("root", attributes={"n": 1}):
        with tracer.start_as_current_span("child"):
            pass
        with tracer.start_as_current_span("child2", attributes={"ok": True}):
            pass

    reader = InMemoryMetricReader()
    meter = MeterProvider(resource=resource, metric_readers=[reader]).get_meter("m")
    counter = meter.create_counter("requests")
    counter.add(1, {"route": "/a"})
    counter.add(2, {"route": "/b"})
    meter.create_histogram("latency").record(12.5)
    metrics = reader.get_metrics_data()

    log_sink = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_sink))
    logger = logger_provider.get_logger("l")
    logger.emit(body="first", attributes={"a": 1})
    logger.emit(body={"structured": [1, 2]})
    return span_sink.get_finished_spans(), metrics, log_sink.get_finished_logs()


def sdk_exporters(transport: str, r: Running, compression: str | None = None) -> tuple[Any, ...]:
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        kw: dict[str, Any] = {"endpoint": r.grpc_target, "insecure": True}
        if compression:
            kw["compression"] = grpc.Compression.Gzip
        return OTLPSpanExporter(**kw), OTLPMetricExporter(**kw), OTLPLogExporter(**kw)
    if transport == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.common.http import Compression  # type: ignore[no-redef]
        from opentelemetry.exporter.otlp.json.http._log_exporter import (  # type: ignore[no-redef]
            OTLPLogExporter,
        )
        from opentelemetry.exporter.otlp.json.http.metric_exporter import (  # type: ignore[no-redef]
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.json.http.trace_exporter import (  # type: ignore[no-redef]
            OTLPSpanExporter,
        )
    kw = {"compression": Compression(compression)} if compression else {}
    return (
        OTLPSpanExporter(endpoint=f"{r.http}/v1/traces", **kw),
        OTLPMetricExporter(endpoint=f"{r.http}/v1/metrics", **kw),
        OTLPLogExporter(endpoint=f"{r.http}/v1/logs", **kw),
    )


@pytest.mark.parametrize(
    ("transport", "compression"),
    [
        ("grpc", None),
        ("grpc", "gzip"),
        ("http-protobuf", None),
        ("http-protobuf", "gzip"),
        ("http-protobuf", "deflate"),
        ("http-json", None),
        ("http-json", "gzip"),
    ],
)
async def test_sdk_exporters_deliver_every_signal(
    rx: Running, transport: str, compression: str | None
) -> None:
    spans, metrics, logs = sdk_data()
    span_exporter, metric_exporter, log_exporter = sdk_exporters(transport, rx, compression)
    try:
        results = [
            await asyncio.to_thread(span_exporter.export, spans),
            await asyncio.to_thread(metric_exporter.export, metrics),
            await asyncio.to_thread(log_exporter.export, logs),
        ]
    finally:
        for exporter in (span_exporter, metric_exporter, log_exporter):
            await asyncio.to_thread(exporter.shutdown)
    assert [result.name for result in results] == ["SUCCESS"] * 3
    assert rx.sinks["traces"].items() == 3
    assert rx.sinks["metrics"].items() == 3
    assert rx.sinks["logs"].items() == 2
    wire = "grpc" if transport == "grpc" else "http"
    assert rx.count("otelcol_receiver_accepted_spans_total", wire) == 3
    assert rx.count("otelcol_receiver_accepted_metric_points_total", wire) == 3
    assert rx.count("otelcol_receiver_accepted_log_records_total", wire) == 2
    assert rx.count("otelcol_receiver_refused_spans_total", wire) == 0


# --- valid requests, raw ------------------------------------------------------------------


@pytest.mark.parametrize("signal", SIGNALS)
async def test_http_protobuf_and_json_responses(rx: Running, signal: str) -> None:
    message = REQUESTS[signal](3)
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.post(f"/v1/{signal}", content=message.SerializeToString(), headers=PB)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/x-protobuf"
        assert RESPONSES[signal].FromString(resp.content) == RESPONSES[signal]()
        resp = await client.post(
            f"/v1/{signal}",
            content=jsonpb.message_to_json(message),
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        assert resp.json() == {}
    assert rx.sinks[signal].items() == 6


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd", "identity"])
async def test_http_content_encodings(rx: Running, encoding: str) -> None:
    raw = trace_request(4).SerializeToString()
    body = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "identity": bytes,
    }[encoding](raw)
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.post(
            "/v1/traces", content=body, headers={**PB, "content-encoding": encoding}
        )
    assert resp.status_code == 200, resp.text
    assert rx.sinks["traces"].items() == 4


async def test_http_concatenated_gzip_members_and_raw_deflate(rx: Running) -> None:
    raw = trace_request(2).SerializeToString()
    half = len(raw) // 2
    raw_deflate = zlib.compressobj(wbits=-15)
    deflated = raw_deflate.compress(raw) + raw_deflate.flush()
    async with httpx.AsyncClient(base_url=rx.http) as client:
        for body, encoding in (
            (gzip.compress(raw[:half]) + gzip.compress(raw[half:]), "gzip"),
            (deflated, "deflate"),
        ):
            resp = await client.post(
                "/v1/traces", content=body, headers={**PB, "content-encoding": encoding}
            )
            assert resp.status_code == 200, resp.text
    assert rx.sinks["traces"].items() == 4


async def test_empty_request_succeeds_without_reaching_the_pipeline(rx: Running) -> None:
    empty = trace_service_pb2.ExportTraceServiceRequest().SerializeToString()
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.post("/v1/traces", content=empty, headers=PB)
    assert resp.status_code == 200
    assert await grpc_export(rx.grpc_target, "traces", empty) == b""
    assert rx.sinks["traces"].batches == []


async def test_include_metadata_puts_headers_in_the_batch_context(rx: Running) -> None:
    body = trace_request(1).SerializeToString()
    async with httpx.AsyncClient(base_url=rx.http) as client:
        await client.post("/v1/traces", content=body, headers={**PB, "X-Tenant": "acme"})
    await grpc_export(rx.grpc_target, "traces", body, metadata=(("x-tenant", "umbrella"),))
    http_ctx, grpc_ctx = (b.context for b in rx.sinks["traces"].batches)
    assert http_ctx["metadata.x-tenant"] == "acme"
    assert http_ctx["client.address"] == "127.0.0.1"
    assert grpc_ctx["metadata.x-tenant"] == "umbrella"
    assert grpc_ctx["client.address"] == "127.0.0.1"


async def test_metadata_is_not_copied_unless_asked() -> None:
    raw = default_raw_config(include_metadata=False)
    raw["protocols"]["grpc"]["include_metadata"] = False
    async with running(raw) as r, httpx.AsyncClient(base_url=r.http) as client:
        await client.post(
            "/v1/traces", content=trace_request(1).SerializeToString(), headers={**PB, "X-A": "b"}
        )
        assert r.sinks["traces"].batches[0].context == {}


# --- hostile and broken input over HTTP -------------------------------------------------------


def _bomb(size: int) -> bytes:
    """A few KiB of gzip that inflate to `size` bytes."""
    out = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [out.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + out.flush()


BOMB = _bomb(64 << 20)
ZSTD_BOMB = zstandard.ZstdCompressor().compress(bytes(64 << 20))
DEFLATE_BOMB = zlib.compress(bytes(64 << 20), 9)
TRUNCATED = trace_request(5).SerializeToString()[:-7]

HTTP_BAD = [
    # (id, method, path, headers, body, expected status)
    ("truncated-protobuf", "POST", "/v1/traces", PB, TRUNCATED, 400),
    ("invalid-json", "POST", "/v1/traces", JS, b'{"resourceSpans": [', 400),
    ("json-wrong-shape", "POST", "/v1/traces", JS, b'{"resourceSpans": 5}', 400),
    ("json-not-object", "POST", "/v1/logs", JS, b"[1, 2, 3]", 400),
    ("invalid-utf8", "POST", "/v1/traces", PB, with_invalid_utf8(trace_request(1, "NAMEx")), 400),
    ("wrong-content-type", "POST", "/v1/traces", {"content-type": "text/plain"}, b"hi", 415),
    ("no-content-type", "POST", "/v1/traces", {}, b"hi", 415),
    ("oversize-body", "POST", "/v1/traces", PB, bytes(BODY_LIMIT + 1), 413),
    ("gzip-bomb", "POST", "/v1/traces", {**PB, "content-encoding": "gzip"}, BOMB, 413),
    ("zstd-bomb", "POST", "/v1/traces", {**PB, "content-encoding": "zstd"}, ZSTD_BOMB, 413),
    ("deflate-bomb", "POST", "/v1/logs", {**JS, "content-encoding": "deflate"}, DEFLATE_BOMB, 413),
    ("corrupt-gzip", "POST", "/v1/traces", {**PB, "content-encoding": "gzip"}, b"\x1f\x8bxx", 400),
    ("cut-gzip", "POST", "/v1/traces", {**PB, "content-encoding": "gzip"}, BOMB[:100], 400),
    ("corrupt-zstd", "POST", "/v1/traces", {**PB, "content-encoding": "zstd"}, b"nope", 400),
    ("unknown-encoding", "POST", "/v1/traces", {**PB, "content-encoding": "br"}, b"x", 400),
    ("snappy-not-supported", "POST", "/v1/traces", {**PB, "content-encoding": "snappy"}, b"", 400),
    ("get", "GET", "/v1/traces", {}, b"", 405),
    ("put", "PUT", "/v1/metrics", PB, b"", 405),
    ("options-without-cors", "OPTIONS", "/v1/logs", {}, b"", 405),
    ("unknown-path", "POST", "/v1/trace", PB, b"", 404),
    ("root-path", "GET", "/", {}, b"", 404),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in HTTP_BAD],
)
async def test_http_bad_requests(
    rx: Running, method: str, path: str, headers: dict[str, str], body: bytes, expected: int
) -> None:
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.request(method, path, content=body, headers=headers)
    assert resp.status_code == expected, resp.text
    if expected == 405:
        assert resp.headers["allow"] == "POST"
    if expected in (400, 413):
        # a google.rpc.Status, encoded like the request
        if headers.get("content-type") == "application/json":
            assert resp.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        else:
            st = status_pb2.Status.FromString(resp.content)
            assert st.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert st.message
    assert rx.sinks["traces"].items() == 0
    await assert_serves(rx)


async def test_http_declared_oversize_is_refused_before_reading(rx: Running) -> None:
    """A Content-Length over the limit is refused at once and the connection closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rx.receiver.http_port)
    writer.write(
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 999999999\r\n\r\n" + bytes(1000)
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in head.lower()
    writer.close()
    await assert_serves(rx)


async def test_http_wrong_message_type_is_not_a_server_error(rx: Running) -> None:
    """Logs sent to the traces path parse as protobuf (unknown fields) or are refused: never 5xx."""
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.post(
            "/v1/traces", content=logs_request(3).SerializeToString(), headers=PB
        )
    assert resp.status_code in (200, 400)
    await assert_serves(rx)


async def test_http_client_disconnect_mid_body(rx: Running) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", rx.receiver.http_port)
    writer.write(
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 5000\r\n\r\n" + bytes(100)
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await assert_serves(rx)


# --- hostile and broken input over gRPC -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(TRUNCATED, grpc.StatusCode.INVALID_ARGUMENT, id="truncated-protobuf"),
        pytest.param(b"\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT, id="garbage"),
        pytest.param(
            with_invalid_utf8(trace_request(1, "NAMEx")),
            grpc.StatusCode.INVALID_ARGUMENT,
            id="invalid-utf8",
        ),
        pytest.param(bytes(2 << 20), grpc.StatusCode.RESOURCE_EXHAUSTED, id="over-max-recv-size"),
    ],
)
async def test_grpc_bad_requests(rx: Running, body: bytes, code: grpc.StatusCode) -> None:
    error = await grpc_error(rx.grpc_target, "traces", body)
    assert error.code() == code, error.details()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert rich_status(error).code == code.value[0]
    assert rx.sinks["traces"].items() == 0
    await assert_serves(rx)


async def test_grpc_compressed_bomb_is_cut_at_max_recv_size(rx: Running) -> None:
    """64 MiB of zeros gzip to ~64 KiB on the wire; grpc refuses them past 1 MiB inflated."""
    error = await grpc_error(
        rx.grpc_target, "traces", bytes(64 << 20), compression=grpc.Compression.Gzip
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await assert_serves(rx)


async def test_grpc_wrong_message_type_is_not_a_server_error(rx: Running) -> None:
    try:
        await grpc_export(rx.grpc_target, "traces", logs_request(3).SerializeToString())
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    await assert_serves(rx)


async def test_signal_without_pipeline_is_unimplemented() -> None:
    async with running(signals=("traces",)) as r:
        error = await grpc_error(r.grpc_target, "metrics", metrics_request().SerializeToString())
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        async with httpx.AsyncClient(base_url=r.http) as client:
            resp = await client.post(
                "/v1/metrics", content=metrics_request().SerializeToString(), headers=PB
            )
        assert resp.status_code == 404
        await assert_serves(r)


# --- consumer errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "http_status", "delay"),
    [
        (BackpressureError("memory limit reached", retry_after=2.5), 429, 2.5),
        (RetryableError("backend down", retry_after=7), 503, 7.0),
        (RetryableError("backend down"), 503, None),
        (RuntimeError("a bug downstream"), 503, None),
    ],
)
@pytest.mark.parametrize("media", ["application/x-protobuf", "application/json"])
async def test_retryable_consumer_errors(
    rx: Running, error: Exception, http_status: int, delay: float | None, media: str
) -> None:
    rx.sinks["traces"].error = error
    message = trace_request(3)
    body = (
        message.SerializeToString()
        if media.endswith("protobuf")
        else jsonpb.message_to_json(message)
    )
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.post("/v1/traces", content=body, headers={"content-type": media})
    assert resp.status_code == http_status
    assert resp.headers["content-type"] == media
    if media.endswith("protobuf"):
        st = status_pb2.Status.FromString(resp.content)
        assert retry_delay(st.details) == delay
    else:
        doc = resp.json()
        assert doc["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
        st = json_format.ParseDict(doc, status_pb2.Status())
        assert retry_delay(st.details) == delay
    if delay is None:
        assert "retry-after" not in resp.headers
    else:
        assert int(resp.headers["retry-after"]) >= delay

    grpc_failure = await grpc_error(rx.grpc_target, "traces", message.SerializeToString())
    assert grpc_failure.code() == grpc.StatusCode.UNAVAILABLE
    assert retry_delay(rich_status(grpc_failure).details) == delay

    assert rx.count("otelcol_receiver_refused_spans_total", "http") == 3
    assert rx.count("otelcol_receiver_refused_spans_total", "grpc") == 3
    assert rx.count("otelcol_receiver_accepted_spans_total", "http") == 0
    rx.sinks["traces"].error = None
    await assert_serves(rx)


async def test_invalid_request_from_consumer_is_400(rx: Running) -> None:
    rx.sinks["logs"].error = InvalidRequestError("log body too deep")
    body = logs_request().SerializeToString()
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.post("/v1/logs", content=body, headers=PB)
    assert resp.status_code == 400
    assert status_pb2.Status.FromString(resp.content).message == "log body too deep"
    error = await grpc_error(rx.grpc_target, "logs", body)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("signal", SIGNALS)
async def test_permanent_error_is_partial_success(rx: Running, signal: str) -> None:
    rx.sinks[signal].error = PermanentError("2 items too old", rejected=2)
    message = REQUESTS[signal](3)
    field_name = REJECTED_FIELD[signal]
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.post(f"/v1/{signal}", content=message.SerializeToString(), headers=PB)
        assert resp.status_code == 200
        partial = RESPONSES[signal].FromString(resp.content).partial_success
        assert getattr(partial, field_name) == 2
        assert partial.error_message == "2 items too old"
        resp = await client.post(
            f"/v1/{signal}", content=jsonpb.message_to_json(message), headers=JS
        )
        assert resp.status_code == 200
        parsed = json_format.Parse(resp.content, RESPONSES[signal]())
        assert getattr(parsed.partial_success, field_name) == 2
    answer = await grpc_export(rx.grpc_target, signal, message.SerializeToString())
    partial = RESPONSES[signal].FromString(answer).partial_success
    assert getattr(partial, field_name) == 2
    assert partial.error_message == "2 items too old"
    unit = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}[signal]
    assert rx.count(f"otelcol_receiver_accepted_{unit}_total", "http") == 2
    assert rx.count(f"otelcol_receiver_refused_{unit}_total", "http") == 4
    assert rx.count(f"otelcol_receiver_refused_{unit}_total", "grpc") == 2


async def test_permanent_error_without_count_rejects_everything(rx: Running) -> None:
    rx.sinks["traces"].error = PermanentError("schema mismatch")
    answer = await grpc_export(rx.grpc_target, "traces", trace_request(4).SerializeToString())
    assert RESPONSES["traces"].FromString(answer).partial_success.rejected_spans == 4


# --- CORS --------------------------------------------------------------------------------


async def test_cors_preflight_and_actual_request(rx: Running) -> None:
    preflight = {
        "origin": "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-tenant",
    }
    async with httpx.AsyncClient(base_url=rx.http) as client:
        resp = await client.options("/v1/traces", headers=preflight)
        assert resp.status_code == 204
        assert resp.headers["access-control-allow-origin"] == "https://app.example.com"
        assert resp.headers["access-control-allow-methods"] == "POST"
        assert resp.headers["access-control-allow-headers"] == "content-type, x-tenant"
        assert resp.headers["access-control-max-age"] == "600"
        assert resp.headers["access-control-allow-credentials"] == "true"

        for refused in (
            {**preflight, "origin": "https://evil.com"},
            {**preflight, "origin": "https://example.com.evil.com"},
            {**preflight, "access-control-request-headers": "x-secret"},
            {**preflight, "access-control-request-method": "DELETE"},
        ):
            resp = await client.options("/v1/traces", headers=refused)
            assert resp.status_code == 204
            assert "access-control-allow-origin" not in resp.headers

        resp = await client.post(
            "/v1/traces",
            content=trace_request(1).SerializeToString(),
            headers={**PB, "origin": "http://localhost:3000"},
        )
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == "http://localhost:3000"
        resp = await client.post(
            "/v1/traces",
            content=trace_request(1).SerializeToString(),
            headers={**PB, "origin": "http://localhost:3001"},
        )
        assert resp.status_code == 200
        assert "access-control-allow-origin" not in resp.headers


async def test_response_headers_and_keep_alive_off() -> None:
    raw = default_raw_config(response_headers={"X-Served-By": "airis"}, keep_alives_enabled=False)
    async with running(raw) as r, httpx.AsyncClient(base_url=r.http) as client:
        resp = await client.post("/v1/logs", content=logs_request().SerializeToString(), headers=PB)
        assert resp.headers["x-served-by"] == "airis"
        assert resp.headers["connection"] == "close"
        resp = await client.get("/nowhere")
        assert resp.headers["x-served-by"] == "airis"


async def test_custom_url_paths() -> None:
    raw = default_raw_config(traces_url_path="ingest/spans")
    async with running(raw) as r, httpx.AsyncClient(base_url=r.http) as client:
        body = trace_request(1).SerializeToString()
        assert (await client.post("/ingest/spans", content=body, headers=PB)).status_code == 200
        assert (await client.post("/v1/traces", content=body, headers=PB)).status_code == 404


async def test_restricted_compression_algorithms() -> None:
    raw = default_raw_config(compression_algorithms=["", "zstd"])
    async with running(raw) as r, httpx.AsyncClient(base_url=r.http) as client:
        raw_body = trace_request(1).SerializeToString()
        resp = await client.post(
            "/v1/traces",
            content=gzip.compress(raw_body),
            headers={**PB, "content-encoding": "gzip"},
        )
        assert resp.status_code == 400
        resp = await client.post(
            "/v1/traces",
            content=zstandard.ZstdCompressor().compress(raw_body),
            headers={**PB, "content-encoding": "zstd"},
        )
        assert resp.status_code == 200


# --- lifecycle ---------------------------------------------------------------------------


async def test_port_in_use_fails_start_and_releases_the_other_port() -> None:
    async with running() as first:
        taken = first.receiver.http_port
        raw = default_raw_config(endpoint=f"127.0.0.1:{taken}")
        with pytest.raises(OSError, match="cannot listen for HTTP"):
            async with running(raw):
                pass
        raw = default_raw_config()
        raw["protocols"]["grpc"]["endpoint"] = first.grpc_target
        with pytest.raises(OSError, match="cannot listen for gRPC"):
            async with running(raw):
                pass
        await assert_serves(first)


async def test_shutdown_releases_ports_and_restart_on_the_same_ports() -> None:
    async with running() as r:
        http_port, grpc_port = r.receiver.http_port, r.receiver.grpc_port
        await assert_serves(r)
    raw = default_raw_config(endpoint=f"127.0.0.1:{http_port}")
    raw["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{grpc_port}"
    async with running(raw) as again:
        assert again.receiver.http_port == http_port
        await assert_serves(again)


async def test_http_only_and_grpc_only(tmp_path: Path) -> None:
    async with running({"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}) as r:
        assert r.receiver.grpc_port is None
        async with httpx.AsyncClient(base_url=r.http) as client:
            resp = await client.post(
                "/v1/traces", content=trace_request(1).SerializeToString(), headers=PB
            )
        assert resp.status_code == 200
    async with running({"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}) as r:
        assert r.receiver.http_port is None
        await grpc_export(r.grpc_target, "logs", logs_request().SerializeToString())
        assert r.sinks["logs"].items() == 2


async def test_unix_sockets(tmp_path: Path) -> None:
    grpc_path, http_path = tmp_path / "grpc.sock", tmp_path / "http.sock"
    raw = {
        "protocols": {
            "grpc": {"endpoint": str(grpc_path), "transport": "unix"},
            "http": {"endpoint": str(http_path), "transport": "unix"},
        }
    }
    async with running(raw) as r:
        transport = httpx.AsyncHTTPTransport(uds=str(http_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            resp = await client.post(
                "/v1/traces", content=trace_request(1).SerializeToString(), headers=PB
            )
        assert resp.status_code == 200
        await grpc_export(f"unix:{grpc_path}", "traces", trace_request(1).SerializeToString())
        assert r.sinks["traces"].items() == 2


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, server.crt/.key (localhost, 127.0.0.1) and client.crt/.key in one directory."""
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "ca")
    ca.issue(d, "server")
    ca.issue(d, "client", client=True)
    return d


async def test_tls_and_mutual_tls(pki: Path) -> None:
    tls = {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")}
    mtls = {**tls, "client_ca_file": str(pki / "ca.crt")}
    raw = {
        "protocols": {
            "grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
            "http": {"endpoint": "127.0.0.1:0", "tls": mtls},
        }
    }
    body = trace_request(1).SerializeToString()
    async with running(raw) as r:
        ca = (pki / "ca.crt").read_bytes()
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        async with grpc.aio.secure_channel(r.grpc_target, credentials) as channel:
            await channel.unary_unary(SERVICES["traces"])(body, timeout=10)

        url = f"https://127.0.0.1:{r.receiver.http_port}"
        client_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        client_ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
        async with httpx.AsyncClient(base_url=url, verify=client_ctx) as client:
            resp = await client.post("/v1/traces", content=body, headers=PB)
            assert resp.status_code == 200
        anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with pytest.raises(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=url, verify=anonymous) as client:
                await client.post("/v1/traces", content=body, headers=PB)
        assert r.sinks["traces"].items() == 2

        # the server still serves after a refused handshake
        async with httpx.AsyncClient(base_url=url, verify=client_ctx) as client:
            assert (await client.post("/v1/traces", content=body, headers=PB)).status_code == 200


async def test_grpc_mutual_tls_and_http_tls_minimum_version(pki: Path) -> None:
    tls = {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")}
    raw = {
        "protocols": {
            "grpc": {
                "endpoint": "127.0.0.1:0",
                "tls": {**tls, "client_ca_file": str(pki / "ca.crt")},
            },
            "http": {"endpoint": "127.0.0.1:0", "tls": {**tls, "min_version": "1.3"}},
        }
    }
    body = trace_request(1).SerializeToString()
    ca = (pki / "ca.crt").read_bytes()
    async with running(raw) as r:
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        async with grpc.aio.secure_channel(r.grpc_target, anonymous) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(SERVICES["traces"])(body, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.crt").read_bytes(),
        )
        async with grpc.aio.secure_channel(r.grpc_target, with_cert) as channel:
            await channel.unary_unary(SERVICES["traces"])(body, timeout=10)

        url = f"https://127.0.0.1:{r.receiver.http_port}"
        tls12 = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=url, verify=tls12) as client:
                await client.post("/v1/traces", content=body, headers=PB)
        tls13 = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        async with httpx.AsyncClient(base_url=url, verify=tls13) as client:
            assert (await client.post("/v1/traces", content=body, headers=PB)).status_code == 200
        assert r.sinks["traces"].items() == 2
