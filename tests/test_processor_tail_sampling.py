"""tail_sampling: known answers per policy type on a fake clock (no sleeps), decision
combination, late spans, eviction under num_traces pressure, decision caches, composite rate
allocation, item accounting and config errors.

Probabilistic known answers come from the Collector's own functions (FNV-1a of salt + trace
id, compared with calculateThreshold), computed once with Go 1.x's hash/fnv and math/big.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp.batch import Batch
from otlp.config import validate
from otlp.decode import decode_traces
from otlp.encode import encode, encode_protobuf
from otlp.errors import BackpressureError, ConfigError
from otlp.telemetry import Telemetry
from processors.tail_sampling.config import TailSamplingConfig
from processors.tail_sampling.policies import fnv1a64, go_ratio_threshold
from processors.tail_sampling.processor import TailSamplingProcessor
from tests.fakes import FakeClock
from tests.otlp_samples import kv

PID = "tail_sampling/x"
MS = 1_000_000
BASE = 1_700_000_000_000 * MS


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)

    def spans(self) -> list[tuple[int, str]]:
        out = []
        for batch in self.batches:
            for rs in encode(batch).resource_spans:
                for ss in rs.scope_spans:
                    out += [(int.from_bytes(s.trace_id, "big"), s.name) for s in ss.spans]
        return out

    def trace_numbers(self) -> set[int]:
        return {t for t, _ in self.spans()}


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


_span_counter = 0


def span(
    trace: int | bytes,
    name: str = "op",
    start_ms: int = 0,
    dur_ms: int = 1,
    status: int = 0,
    attrs: dict[str, Any] | None = None,
    root: bool = False,
    trace_state: str = "",
    flags: int = 0,
    events: list[str] | None = None,
) -> Span:
    global _span_counter
    _span_counter += 1
    return Span(
        trace_id=trace if isinstance(trace, bytes) else tid(trace),
        span_id=_span_counter.to_bytes(8, "big"),
        parent_span_id=b"" if root else b"\x01" * 8,
        name=name,
        start_time_unix_nano=BASE + start_ms * MS,
        end_time_unix_nano=BASE + (start_ms + dur_ms) * MS,
        status=Status(code=status),
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
        trace_state=trace_state,
        flags=flags,
        events=[Span.Event(name=e, time_unix_nano=BASE) for e in (events or [])],
    )


def batch(*spans: Span, resource: dict[str, Any] | None = None, scope: str = "s") -> Batch:
    return request([(resource or {"service.name": "svc"}, list(spans))], scope)


def request(groups: list[tuple[dict[str, Any], list[Span]]], scope: str = "s") -> Batch:
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv(k, v) for k, v in attrs.items()]),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope), spans=spans)],
            )
            for attrs, spans in groups
        ]
    )
    return decode_traces(req)


def make(
    policies: list[dict[str, Any]], **config: Any
) -> tuple[TailSamplingProcessor, Sink, FakeClock, Telemetry]:
    telemetry = Telemetry()
    clock = FakeClock()
    cfg = TailSamplingConfig.model_validate(
        {"decision_wait": "10s", **config, "policies": policies}
    )
    processor = TailSamplingProcessor(PID, cfg, telemetry, clock)
    sink = Sink()
    processor.next = sink
    return processor, sink, clock, telemetry


async def run(policies: list[dict[str, Any]], *batches: Batch, **config: Any) -> set[int]:
    """Feed ``batches`` at time 0, decide after decision_wait: the sampled trace numbers."""
    processor, sink, clock, _ = make(policies, **config)
    for b in batches:
        await processor.consume(b)
    clock.now += processor.config.decision_wait
    await processor.tick()
    return sink.trace_numbers()


def dropped(telemetry: Telemetry, reason: str) -> float:
    return telemetry.value("otelcol_processor_dropped_spans_total", processor=PID, reason=reason)


def ts_metric(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.value(f"otelcol_processor_tail_sampling_{name}", processor=PID, **labels)


def policy(name: str, type_: str, **block: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": type_}
    if block:
        out[type_] = block
    return out


# ---- known answers per policy type ------------------------------------------------------


async def test_always_sample() -> None:
    got = await run([policy("all", "always_sample")], batch(span(1), span(2), span(3)))
    assert got == {1, 2, 3}


async def test_latency_uses_earliest_start_and_latest_end() -> None:
    spans = batch(
        span(1, start_ms=0, dur_ms=100),
        # two short spans far apart: the trace lasts 500 ms
        span(2, start_ms=0, dur_ms=50),
        span(2, start_ms=450, dur_ms=50),
        span(3, start_ms=0, dur_ms=200),  # exactly the threshold: not above it
    )
    assert await run([policy("slow", "latency", threshold_ms=200)], spans) == {2}


async def test_latency_with_upper_bound_checks_every_prefix_like_the_collector() -> None:
    spans = batch(
        span(1, dur_ms=100),
        span(2, dur_ms=50),
        span(2, dur_ms=500),
        # the running duration is 250 ms after the first span: sampled although it ends at 600
        span(3, dur_ms=250),
        span(3, dur_ms=600),
        span(4, dur_ms=300),
    )
    got = await run([policy("band", "latency", threshold_ms=200, upper_threshold_ms=300)], spans)
    assert got == {3, 4}


async def test_latency_matches_a_span_by_span_reference() -> None:
    """The vectorised running min/max against the Collector's loop, on random traces."""
    rng = np.random.default_rng(3)
    spans, expected = [], set()
    for t in range(1, 200):
        starts = rng.integers(0, 400, rng.integers(1, 6))
        durations = rng.integers(0, 400, len(starts))
        spans += [
            span(t, start_ms=int(s), dur_ms=int(d)) for s, d in zip(starts, durations, strict=True)
        ]
        lo = hi = None
        for s, d in zip(starts, durations, strict=True):
            lo = s if lo is None else min(lo, s)
            hi = s + d if hi is None else max(hi, s + d)
            if 150 < hi - lo <= 300:
                expected.add(t)
                break
    got = await run(
        [policy("band", "latency", threshold_ms=150, upper_threshold_ms=300)], batch(*spans)
    )
    assert got == expected


async def test_status_code() -> None:
    spans = batch(span(1, status=2), span(1), span(2, status=1), span(3))
    assert await run([policy("err", "status_code", status_codes=["ERROR"])], spans) == {1}
    assert await run([policy("ok", "status_code", status_codes=["OK", "UNSET"])], spans) == {
        1,
        2,
        3,
    }


async def test_numeric_attribute() -> None:
    spans = request(
        [
            ({"service.name": "a"}, [span(1, attrs={"code": 503}), span(2, attrs={"code": 200})]),
            # a double is not an int: the Collector reads its Int() as 0
            ({"service.name": "b"}, [span(3, attrs={"code": 550.0}), span(4)]),
            ({"code": 500}, [span(5)]),
        ]
    )
    cfg = {"key": "code", "min_value": 500, "max_value": 599}
    assert await run([policy("p", "numeric_attribute", **cfg)], spans) == {1, 5}
    # only a minimum: no upper bound
    assert await run([policy("p", "numeric_attribute", key="code", min_value=201)], spans) == {
        1,
        5,
    }
    inverted = {**cfg, "invert_match": True}
    assert await run([policy("p", "numeric_attribute", **inverted)], spans) == {2, 3, 4}


async def test_string_attribute_exact_regex_and_invert() -> None:
    spans = request(
        [
            (
                {"service.name": "shop"},
                [
                    span(1, attrs={"url.path": "/health"}),
                    span(2, attrs={"url.path": "/api/orders"}),
                    span(3, attrs={"url.path": 42}),  # not a string: ""
                    span(4, attrs={"url.path": ""}),
                    span(5),
                ],
            ),
            ({"service.name": "db", "url.path": "/metrics"}, [span(6)]),
        ]
    )
    exact = {"key": "url.path", "values": ["/health", "/metrics"]}
    assert await run([policy("p", "string_attribute", **exact)], spans) == {1, 6}
    regex = {"key": "url.path", "values": ["^/api/", "^/h.*h$"], "enabled_regex_matching": True}
    assert await run([policy("p", "string_attribute", **regex)], spans) == {1, 2}
    # an empty span value is skipped even when a regex would match it
    anything = {"key": "url.path", "values": [".*"], "enabled_regex_matching": True}
    assert await run([policy("p", "string_attribute", **anything)], spans) == {1, 2, 6}
    inverted = {**exact, "invert_match": True}
    assert await run([policy("p", "string_attribute", **inverted)], spans) == {2, 3, 4, 5}
    by_service = {"key": "service.name", "values": ["db"]}
    assert await run([policy("p", "string_attribute", **by_service)], spans) == {6}


async def test_boolean_attribute() -> None:
    spans = batch(
        span(1, attrs={"force": True}),
        span(2, attrs={"force": False}),
        span(3, attrs={"force": "true"}),  # a string: Bool() is false
        span(4),
    )
    assert await run([policy("p", "boolean_attribute", key="force", value=True)], spans) == {1}
    assert await run([policy("p", "boolean_attribute", key="force", value=False)], spans) == {
        2,
        3,
    }
    inverted = {"key": "force", "value": True, "invert_match": True}
    assert await run([policy("p", "boolean_attribute", **inverted)], spans) == {2, 3, 4}


# trace ids whose hashes the Collector's code gives (see the module docstring)
GO_IDS = [bytes((i * 37 + j * 11 + 1) & 255 for j in range(16)) for i in range(4)]
GO_HASHES = {
    "default-hash-seed": [
        6566297655744022269,
        1401896135286499085,
        11334519226201433629,
        4059715433469078141,
    ],
    "s": [8742921509671516210, 17375434011549279762, 1425623339083911874, 3988025120551884786],
}
GO_THRESHOLDS = {
    0: 0,
    0.1: 18446744073709551,
    1: 184467440737095519,
    10: 1844674407370955263,
    33.3: 6142765776545279999,
    50: 9223372036854775807,
    99.99: 18444899399302178815,
    100: 18446744073709551615,
    150: 18446744073709551615,
}


def test_probabilistic_hash_and_threshold_match_the_collector() -> None:
    raw = np.frombuffer(b"".join(GO_IDS), np.uint8).reshape(4, 16)
    for salt, hashes in GO_HASHES.items():
        assert fnv1a64(salt.encode(), raw).tolist() == hashes
    for percent, threshold in GO_THRESHOLDS.items():
        assert go_ratio_threshold(percent / 100) == threshold


async def test_probabilistic() -> None:
    spans = batch(*(span(t) for t in GO_IDS))
    number = {int.from_bytes(t, "big"): i for i, t in enumerate(GO_IDS)}
    got = await run([policy("p", "probabilistic", sampling_percentage=33.3)], spans)
    assert {number[t] for t in got} == {1, 3}
    salted = {"hash_salt": "s", "sampling_percentage": 33.3}
    got = await run([policy("p", "probabilistic", **salted)], spans)
    assert {number[t] for t in got} == {2, 3}
    assert await run([policy("p", "probabilistic", sampling_percentage=100)], spans) == set(number)


async def test_probabilistic_rate_over_many_traces() -> None:
    rng = np.random.default_rng(7)
    ids = [rng.bytes(16) for _ in range(4000)]
    got = await run([policy("p", "probabilistic", sampling_percentage=25)], batch(*map(span, ids)))
    assert 0.22 < len(got) / len(ids) < 0.28


async def test_rate_limiting_token_bucket() -> None:
    processor, sink, clock, _ = make([policy("r", "rate_limiting", spans_per_second=10)])
    # burst defaults to 2 x spans_per_second = 20 tokens, starting full
    for t in (1, 2, 3):
        await processor.consume(batch(*(span(t) for _ in range(8))))
    clock.now += 10
    await processor.tick()
    assert sink.trace_numbers() == {1, 2}
    # one second later: 4 + 10 tokens
    for t in (4, 5):
        await processor.consume(batch(*(span(t) for _ in range(8))))
    clock.now += 11
    await processor.tick()
    # 11 seconds refilled the bucket to its burst of 20: both fit
    assert sink.trace_numbers() == {1, 2, 4, 5}


async def test_rate_limiting_burst_capacity_caps_a_single_trace() -> None:
    big = batch(*(span(1) for _ in range(6)))
    cfg = {"spans_per_second": 100, "burst_capacity": 5}
    assert await run([policy("r", "rate_limiting", **cfg)], big) == set()


async def test_bytes_limiting_uses_the_protobuf_size() -> None:
    traces = [batch(span(t, name="same-size")) for t in (1, 2, 3)]
    size = len(encode_protobuf(traces[0]))
    cfg = {"bytes_per_second": 1, "burst_capacity": size * 2 + size // 2}
    assert await run([policy("b", "bytes_limiting", **cfg)], *traces) == {1, 2}


async def test_span_count() -> None:
    spans = batch(*(span(t) for t in (1, 2, 2, 3, 3, 3, 4, 4, 4, 4)))
    assert await run([policy("c", "span_count", min_spans=2, max_spans=3)], spans) == {2, 3}
    assert await run([policy("c", "span_count", min_spans=3)], spans) == {3, 4}


async def test_span_count_adds_spans_of_every_batch() -> None:
    first, second = batch(span(1), span(2)), batch(span(1))
    assert await run([policy("c", "span_count", min_spans=2)], first, second) == {1}


async def test_trace_state() -> None:
    spans = batch(
        span(1, trace_state="vendor=x"),
        span(2, trace_state="a=b, vendor=x"),
        span(3, trace_state="vendor=y"),
        span(4, trace_state="Vendor=x"),  # upper case keys are invalid
        span(5, trace_state="vendor=x,vendor=x"),  # duplicate keys are invalid
        span(6),
    )
    cfg = {"key": "vendor", "values": ["x", "z"]}
    assert await run([policy("t", "trace_state", **cfg)], spans) == {1, 2}


async def test_trace_flags() -> None:
    spans = batch(span(1, flags=1), span(2, flags=0x100), span(3))
    assert await run([policy("f", "trace_flags")], spans) == {1}


async def test_ottl_condition_span_and_spanevent() -> None:
    spans = batch(
        span(1, attrs={"k": "v"}),
        span(2, events=["boom"]),
        span(3, events=["fine"], attrs={"k": "w"}),
        span(4, attrs={"k": "v"}, name="other"),
    )
    cfg = {
        "span": ['attributes["k"] == "v" and name == "op"'],
        "spanevent": ['name == "boom"'],
    }
    assert await run([policy("o", "ottl_condition", **cfg)], spans) == {1, 2}


@pytest.mark.parametrize("mode", ["propagate", "ignore", "silent"])
async def test_ottl_condition_error_modes(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    spans = batch(span(1, attrs={"d": 5}), span(2, attrs={"d": 0}), span(3, attrs={"d": 20}))
    cfg = {"error_mode": mode, "span": ['10 / attributes["d"] > 1']}
    processor, sink, clock, telemetry = make(
        [
            policy("o", "ottl_condition", **cfg),
            policy("d0", "numeric_attribute", key="d", max_value=1),
        ]
    )
    with caplog.at_level(logging.WARNING, "airis.processor.tail_sampling"):
        await processor.consume(spans)
        clock.now += 10
        await processor.tick()
    # trace 2 fails only the OTTL policy; the other policy still samples it
    assert sink.trace_numbers() == {1, 2}
    errors = ts_metric(telemetry, "sampling_policy_evaluation_error_total")
    assert errors == (1 if mode == "propagate" else 0)
    assert ("divide by 0" in caplog.text) == (mode == "ignore")


async def test_and_policy() -> None:
    spans = request(
        [
            ({"service.name": "a"}, [span(1, status=2), span(2)]),
            ({"service.name": "b"}, [span(3, status=2)]),
        ]
    )
    cfg = {
        "and_sub_policy": [
            policy("svc", "string_attribute", key="service.name", values=["a"]),
            policy("err", "status_code", status_codes=["ERROR"]),
        ]
    }
    assert await run([policy("both", "and", **cfg)], spans) == {1}


async def test_not_policy() -> None:
    spans = batch(span(1, status=2), span(2))
    cfg = {"not_sub_policy": policy("err", "status_code", status_codes=["ERROR"])}
    assert await run([policy("no-errors", "not", **cfg)], spans) == {2}


async def test_drop_policy_wins_over_any_sample() -> None:
    spans = batch(
        span(1, attrs={"url.path": "/health"}),
        span(2, attrs={"url.path": "/health"}, status=2),
        span(3, attrs={"url.path": "/orders"}),
    )
    health = policy("health", "string_attribute", key="url.path", values=["/health"])
    errors = policy("errors", "status_code", status_codes=["ERROR"])
    policies = [
        policy("all", "always_sample"),
        policy("no-health", "drop", drop_sub_policy=[health]),
        # every sub-policy must agree for a drop
        policy("no-health-errors", "drop", drop_sub_policy=[health, errors]),
    ]
    processor, sink, clock, telemetry = make(policies)
    await processor.consume(spans)
    clock.now += 10
    await processor.tick()
    assert sink.trace_numbers() == {3}
    assert dropped(telemetry, "dropped_by_policy") == 2
    labels = {"policy": "x.no-health", "sampled": "false", "decision": "dropped"}
    assert ts_metric(telemetry, "count_traces_sampled_total", **labels) == 2
    # the Collector asks drop policies first and stops at the first drop
    labels = {"policy": "x.no-health-errors", "sampled": "false", "decision": "dropped"}
    assert ts_metric(telemetry, "count_traces_sampled_total", **labels) == 0
    labels = {"policy": "x.all", "sampled": "true", "decision": "sampled"}
    assert ts_metric(telemetry, "count_traces_sampled_total", **labels) == 1
    global_labels = {"sampled": "false", "decision": "dropped"}
    assert ts_metric(telemetry, "global_count_traces_sampled_total", **global_labels) == 2


async def test_invert_match_is_a_plain_decision_combined_with_the_others() -> None:
    # v0.165 turns invert_match into Sampled / NotSampled: any other Sampled still samples
    spans = batch(span(1, attrs={"team": "a"}), span(2, attrs={"team": "b"}, status=2))
    policies = [
        policy("not-a", "string_attribute", key="team", values=["a", "b"], invert_match=True),
        policy("errors", "status_code", status_codes=["ERROR"]),
    ]
    assert await run(policies, spans) == {2}


async def test_sample_on_first_match_spares_later_stateful_policies() -> None:
    spans = batch(*(span(t) for t in (1, 1, 2, 2, 3, 3)))
    policies = [
        policy("first", "numeric_attribute", key="nope", min_value=1, invert_match=True),
        policy("rate", "rate_limiting", spans_per_second=1, burst_capacity=2),
    ]
    processor, sink, clock, telemetry = make(policies, sample_on_first_match=True)
    await processor.consume(spans)
    clock.now += 10
    await processor.tick()
    assert sink.trace_numbers() == {1, 2, 3}
    assert ts_metric(telemetry, "sampling_policy_execution_count_total", policy="x.rate") == 0
    processor, sink, clock, telemetry = make(policies)
    await processor.consume(spans)
    clock.now += 10
    await processor.tick()
    assert ts_metric(telemetry, "sampling_policy_execution_count_total", policy="x.rate") == 3


async def test_composite_rate_allocation() -> None:
    cfg = {
        "max_total_spans_per_second": 10,
        "policy_order": ["prio", "rest"],
        "composite_sub_policy": [
            policy("prio", "numeric_attribute", key="prio", min_value=1),
            policy("rest", "always_sample"),
        ],
        # prio gets 50 % = 5 spans/s; rest, not allocated, an equal share: 10 / 2 = 5
        "rate_allocation": [{"policy": "prio", "percent": 50}],
    }
    processor, sink, clock, _ = make([policy("comp", "composite", **cfg)])
    # two-span traces: 1-3 match prio, 4-6 do not
    for t in range(1, 7):
        prio = {"prio": 1} if t <= 3 else {}
        await processor.consume(batch(span(t, attrs=prio), span(t)))
    clock.now += 10
    await processor.tick()
    # each share fits two traces (4 spans); the third that matches a sub-policy is refused
    # rather than tried on the next sub-policy, as in the Collector
    assert sink.trace_numbers() == {1, 2, 4, 5}
    # the next second starts with fresh budgets
    for t in (7, 8):
        await processor.consume(batch(span(t, attrs={"prio": 1}), span(t)))
    clock.now += 10
    await processor.tick()
    assert sink.trace_numbers() == {1, 2, 4, 5, 7, 8}


async def test_composite_with_and_sub_policy() -> None:
    cfg = {
        "max_total_spans_per_second": 100,
        "policy_order": ["errors-of-a"],
        "composite_sub_policy": [
            policy(
                "errors-of-a",
                "and",
                and_sub_policy=[
                    policy("svc", "string_attribute", key="service.name", values=["a"]),
                    policy("err", "status_code", status_codes=["ERROR"]),
                ],
            )
        ],
    }
    spans = request([({"service.name": "a"}, [span(1, status=2), span(2)])])
    assert await run([policy("comp", "composite", **cfg)], spans) == {1}


# ---- buffering, late spans, eviction, caches ----------------------------------------------


async def test_spans_wait_for_decision_wait_and_are_released_whole() -> None:
    processor, sink, clock, _ = make([policy("err", "status_code", status_codes=["ERROR"])])
    await processor.consume(batch(span(1, name="a"), span(2, name="b")))
    clock.now += 5
    await processor.consume(batch(span(1, name="c", status=2)))
    await processor.tick()
    assert sink.batches == []  # not due yet
    clock.now += 5
    await processor.tick()
    assert sorted(sink.spans()) == [(1, "a"), (1, "c")]
    assert processor.chunks == {}  # nothing buffered any more


async def test_late_spans_follow_the_decision() -> None:
    processor, sink, clock, telemetry = make([policy("err", "status_code", status_codes=["ERROR"])])
    await processor.consume(batch(span(1, status=2), span(2)))
    clock.now += 10
    await processor.tick()
    assert sink.trace_numbers() == {1}
    clock.now += 3
    await processor.consume(batch(span(1, name="late"), span(2, name="late", status=2)))
    # the late span of the sampled trace goes straight through; the other one is dropped
    assert sink.spans()[-1] == (1, "late")
    assert len(sink.batches) == 2
    assert dropped(telemetry, "not_sampled") == 2
    assert (
        telemetry.value(
            "otelcol_processor_tail_sampling_sampling_late_span_age_count", processor=PID
        )
        == 2
    )
    # the late error did not change trace 2's decision, even after another tick
    clock.now += 20
    await processor.tick()
    assert sink.trace_numbers() == {1}


async def test_decision_cache_remembers_after_the_trace_left_memory() -> None:
    processor, sink, clock, telemetry = make(
        [policy("err", "status_code", status_codes=["ERROR"])],
        decision_cache={"sampled_cache_size": 10, "non_sampled_cache_size": 10},
    )
    await processor.consume(batch(span(1, status=2), span(2)))
    clock.now += 10
    await processor.tick()
    assert processor.traces == {}  # cached decisions release the traces at once
    await processor.consume(batch(span(1, name="late"), span(2, name="late", status=2)))
    assert sink.spans()[-1] == (1, "late")
    assert ts_metric(telemetry, "early_releases_from_cache_decision_total", sampled="true") == 1
    assert ts_metric(telemetry, "early_releases_from_cache_decision_total", sampled="false") == 1


async def test_without_cache_an_evicted_decision_is_forgotten() -> None:
    processor, sink, clock, _ = make(
        [policy("err", "status_code", status_codes=["ERROR"])], num_traces=2
    )
    await processor.consume(batch(span(1), span(2)))
    clock.now += 10
    await processor.tick()
    # two new traces push the decided ones out of memory
    await processor.consume(batch(span(3), span(4)))
    assert set(processor.traces) == {tid(3), tid(4)}
    # a late error span of trace 1 is now a new trace and decided on its own
    await processor.consume(batch(span(1, name="late", status=2)))
    clock.now += 10
    await processor.tick()
    assert sink.spans() == [(1, "late")]


async def test_eviction_under_num_traces_pressure(caplog: pytest.LogCaptureFixture) -> None:
    processor, sink, clock, telemetry = make([policy("all", "always_sample")], num_traces=3)
    with caplog.at_level(logging.WARNING, "airis.processor.tail_sampling"):
        for t in range(1, 6):
            await processor.consume(batch(span(t), span(t)))
            assert len(processor.traces) <= 3
    # the two oldest traces were dropped before their decision
    assert set(processor.traces) == {tid(3), tid(4), tid(5)}
    assert ts_metric(telemetry, "sampling_trace_dropped_too_early_total") == 2
    assert dropped(telemetry, "evicted") == 4
    assert ts_metric(telemetry, "new_trace_id_received_total") == 5
    assert "num_traces reached" in caplog.text
    # only the chunks of traces still waiting are kept
    assert len(processor.chunks) == 3
    clock.now += 10
    await processor.tick()
    assert sink.trace_numbers() == {3, 4, 5}
    assert processor.chunks == {}


async def test_eviction_of_a_trace_sharing_the_incoming_batch() -> None:
    processor, sink, clock, telemetry = make([policy("all", "always_sample")], num_traces=1)
    await processor.consume(batch(span(1), span(2), span(3)))
    assert set(processor.traces) == {tid(3)}
    clock.now += 10
    await processor.tick()
    assert sink.trace_numbers() == {3}
    assert dropped(telemetry, "evicted") == 2
    assert processor.chunks == {}


async def test_block_on_overflow_answers_with_backpressure() -> None:
    processor, _, clock, _ = make(
        [policy("all", "always_sample")], num_traces=2, block_on_overflow=True
    )
    await processor.consume(batch(span(1), span(2)))
    with pytest.raises(BackpressureError):
        await processor.consume(batch(span(3)))
    await processor.consume(batch(span(1)))  # known traces are still accepted
    clock.now += 10
    await processor.tick()
    await processor.consume(batch(span(3)))  # decided traces make room
    # the oldest decided trace left memory to make room
    assert set(processor.traces) == {tid(2), tid(3)}


async def test_root_span_shortens_the_wait() -> None:
    processor, sink, clock, _ = make(
        [policy("all", "always_sample")], decision_wait_after_root_received="2s"
    )
    await processor.consume(batch(span(1), span(2)))
    clock.now += 1
    await processor.consume(batch(span(1, root=True)))
    clock.now += 2
    await processor.tick()
    assert sink.trace_numbers() == {1}


# ---- output shape and accounting ----------------------------------------------------------


async def test_resources_scopes_and_context_are_kept() -> None:
    processor, sink, clock, _ = make([policy("err", "status_code", status_codes=["ERROR"])])
    first = request(
        [
            ({"service.name": "front", "k": 1}, [span(1, name="f1"), span(2, name="f2")]),
            ({"service.name": "back"}, [span(1, name="b1", status=2)]),
        ],
        scope="lib",
    )
    first.context["tenant"] = "t1"
    second = batch(span(1, name="x"), resource={"service.name": "other"})
    second.context["tenant"] = "t2"
    await processor.consume(first)
    await processor.consume(second)
    clock.now += 10
    await processor.tick()
    assert sorted(b.context["tenant"] for b in sink.batches) == ["t1", "t2"]
    out = next(b for b in sink.batches if b.context["tenant"] == "t1")
    req = encode(out)
    got = [
        (
            {a.key for a in rs.resource.attributes},
            ss.scope.name,
            [s.name for s in ss.spans],
        )
        for rs in req.resource_spans
        for ss in rs.scope_spans
    ]
    assert got == [({"service.name", "k"}, "lib", ["f1"]), ({"service.name"}, "lib", ["b1"])]


async def test_every_span_is_counted() -> None:
    processor, sink, clock, telemetry = make(
        [
            policy("err", "status_code", status_codes=["ERROR"]),
            policy("drop-b", "drop", drop_sub_policy=[policy("b", "span_count", min_spans=3)]),
        ],
        num_traces=4,
    )
    for t in range(1, 9):
        await processor.consume(batch(*(span(t, status=2 if t % 2 else 0) for _ in range(t % 4))))
    clock.now += 5
    await processor.consume(batch(span(9), span(10, status=2)))
    clock.now += 5
    await processor.tick()
    incoming = telemetry.value("otelcol_processor_incoming_spans_total", processor=PID)
    outgoing = telemetry.value("otelcol_processor_outgoing_spans_total", processor=PID)
    lost = sum(
        dropped(telemetry, reason)
        for reason in ("not_sampled", "dropped_by_policy", "evicted", "shutdown")
    )
    assert outgoing == sum(
        len(encode(b).resource_spans[0].scope_spans[0].spans) for b in sink.batches
    )
    assert incoming == outgoing + lost + processor.pending_spans()
    assert processor.pending_spans() == 2
    await processor.flush()
    outgoing = telemetry.value("otelcol_processor_outgoing_spans_total", processor=PID)
    lost = sum(
        dropped(telemetry, reason)
        for reason in ("not_sampled", "dropped_by_policy", "evicted", "shutdown")
    )
    assert incoming == outgoing + lost
    assert sink.trace_numbers() >= {10}


async def test_shutdown_drops_pending_traces_when_asked() -> None:
    processor, sink, _, telemetry = make(
        [policy("all", "always_sample")], drop_pending_traces_on_shutdown=True
    )
    await processor.consume(batch(span(1), span(2)))
    await processor.flush()
    assert sink.batches == []
    assert dropped(telemetry, "shutdown") == 2


async def test_spans_after_the_shutdown_flush_are_decided_at_once() -> None:
    processor, sink, _, _ = make([policy("err", "status_code", status_codes=["ERROR"])])
    await processor.flush()
    await processor.consume(batch(span(1, status=2), span(2)))
    assert sink.trace_numbers() == {1}
    assert processor.pending_spans() == 0


async def test_ticker_decides_on_its_own() -> None:
    """start() runs the decision timer on the injected clock (FakeClock sleeps advance it)."""
    processor, sink, _, _ = make([policy("all", "always_sample")], decision_wait="2s")
    await processor.consume(batch(span(1)))
    await processor.start(None)  # type: ignore[arg-type]
    try:
        for _ in range(50):
            if sink.batches:
                break
            await asyncio.sleep(0)  # lets the ticker task run; its fake sleeps advance time
    finally:
        await processor.shutdown()
    assert sink.trace_numbers() == {1}


# ---- config -------------------------------------------------------------------------------


def load(processor_config: dict[str, Any], signal: str = "traces") -> Any:
    return validate(
        {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"tail_sampling": processor_config},
            "exporters": {"nop": {}},
            "service": {
                "pipelines": {
                    signal: {
                        "receivers": ["otlp"],
                        "processors": ["tail_sampling"],
                        "exporters": ["nop"],
                    }
                }
            },
        }
    )


def test_collector_style_config_loads_with_defaults() -> None:
    config = load(
        {
            "policies": [
                policy("a", "always_sample"),
                policy("l", "latency", threshold_ms=5000, upper_threshold_ms=10000),
                policy("n", "numeric_attribute", key="k", min_value=50, max_value=100),
                policy("p", "probabilistic", hash_salt="s", sampling_percentage=10),
                policy("s", "status_code", status_codes=["ERROR", "UNSET"]),
                policy("t", "string_attribute", key="k", values=["v", "w*"], cache_max_size=10),
                policy("r", "rate_limiting", spans_per_second=35),
                policy("b", "bytes_limiting", bytes_per_second=1024, burst_capacity=2048),
                policy("c", "span_count", min_spans=2, max_spans=20),
                policy("ts", "trace_state", key="k", values=["v"]),
                policy("bo", "boolean_attribute", key="k", value=True),
                policy("o", "ottl_condition", error_mode="ignore", span=['name == "x"']),
                policy("and", "and", and_sub_policy=[policy("x", "always_sample")]),
                policy("d", "drop", drop_sub_policy=[policy("y", "always_sample")]),
                policy(
                    "comp",
                    "composite",
                    max_total_spans_per_second=1000,
                    policy_order=["z"],
                    composite_sub_policy=[policy("z", "always_sample")],
                    rate_allocation=[{"policy": "z", "percent": 50}],
                ),
            ]
        }
    )
    ts = next(iter(config.components["processor"].values()))
    assert ts.decision_wait == 30.0
    assert ts.num_traces == 50000
    assert ts.expected_new_traces_per_sec == 0
    assert ts.decision_cache.sampled_cache_size == 0


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ([policy("s", "status_code", status_codes=["FAIL"])], 'unknown status code "FAIL"'),
        ([policy("s", "status_code")], "expected at least one status code"),
        ([policy("", "always_sample")], "policy name cannot be empty"),
        ([policy("a", "always_sample"), policy("a", "always_sample")], 'duplicate policy name "a"'),
        ([{"name": "a", "type": "sometimes"}], "type"),
        (
            [policy("r", "string_attribute", key="k", values=["("], enabled_regex_matching=True)],
            "invalid regex `(`",
        ),
        (
            [policy("o", "ottl_condition", span=['name == "x" and'])],
            "policies.0.ottl_condition.span: Value error, unable to parse OTTL condition "
            '"name == "x" and": 1:16: unexpected end of input',
        ),
        ([policy("o", "ottl_condition")], "expected at least one OTTL condition"),
        ([policy("n", "numeric_attribute", key="k")], "min_value or max_value"),
        ([{"name": "n", "type": "not"}], "not_sub_policy"),
        (
            [policy("and", "and", and_sub_policy=[policy("c", "composite")])],
            "type composite is not allowed here",
        ),
        ([policy("l", "latency", threshold=1)], "threshold"),
    ],
)
def test_bad_policies_fail_config_load(policies: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"policies": policies})
    assert "tail_sampling" in str(info.value)
    assert message in str(info.value)


def test_unsupported_keys_fail_config_load() -> None:
    with pytest.raises(ConfigError, match="maximum_trace_size_bytes"):
        load({"policies": [], "maximum_trace_size_bytes": 100})
    with pytest.raises(ConfigError, match="sampling_strategy"):
        load({"policies": [], "sampling_strategy": "span-ingest"})


def test_traces_only() -> None:
    with pytest.raises(ConfigError, match="tail_sampling"):
        load({"policies": []}, signal="logs")
