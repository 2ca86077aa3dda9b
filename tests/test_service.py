"""The pipeline runtime in-process: named pipelines, receiver fan-out to several pipelines,
exporter fan-out, start/shutdown order and self-metrics."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp import config
from otlp.service import Service
from otlp.telemetry import Telemetry
from tests.harness import free_port
from tests.otlp_samples import sample_traces


def build(grpc_port: int) -> Service:
    raw = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}}}},
        "processors": {"batch": {"timeout": "10ms"}, "batch/edge": {"send_batch_size": 1}},
        "exporters": {"nop": None, "nop/archive": None, "debug": {"verbosity": "basic"}},
        "service": {
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["nop"]},
                "traces/edge": {
                    "receivers": ["otlp"],
                    "processors": ["batch/edge"],
                    "exporters": ["nop/archive", "debug"],
                },
            },
        },
    }
    return Service(config.validate(raw), Telemetry())


async def test_receiver_feeds_every_pipeline_and_every_exporter() -> None:
    port = free_port()
    service = build(port)
    await service.start()
    request = sample_traces()
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            for _ in range(3):
                await stub.Export(request, timeout=10)
    finally:
        await service.shutdown()
    t = service.telemetry
    assert t.value("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="grpc") == (
        3 * spans
    )
    for exporter in ("nop", "nop/archive", "debug"):
        assert t.value("otelcol_exporter_sent_spans_total", exporter=exporter) == 3 * spans
    # one queue per (exporter, signal), named as in the Collector's metrics
    assert {(str(cid), signal) for cid, signal in service.queues} == {
        ("nop", "traces"),
        ("nop/archive", "traces"),
        ("debug", "traces"),
    }
    # a processor id listed in two pipelines is two instances (one per pipeline)
    assert [p.id for p in service.pipelines] == ["traces", "traces/edge"]
