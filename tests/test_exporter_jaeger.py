"""End to end with a real Jaeger: the OTel Python SDK → AIRIS (otlp receiver → batch → `jaeger`
exporter) → Jaeger v2 built from the Go module proxy, once over Jaeger's api_v2 gRPC
(`protocol: grpc`) and once over OTLP/gRPC (`protocol: otlp`); what Jaeger's query API
returns (`/api/traces/{id}`, `/api/services`) is compared with what the SDK recorded."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from tests.harness import Collector, base_config
from tests.jaeger_peer import Jaeger

PROTOCOLS = ("grpc", "otlp")


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory):
    with Jaeger(tmp_path_factory.mktemp("jaeger")) as peer:
        yield peer


def collector_config(tmp: Path, jaeger: Jaeger, protocol: str) -> dict[str, Any]:
    config = base_config(tmp)
    endpoint = jaeger.api_v2_grpc if protocol == "grpc" else jaeger.otlp_grpc
    config["exporters"] = {
        "jaeger": {
            "protocol": protocol,
            "endpoint": endpoint,
            "tls": {"insecure": True},
            "headers": {"x-airis-test": protocol},
            "timeout": "10s",
            "sending_queue": {"num_consumers": 2},
            "retry_on_failure": {"initial_interval": "100ms", "max_interval": "1s"},
        }
    }
    config["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger"]}
    }
    return config


RESOURCE_ATTRS: dict[str, Any] = {
    "deployment.environment": "test",
    "host.cores": 8,
    "load.ratio": 0.5,
    "feature.on": True,
    "zones": ["a", "b"],
}
ROOT_ATTRS: dict[str, Any] = {
    "http.request.method": "GET",
    "http.response.status_code": 200,
    "ratio": 0.25,
    "cached": True,
    "tags": ["x", "y"],
    "digest": b"\x00\x01\xfe",
    "labels": {"team": "core", "tier": 2},
}


def send(collector_grpc: str, service: str) -> list[ReadableSpan]:
    """One trace of three spans (plus a linked one in another trace) through the SDK."""
    resource = Resource.create({"service.name": service, **RESOURCE_ATTRS})
    recorded = InMemorySpanExporter()
    provider = TracerProvider(
        resource=resource, span_limits=SpanLimits(max_span_attributes=10, max_events=2)
    )
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=collector_grpc, insecure=True))
    )
    tracer = provider.get_tracer("jaeger.e2e", "3.1.4")
    with tracer.start_as_current_span("previous") as previous:
        pass
    with tracer.start_as_current_span(
        "GET /orders", kind=SpanKind.SERVER, attributes=ROOT_ATTRS
    ) as root:
        root.add_event("cache.miss", {"key": "order-1", "size": 12})
        with tracer.start_as_current_span(
            "SELECT orders",
            kind=SpanKind.CLIENT,
            links=[Link(previous.get_span_context(), {"link.kind": "previous"})],
        ) as child:
            child.set_attribute("db.system", "postgresql")
            child.set_status(Status(StatusCode.ERROR, "bad row"))
            with tracer.start_as_current_span("parse") as leaf:
                for n in range(12):  # two over the limit: dropped
                    leaf.set_attribute(f"field.{n}", n)
                for n in range(3):  # one over the limit: dropped
                    leaf.add_event(f"step-{n}")
    # a span continuing a remote caller's trace, which carried a W3C tracestate
    remote = SpanContext(
        # fresh ids: both protocols' runs write to the same Jaeger
        trace_id=random.getrandbits(128),
        span_id=random.getrandbits(64) | 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    with tracer.start_as_current_span(
        "remote-child", set_span_in_context(NonRecordingSpan(remote))
    ):
        pass
    provider.shutdown()
    return list(recorded.get_finished_spans())


def tags_of(items: list[dict]) -> dict[str, tuple[str, Any]]:
    return {tag["key"]: (tag["type"], tag["value"]) for tag in items}


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_traces_reach_jaeger(tmp_path: Path, jaeger: Jaeger, protocol: str) -> None:
    service = f"airis-jaeger-{protocol}"
    config = collector_config(tmp_path, jaeger, protocol)
    grpc_endpoint = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    with Collector(tmp_path, config):
        spans = send(grpc_endpoint, service)
        by_name = {span.name: span for span in spans}
        root = by_name["GET /orders"]
        trace_id = hex_id(root.context.trace_id, 32)
        trace = jaeger.wait_trace(trace_id, spans=3)
        previous_id = hex_id(by_name["previous"].context.trace_id, 32)
        jaeger.wait_trace(previous_id, spans=1)
        remote_trace = jaeger.wait_trace(hex_id(by_name["remote-child"].context.trace_id, 32), 1)

    assert service in jaeger.services()
    got = {span["operationName"]: span for span in trace["spans"]}
    assert sorted(got) == ["GET /orders", "SELECT orders", "parse"]
    assert len(trace["spans"]) == 3

    # process: service.name and the other resource attributes with their types
    (process,) = {span["processID"] for span in trace["spans"]}
    process = trace["processes"][process]
    assert process["serviceName"] == service
    ptags = tags_of(process["tags"])
    assert ptags["deployment.environment"] == ("string", "test")
    assert ptags["host.cores"] == ("int64", 8)
    assert ptags["load.ratio"] == ("float64", 0.5)
    assert ptags["feature.on"] == ("bool", True)
    assert ptags["zones"] == ("string", '["a","b"]')
    assert ptags["telemetry.sdk.language"] == ("string", "python")
    assert "service.name" not in ptags

    for name, sent in by_name.items():
        if name in ("previous", "remote-child"):
            continue
        span = got[name]
        assert span["traceID"] == trace_id
        assert span["spanID"] == hex_id(sent.context.span_id, 16)
        assert span["startTime"] == sent.start_time // 1000
        assert span["duration"] == (sent.end_time - sent.start_time) // 1000
        tags = tags_of(span["tags"])
        assert tags["otel.scope.name"] == ("string", "jaeger.e2e")
        assert tags["otel.scope.version"] == ("string", "3.1.4")

    # root: every attribute type, kind, an event as a log, no parent
    root_json = got["GET /orders"]
    tags = tags_of(root_json["tags"])
    assert tags["http.request.method"] == ("string", "GET")
    assert tags["http.response.status_code"] == ("int64", 200)
    assert tags["ratio"] == ("float64", 0.25)
    assert tags["cached"] == ("bool", True)
    assert tags["tags"] == ("string", '["x","y"]')
    assert tags["digest"][0] == "binary"
    assert base64.b64decode(tags["digest"][1]) == b"\x00\x01\xfe"
    assert tags["labels"][0] == "string"
    assert json.loads(tags["labels"][1]) == {"team": "core", "tier": 2}
    assert tags["span.kind"] == ("string", "server")
    assert "error" not in tags and "otel.status_code" not in tags
    assert root_json["references"] == []
    (log,) = root_json["logs"]
    assert log["timestamp"] == root.events[0].timestamp // 1000
    assert tags_of(log["fields"]) == {
        "event": ("string", "cache.miss"),
        "key": ("string", "order-1"),
        "size": ("int64", 12),
    }

    # child: CHILD_OF the root, FOLLOWS_FROM the linked span, error status
    child = got["SELECT orders"]
    tags = tags_of(child["tags"])
    assert tags["span.kind"] == ("string", "client")
    assert tags["db.system"] == ("string", "postgresql")
    assert tags["otel.status_code"] == ("string", "ERROR")
    assert tags["error"] == ("bool", True)
    assert tags["otel.status_description"] == ("string", "bad row")
    previous = by_name["previous"].context
    assert child["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": root_json["spanID"]},
        {
            "refType": "FOLLOWS_FROM",
            "traceID": previous_id,
            "spanID": hex_id(previous.span_id, 16),
        },
    ]

    # leaf: internal kind, limits hit, two of three events kept
    leaf = got["parse"]
    tags = tags_of(leaf["tags"])
    assert tags["span.kind"] == ("string", "internal")
    assert sum(key.startswith("field.") for key in tags) == 10
    assert [tags_of(log["fields"])["event"][1] for log in leaf["logs"]] == ["step-1", "step-2"]
    assert leaf["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": child["spanID"]}
    ]
    if protocol == "grpc":
        # api_v2 carries the dropped counts as the spec's tags; Jaeger keeps them as attributes.
        # (Over OTLP they stay OTLP fields, which Jaeger's query API does not render.)
        assert tags["otel.dropped_attributes_count"] == ("int64", 2)
        assert tags["otel.dropped_events_count"] == ("int64", 1)

    # the remote parent: a CHILD_OF reference to a span Jaeger never saw; the trace state
    (remote_child,) = remote_trace["spans"]
    remote = by_name["remote-child"]
    assert remote_child["references"] == [
        {
            "refType": "CHILD_OF",
            "traceID": hex_id(remote.context.trace_id, 32),
            "spanID": hex_id(remote.parent.span_id, 16),
        }
    ]
    assert tags_of(remote_child["tags"])["w3c.tracestate"] == ("string", "vendor=v1,other=x")
