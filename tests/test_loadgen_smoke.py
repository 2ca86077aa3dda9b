"""The load generator against the real OpenTelemetry Collector, and its bookkeeping.

Smoke runs send a few hundred requests over gRPC and HTTP to the Collector (OTLP receiver →
nop exporter) and check that every item sent was acknowledged, also by the Collector's own
receiver counters. Partial success and refused requests cannot be provoked from the Collector
on demand, so two minimal servers (a grpc.aio generic handler and a raw asyncio HTTP server)
stand in for those cases only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from otelcol_peer import BUILD_TIMEOUT_S, OtelCol, free_port, otelcol_binary, otelcol_config

from benchmarks.loadgen import LoadConfig, run
from benchmarks.payloads import REQUEST_ID_ATTRIBUTE, make_templates

ACCEPTED = {
    "traces": "otelcol_receiver_accepted_spans",
    "metrics": "otelcol_receiver_accepted_metric_points",
    "logs": "otelcol_receiver_accepted_log_records",
}


@pytest.fixture(scope="module")
def otelcol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtelCol]:
    binary = otelcol_binary()
    tmp = tmp_path_factory.mktemp("otelcol")
    with OtelCol(binary, tmp, otelcol_config({"nop": {}})) as col:
        yield col


@pytest.mark.timeout(BUILD_TIMEOUT_S + 120)
@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize(
    ("signal", "requests", "batch"),
    [("traces", 300, 64), ("metrics", 100, 40), ("logs", 100, 50)],
)
async def test_all_sent_items_are_acknowledged(
    otelcol: OtelCol, protocol: str, signal: str, requests: int, batch: int
) -> None:
    endpoint = otelcol.grpc_endpoint if protocol == "grpc" else otelcol.http_endpoint
    before = otelcol.metric_sum(ACCEPTED[signal])
    cfg = LoadConfig(
        target=f"{protocol}://{endpoint}",
        signal=signal,
        batch=batch,
        concurrency=4,
        duration=None,
        requests=requests,
        distinct=3,
    )
    result = await run(cfg)
    assert result["requests"] == {"sent": requests, "ok": requests, "failed": 0}, result
    items = result["items"]
    assert items["sent"] == items["acknowledged"] == requests * batch, result
    assert items["rejected"] == items["failed"] == 0
    assert otelcol.metric_sum(ACCEPTED[signal]) - before == requests * batch
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]


@pytest.mark.timeout(BUILD_TIMEOUT_S + 120)
async def test_rate_limited_run_by_duration(otelcol: OtelCol) -> None:
    # 2000 items/s in requests of 100 for half a second: only the counts are checked.
    cfg = LoadConfig(
        target=f"grpc://{otelcol.grpc_endpoint}", batch=100, rate=2000, duration=0.5, distinct=2
    )
    result = await run(cfg)
    assert result["requests"]["sent"] >= 1
    assert result["items"]["sent"] == result["items"]["acknowledged"]
    assert result["requests"]["failed"] == 0


@pytest.mark.parametrize(
    ("signal", "cls"),
    [
        ("traces", ExportTraceServiceRequest),
        ("metrics", ExportMetricsServiceRequest),
        ("logs", ExportLogsServiceRequest),
    ],
)
def test_rendered_requests_carry_their_request_id(signal: str, cls: type) -> None:
    template = make_templates(signal, 300, distinct=1)[0]
    seen: set[bytes] = set()
    for request_id in (7, 8, 2**40 + 3):
        msg = cls.FromString(template.render(request_id))
        rid = request_id.to_bytes(8, "big")
        resources = [r.resource for r in msg.ListFields()[0][1]]
        assert resources and all(
            any(
                kv.key == REQUEST_ID_ATTRIBUTE and kv.value.string_value == rid.hex()
                for kv in r.attributes
            )
            for r in resources
        )
        trace_ids = _trace_ids(signal, msg)
        assert len(trace_ids) == template.id_slots > 0
        assert all(t[:8] == rid for t in trace_ids)
        assert not (set(trace_ids) & seen)  # unique per request
        seen |= set(trace_ids)


def _trace_ids(signal: str, msg: object) -> list[bytes]:
    if signal == "traces":
        spans = [s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return [s.trace_id for s in spans]
    if signal == "logs":
        logs = [r for rl in msg.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        return [r.trace_id for r in logs if r.trace_id]
    return [
        e.trace_id
        for rm in msg.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.WhichOneof("data") == "histogram"
        for dp in m.histogram.data_points
        for e in dp.exemplars
    ]


# ---- partial success and refusals (stand-in servers; see the module docstring) ------------

REJECT_PER_REQUEST = 3


def _partial_response() -> bytes:
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(
            rejected_spans=REJECT_PER_REQUEST, error_message="too old"
        )
    ).SerializeToString()


async def _grpc_partial() -> AsyncIterator[str]:
    calls = 0

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal calls
        calls += 1
        if calls % 4 == 0:  # every fourth request is refused outright
            await context.abort(grpc.StatusCode.UNAVAILABLE, "busy")
        return _partial_response()

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"grpc://127.0.0.1:{port}"
    await server.stop(None)


async def _http_partial() -> AsyncIterator[str]:
    calls = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the client closed its connection
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            calls += 1
            if calls % 4 == 0:
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                continue
            body = _partial_response()
            # Every third response closes the connection: the client must reconnect.
            close = calls % 3 == 0
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                + (b"Connection: close\r\n" if close else b"")
                + b"Content-Length: %d\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
            if close:
                break
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    server.close()


@pytest.fixture(params=["grpc", "http"])
async def partial_server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A stand-in OTLP trace server that rejects 3 spans of every request and refuses every
    fourth request (the HTTP one also closes every third connection)."""
    serve = _grpc_partial if request.param == "grpc" else _http_partial
    async for target in serve():
        yield target


async def test_partial_success_and_refusals_are_counted(partial_server: str) -> None:
    target = partial_server
    n, batch = 40, 10
    result = await run(
        LoadConfig(target=target, batch=batch, concurrency=2, duration=None, requests=n)
    )
    refused = n // 4
    assert result["requests"] == {"sent": n, "ok": n - refused, "failed": refused}, result
    items = result["items"]
    assert items["failed"] == refused * batch
    assert items["rejected"] == (n - refused) * REJECT_PER_REQUEST
    assert items["acknowledged"] == (n - refused) * (batch - REJECT_PER_REQUEST)
    assert items["sent"] == n * batch
    assert sum(result["errors"].values()) == refused


def test_unreachable_target_is_an_error() -> None:
    cfg = LoadConfig(target=f"http://127.0.0.1:{free_port()}", duration=None, requests=1, timeout=2)
    with pytest.raises(ConnectionError):
        asyncio.run(run(cfg))
