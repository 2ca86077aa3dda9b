"""Differential test: the same traces through contrib's tail_sampling (a real Collector built
from the module proxy, tests/peers/otelcol_tailsampling.sh) and through ours; every policy
type that decides without time (no rate limits) must keep exactly the same trace IDs.

One Collector process runs one traces pipeline per policy, each writing what it keeps to its
own file; ours runs the same policies in process on a fake clock. The peer is contrib 0.140.1
(see the build script for why not 0.165): its policies decide alone exactly as 0.165's, except
``latency`` without an upper bound (>= there, > in 0.165), which is therefore only compared
with an upper bound here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp.batch import Batch
from otlp.decode import decode_traces
from otlp.encode import encode
from otlp.telemetry import Telemetry
from processors.tail_sampling.config import TailSamplingConfig
from processors.tail_sampling.processor import TailSamplingProcessor
from tests.fakes import FakeClock
from tests.harness import free_port
from tests.otelcol_peer import OtelCol
from tests.otlp_samples import kv
from tests.tailsampling_peer import tailsampling_otelcol

TRACES = 400
MS = 1_000_000
BASE = 1_700_000_000_000 * MS


def _p(name: str, type_: str, **block: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **({type_: block} if block else {})}


ERRORS = _p("errors", "status_code", status_codes=["ERROR"])
POLICIES: dict[str, list[dict[str, Any]]] = {
    "status": [ERRORS],
    "status_ok_unset": [_p("ok", "status_code", status_codes=["OK", "UNSET"])],
    "latency": [_p("band", "latency", threshold_ms=150, upper_threshold_ms=300)],
    "numeric": [_p("code", "numeric_attribute", key="code", min_value=500, max_value=599)],
    "numeric_min": [_p("code", "numeric_attribute", key="code", min_value=400)],
    "numeric_invert": [
        _p("code", "numeric_attribute", key="code", min_value=500, max_value=599, invert_match=True)
    ],
    "string": [_p("route", "string_attribute", key="http.route", values=["/health", "/api/x"])],
    "string_regex": [
        _p(
            "route",
            "string_attribute",
            key="http.route",
            values=["^/api/", "y$"],
            enabled_regex_matching=True,
        )
    ],
    "string_invert": [
        _p("route", "string_attribute", key="http.route", values=["/health"], invert_match=True)
    ],
    "string_resource": [_p("svc", "string_attribute", key="service.name", values=["b"])],
    "boolean": [_p("force", "boolean_attribute", key="force", value=True)],
    "boolean_invert": [
        _p("force", "boolean_attribute", key="force", value=True, invert_match=True)
    ],
    "probabilistic": [_p("p", "probabilistic", sampling_percentage=30)],
    "probabilistic_salt": [_p("p", "probabilistic", hash_salt="layer-2", sampling_percentage=12.5)],
    "span_count": [_p("count", "span_count", min_spans=2, max_spans=3)],
    "trace_state": [_p("ts", "trace_state", key="vendor", values=["x"])],
    "ottl": [
        _p(
            "ottl",
            "ottl_condition",
            error_mode="ignore",
            span=['attributes["k"] == "v"', 'resource.attributes["tier"] > 2'],
            spanevent=['name == "boom"'],
        )
    ],
    "and": [
        _p(
            "both",
            "and",
            and_sub_policy=[
                _p("svc", "string_attribute", key="service.name", values=["a"]),
                _p("route", "string_attribute", key="http.route", values=["/x"], invert_match=True),
                ERRORS,
            ],
        )
    ],
    "drop": [
        _p("all", "always_sample"),
        _p(
            "no-health",
            "drop",
            drop_sub_policy=[
                _p("health", "string_attribute", key="http.route", values=["/health"])
            ],
        ),
    ],
    "union": [
        ERRORS,
        _p("p", "probabilistic", sampling_percentage=5),
        _p("count", "span_count", min_spans=5),
    ],
}


def _traces() -> list[ExportTraceServiceRequest]:
    """Random traces, each spread over the three requests sent one after the other."""
    rng = np.random.default_rng(2024)
    routes = ["/health", "/api/x", "/api/y", "/x", "", None]
    states = ["", "vendor=x", "vendor=y", "a=b,vendor=x", "Vendor=x", "vendor=x,vendor=y"]
    services = [
        {"service.name": "a"},
        {"service.name": "b", "tier": 3},
        {"service.name": "c", "tier": 1},
    ]
    requests: list[dict[int, list[Span]]] = [{}, {}, {}]
    span_number = 0
    for _ in range(TRACES):
        trace_id = rng.bytes(16)
        service = int(rng.integers(0, 3))
        state = states[int(rng.integers(0, len(states)))]
        for _ in range(int(rng.integers(1, 6))):
            span_number += 1
            attrs: dict[str, Any] = {}
            route = routes[int(rng.integers(0, len(routes)))]
            if route is not None:
                attrs["http.route"] = route
            roll = rng.random()
            if roll < 0.5:
                attrs["code"] = int(rng.integers(200, 600))
            elif roll < 0.6:
                attrs["code"] = float(rng.integers(200, 600))  # Int() of a double is 0
            if rng.random() < 0.3:
                attrs["force"] = bool(rng.random() < 0.5)
            if rng.random() < 0.1:
                attrs["k"] = "v"
            start = int(rng.integers(0, 250))
            span = Span(
                trace_id=trace_id,
                span_id=span_number.to_bytes(8, "big"),
                parent_span_id=b"\x01" * 8,
                name="op",
                start_time_unix_nano=BASE + start * MS,
                end_time_unix_nano=BASE + (start + int(rng.integers(0, 250))) * MS,
                status=Status(code=int(rng.choice([0, 0, 0, 1, 2]))),
                attributes=[kv(k, v) for k, v in attrs.items()],
                trace_state=state,
                events=[Span.Event(name="boom", time_unix_nano=BASE)]
                if rng.random() < 0.05
                else [],
            )
            requests[int(rng.integers(0, 3))].setdefault(service, []).append(span)
    return [
        ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[kv(k, v) for k, v in services[s].items()]),
                    scope_spans=[ScopeSpans(scope=InstrumentationScope(name="lib"), spans=spans)],
                )
                for s, spans in sorted(by_service.items())
            ]
        )
        for by_service in requests
    ]


def _kept_by_us(policies: list[dict[str, Any]], batches: list[Batch]) -> dict[str, int]:
    import asyncio

    class Sink:
        def __init__(self) -> None:
            self.batches: list[Batch] = []

        async def consume(self, batch: Batch) -> None:
            self.batches.append(batch)

    async def go() -> dict[str, int]:
        clock = FakeClock()
        config = TailSamplingConfig.model_validate({"decision_wait": "1s", "policies": policies})
        processor = TailSamplingProcessor("tail_sampling", config, Telemetry(), clock)
        sink = Sink()
        processor.next = sink
        for batch in batches:
            await processor.consume(batch)
        clock.now += 2
        await processor.tick()
        kept: dict[str, int] = {}
        for out in sink.batches:
            for rs in encode(out).resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        kept[span.trace_id.hex()] = kept.get(span.trace_id.hex(), 0) + 1
        return kept

    return asyncio.run(go())


def _kept_by_collector(path: Path) -> dict[str, int]:
    kept: dict[str, int] = {}
    if not path.exists():
        return kept
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    kept[span["traceId"]] = kept.get(span["traceId"], 0) + 1
    return kept


@pytest.fixture(scope="module")
def collector_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[Batch]]:
    binary = tailsampling_otelcol()
    tmp = tmp_path_factory.mktemp("tail-interop")
    requests = _traces()
    processors = {
        f"tail_sampling/{name}": {"decision_wait": "1s", "policies": policies}
        for name, policies in POLICIES.items()
    }
    exporters = {f"file/{name}": {"path": str(tmp / f"{name}.json")} for name in POLICIES}
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{free_port()}"}}}},
        "processors": processors,
        "exporters": exporters,
        "service": {
            "telemetry": {
                "logs": {"level": "warn"},
                "metrics": {
                    "level": "normal",
                    "readers": [
                        {
                            "pull": {
                                "exporter": {
                                    "prometheus": {"host": "127.0.0.1", "port": free_port()}
                                }
                            }
                        }
                    ],
                },
            },
            "pipelines": {
                f"traces/{name}": {
                    "receivers": ["otlp"],
                    "processors": [f"tail_sampling/{name}"],
                    "exporters": [f"file/{name}"],
                }
                for name in POLICIES
            },
        },
    }
    # OtelCol expects an HTTP endpoint too
    config["receivers"]["otlp"]["protocols"]["http"] = {"endpoint": f"127.0.0.1:{free_port()}"}
    collector = OtelCol(binary, tmp, config).start()
    try:
        with grpc.insecure_channel(collector.grpc_endpoint) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            for request in requests:
                stub.Export(request, timeout=10)
        # the Collector drops undecided traces on shutdown: wait for its decision ticks
        expected = TRACES * len(POLICIES)
        deadline = time.monotonic() + 60
        decided = 0.0
        while time.monotonic() < deadline:
            decided = collector.metric_sum(
                "otelcol_processor_tail_sampling_global_count_traces_sampled"
            )
            if decided >= expected:
                break
            time.sleep(0.2)
        assert decided == expected, collector.logs()[-3000:]
        assert collector.stop() == 0, collector.logs()[-3000:]
    finally:
        collector.__exit__()
    kept = {name: _kept_by_collector(tmp / f"{name}.json") for name in POLICIES}
    return kept, [decode_traces(r) for r in requests]


@pytest.mark.parametrize("name", list(POLICIES))
def test_same_traces_kept_as_the_collector(
    collector_output: tuple[dict, list[Batch]], name: str
) -> None:
    theirs, batches = collector_output
    ours = _kept_by_us(POLICIES[name], batches)
    assert 0 < len(theirs[name]) < TRACES or name == "drop"
    assert ours == theirs[name]
