"""probabilistic_sampler with real peers: the OTel Python SDK's consistent-probability
sampler (its composable trace-id-ratio sampler, which writes ``th`` into the trace state)
against ours, in process and end to end through two separate collector processes writing
to the embedded ClickHouse."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace._sampling_experimental import (
    composable_traceid_ratio_based,
    composite_sampler,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision

from otlp.batch import Batch
from otlp.decode import decode_traces
from otlp.encode import encode
from otlp.telemetry import Telemetry
from processors.probabilistic_sampler.config import ProbabilisticSamplerConfig
from processors.probabilistic_sampler.processor import ProbabilisticSamplerProcessor
from tests.harness import Collector, base_config, ports, query_store
from tests.sdk_clients import exporters

N_IDS = 20_000


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


async def ours(trace_ids: list[int], pct: float, precision: int) -> dict[int, str]:
    """trace id -> outgoing trace state, for the spans our proportional sampler keeps."""
    config = ProbabilisticSamplerConfig(
        sampling_percentage=pct, mode="proportional", sampling_precision=precision
    )
    processor = ProbabilisticSamplerProcessor("p", config, Telemetry())
    sink = Sink()
    processor.next = sink
    spans = [Span(trace_id=t.to_bytes(16, "big"), span_id=b"\x01" * 8) for t in trace_ids]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    await processor.consume(decode_traces(request))
    return {
        int.from_bytes(s.trace_id, "big"): s.trace_state
        for b in sink.batches
        for rs in encode(b).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    }


def sdk(trace_ids: list[int], ratio: float) -> dict[int, str]:
    """trace id -> trace state, for the traces the SDK's composable sampler keeps."""
    sampler = composite_sampler(composable_traceid_ratio_based(ratio))
    kept = {}
    for trace_id in trace_ids:
        result = sampler.should_sample(None, trace_id, "span")
        if result.decision == Decision.RECORD_AND_SAMPLE:
            kept[trace_id] = result.trace_state.to_header() if result.trace_state else ""
    return kept


@pytest.fixture(scope="module")
def trace_ids() -> list[int]:
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 256, size=(N_IDS, 16), dtype=np.uint8)
    return [int.from_bytes(row.tobytes(), "big") for row in raw]


@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("higher", [1.0, 1.5, 4.0])
async def test_sdk_kept_traces_are_kept_at_the_same_or_higher_ratio(
    trace_ids: list[int], ratio: float, higher: float
) -> None:
    by_sdk = sdk(trace_ids, ratio)
    our_pct = min(100.0, ratio * higher * 100)
    # full precision: thresholds encode exactly the ratio the SDK encodes
    by_us = await ours(trace_ids, our_pct, 14)
    assert by_sdk and set(by_sdk) <= set(by_us)
    if higher == 1.0:
        assert set(by_us) == set(by_sdk)
        # same threshold in the trace state: "ot=th:..." written the same way
        assert {by_us[t] for t in by_sdk} == {by_sdk[t] for t in by_sdk}
        assert all(state.startswith("ot=th:") for state in by_us.values())


async def test_default_precision_thresholds_are_rounded_not_inconsistent(
    trace_ids: list[int],
) -> None:
    # 10% is not a round hex fraction: at precision 4 the threshold is rounded to "e666"
    by_us = await ours(trace_ids, 10, 4)
    assert set(by_us.values()) == {"ot=th:e666"}
    assert all((t & ((1 << 56) - 1)) >= 0xE666 << 40 for t in by_us)


# --- end to end: SDK -> two collector processes -> embedded ClickHouse

TRACES = 300


def _send(endpoint: str, sampler: Any, service: str, n: int) -> set[str]:
    """``n`` one-span traces through the SDK's OTLP/gRPC exporter; the trace ids sent."""
    span_exporter, _, _ = exporters("grpc", endpoint, "")
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(span_exporter, max_export_batch_size=100))
    tracer = provider.get_tracer("e2e.sampling")
    sent = set()
    for i in range(n):
        with tracer.start_as_current_span("op", attributes={"i": i}) as span:
            ctx = span.get_span_context()
            if ctx.trace_flags.sampled:
                sent.add(format(ctx.trace_id, "032x"))
    provider.shutdown()
    return sent


@pytest.fixture(scope="module")
def two_collectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    collectors = {}
    for name in ("a", "b"):
        tmp = tmp_path_factory.mktemp(f"sampler-{name}")
        config = base_config(tmp)
        config["processors"]["probabilistic_sampler"] = {
            "sampling_percentage": 50,
            "mode": "proportional",
        }
        config["service"]["pipelines"] = {
            "traces": {
                "receivers": ["otlp"],
                "processors": ["probabilistic_sampler", "batch"],
                "exporters": ["clickhouse"],
            }
        }
        collectors[name] = (Collector(tmp, config, name), tmp / "store", ports(config))
    for collector, _, _ in collectors.values():
        collector.start(wait=False)
    try:
        for collector, _, _ in collectors.values():
            collector.wait_healthy()
        # the same 300 traces (ids fixed by the SDK's generator: one provider, two exporters)
        # reach both collectors
        endpoint_a, endpoint_b = (collectors[n][2]["grpc"] for n in ("a", "b"))
        span_a, _, _ = exporters("grpc", endpoint_a, "")
        span_b, _, _ = exporters("grpc", endpoint_b, "")
        provider = TracerProvider(
            resource=Resource.create({"service.name": "both"}), sampler=ALWAYS_ON
        )
        provider.add_span_processor(BatchSpanProcessor(span_a, max_export_batch_size=100))
        provider.add_span_processor(BatchSpanProcessor(span_b, max_export_batch_size=100))
        tracer = provider.get_tracer("e2e.sampling")
        both = set()
        for i in range(TRACES):
            with tracer.start_as_current_span("op", attributes={"i": i}) as span:
                both.add(format(span.get_span_context().trace_id, "032x"))
        provider.shutdown()
        # the SDK's own consistent sampler at 50% upstream of collector a
        upstream = _send(
            endpoint_a,
            composite_sampler(composable_traceid_ratio_based(0.5)),
            "upstream",
            TRACES,
        )
        for name, (collector, _, _) in collectors.items():
            runs[f"{name}_exit"] = collector.stop(signal.SIGTERM)
            runs[f"{name}_logs"] = collector.logs()
    finally:
        for collector, _, _ in collectors.values():
            collector.__exit__()
    runs["both"] = both
    runs["upstream"] = upstream
    runs["stores"] = {name: store for name, (_, store, _) in collectors.items()}
    return runs


def stored(store: Path, service: str) -> dict[str, str]:
    rows = query_store(
        store,
        f"SELECT TraceId, TraceState FROM otel.otel_traces WHERE ServiceName = '{service}'",
    )
    return {row["TraceId"]: row["TraceState"] for row in rows}


def test_two_processes_make_the_same_decisions(two_collectors: dict[str, Any]) -> None:
    assert two_collectors["a_exit"] == 0, two_collectors["a_logs"]
    assert two_collectors["b_exit"] == 0, two_collectors["b_logs"]
    a = stored(two_collectors["stores"]["a"], "both")
    b = stored(two_collectors["stores"]["b"], "both")
    assert a == b
    expected = {t for t in two_collectors["both"] if int(t[18:], 16) >= 0x80 << 48}
    assert set(a) == expected
    assert 0.3 * TRACES < len(a) < 0.7 * TRACES
    assert set(a.values()) == {"ot=th:8"}


def test_composes_with_the_sdk_sampler_upstream(two_collectors: dict[str, Any]) -> None:
    got = stored(two_collectors["stores"]["a"], "upstream")
    # the SDK kept 50% (th:8), ours halves that again: 25% overall, th:c
    expected = {t for t in two_collectors["upstream"] if int(t[18:], 16) >= 0xC0 << 48}
    assert set(got) == expected
    assert set(got.values()) == {"ot=th:c"}
