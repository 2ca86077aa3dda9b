"""probabilistic_sampler: known answers from the Collector's own probabilisticsampler tests
(contrib 0.165: hash values, trace-state updates in equalizing/proportional modes, log
sampling counts), config validation messages, counters, grouping and sampling statistics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pydantic import ValidationError

from otlp.batch import Batch
from otlp.decode import decode_logs, decode_traces
from otlp.encode import encode
from otlp.telemetry import Telemetry
from processors.probabilistic_sampler.config import ProbabilisticSamplerConfig
from processors.probabilistic_sampler.processor import ProbabilisticSamplerProcessor
from processors.probabilistic_sampler.randomness import fnv_binary, seed_state
from processors.probabilistic_sampler.sampling import (
    parse_tracestate,
    probability_to_threshold,
    tvalue,
)
from tests.otlp_samples import kv, sample_traces

ID = "probabilistic_sampler/x"
DEFAULT_TID = bytes.fromhex("fefefefefefefefefe80000000000000")
IMPROBABLE_TID = bytes.fromhex("111111111111111111ffffffffffffff")


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


def make(**config: object) -> tuple[ProbabilisticSamplerProcessor, Sink, Telemetry]:
    telemetry = Telemetry()
    cfg = ProbabilisticSamplerConfig.model_validate(config)
    processor = ProbabilisticSamplerProcessor(ID, cfg, telemetry)
    sink = Sink()
    processor.next = sink
    return processor, sink, telemetry


def one_span(tid: bytes, trace_state: str = "", attributes: dict | None = None) -> Batch:
    span = Span(
        trace_id=tid,
        span_id=bytes.fromhex("00000000fefefefe"),
        name="s",
        trace_state=trace_state,
        attributes=[kv(k, v) for k, v in (attributes or {}).items()],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    return decode_traces(request)


def out_spans(sink: Sink) -> list[Span]:
    return [
        s
        for b in sink.batches
        for rs in encode(b).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]


# --- known answers: the arithmetic and the hash


def test_fnv_hash_known_answers() -> None:
    # the Collector's TestEmptyHashFunction: 14-bit buckets of the seed-0 hash
    assert int(fnv_binary(pa.array([b""], pa.binary()), seed_state(0))[0]) & 0x3FFF == 0x3515
    assert int(fnv_binary(pa.array([bytes(16)], pa.binary()), seed_state(0))[0]) & 0x3FFF == 0x2455


@pytest.mark.parametrize(
    ("probability", "precision", "expected"),
    [
        (0.5, 4, "8"),
        (0.25, 4, "c"),
        (0.01, 4, "fd70a"),
        (0.01, 3, "fd71"),
        (0.01, 14, "fd70a3d70a3d71"),
        (0.4, 3, "99a"),
        (0.4, 6, "99999a"),
        (0.2, 6, "cccccd"),
        (1.0, 4, "0"),
    ],
)
def test_probability_to_threshold(probability: float, precision: int, expected: str) -> None:
    assert tvalue(probability_to_threshold(probability, precision)) == expected


def test_tracestate_parsing_keeps_other_vendors_and_reports_errors() -> None:
    state = parse_tracestate(" ot=rv:90000000000000;th:8;xx:y , vendor=abc")
    assert state.error is None
    assert (state.otel.rvalue, state.otel.tvalue, state.otel.extras) == (
        "90000000000000",
        "8",
        [("xx", "y")],
    )
    assert state.serialize() == "ot=rv:90000000000000;th:8;xx:y,vendor=abc"
    assert parse_tracestate("ot=rv:abababababababab").error == "r-value must have 14 hex digits"
    assert parse_tracestate("ot=th:abababababababab").error == "t-value exceeds 14 hex digits"
    assert parse_tracestate("ot=th:").error == "t-value is empty"
    assert parse_tracestate("Bad=1").error == "invalid syntax"


# --- known answers: the Collector's Test_tracesamplerprocessor_TraceState table
# (case, percentage, precision, trace id, incoming trace state, priority,
#  expected per mode: None = dropped, else the outgoing trace state)

EQ, PROP = "equalizing", "proportional"
TRACE_STATE_CASES = [
    ("100 percent", 100, 14, None, "", None, {EQ: "ot=th:0", PROP: "ot=th:0"}),
    ("50 percent sampled", 50, 14, None, "", None, {EQ: "ot=th:8", PROP: "ot=th:8"}),
    ("25 percent sampled", 25, 14, "ddddddddddddddddddc0000000000000", "", None,
     {EQ: "ot=th:c", PROP: "ot=th:c"}),
    ("25 percent unsampled", 25, 14, "ddddddddddddddddddb0000000000000", "", None,
     {EQ: None, PROP: None}),
    ("1 percent sampled", 1, 14, None, "ot=rv:FD70A3D70A3D71", None,
     {m: "ot=rv:FD70A3D70A3D71;th:fd70a3d70a3d71" for m in (EQ, PROP)}),
    ("1 percent precision 4", 1, 4, None, "ot=rv:FD70A3D70A3D71", None,
     {m: "ot=rv:FD70A3D70A3D71;th:fd70a" for m in (EQ, PROP)}),
    ("1 percent precision 3", 1, 3, None, "ot=rv:FD70A3D70A3D71", None, {EQ: None, PROP: None}),
    ("1 percent not sampled with rvalue", 1, 14, None, "ot=rv:FD70A3D70A3D70", None,
     {EQ: None, PROP: None}),
    ("49 percent not sampled with default tid", 49, 14, None, "", None, {EQ: None, PROP: None}),
    ("1 percent sampled with rvalue", 1, 14, None, "ot=rv:fd70B000000000", None,
     {m: "ot=rv:fd70B000000000;th:fd70a3d70a3d71" for m in (EQ, PROP)}),
    ("1 percent sampled with tid", 1, 4, "a0a0a0a0a0a0a0a0a0fe000000000000", "", None,
     {EQ: "ot=th:fd70a", PROP: "ot=th:fd70a"}),
    ("sampled by priority", 1, 14, None, "", 2, {EQ: "ot=th:0", PROP: "ot=th:0"}),
    ("not sampled by priority", 99, 14, None, "", 0, {EQ: None, PROP: None}),
    ("incoming 50 percent with rvalue", 50, 14, None, "ot=rv:90000000000000;th:80000000000000",
     None, {EQ: "ot=rv:90000000000000;th:8", PROP: None}),
    ("incoming 50 percent at 25 percent not sampled", 25, 14, None, "ot=th:8", None,
     {EQ: None, PROP: None}),
    ("incoming 50 percent at 25 percent sampled", 25, 14, "ff" * 16, "ot=th:8", None,
     {EQ: "ot=th:c", PROP: "ot=th:e"}),
    ("equalizing vs proportional", 50, 14, None, "ot=rv:c0000000000000;th:8", None,
     {EQ: "ot=rv:c0000000000000;th:8", PROP: "ot=rv:c0000000000000;th:c"}),
    ("inconsistent arriving threshold", 100, 14, None, "ot=rv:40000000000000;th:8", None,
     {m: "ot=rv:40000000000000;th:0" for m in (EQ, PROP)}),
    ("40 percent precision 3 with rvalue", 40, 3, None, "ot=rv:a0000000000000", None,
     {m: "ot=rv:a0000000000000;th:99a" for m in (EQ, PROP)}),
    ("arriving 50 percent at 40 percent precision 6", 40, 6, "a0a0a0a0a0a0a0a0a0d0000000000000",
     "ot=th:8", None, {EQ: "ot=th:99999a", PROP: "ot=th:cccccd"}),
    ("arriving 50 percent at 40 percent partly sampled", 40, 3,
     "a0a0a0a0a0a0a0a0a0b0000000000000", "ot=th:8", None, {EQ: "ot=th:99a", PROP: None}),
    ("arriving 50 percent at 40 percent not sampled", 40, 3,
     "a0a0a0a0a0a0a0a0a080000000000000", "ot=th:8", None, {EQ: None, PROP: None}),
    ("200 percent equals 100 percent", 200, 14, None, "", None, {EQ: "ot=th:0", PROP: "ot=th:0"}),
    ("tiny probability rounding", 100 * 2**-14, 14, IMPROBABLE_TID.hex(), "ot=th:fffc", None,
     {EQ: "ot=th:fffc", PROP: "ot=th:fffffff"}),
    ("almost 100pct sampling", (1 - 8e-7) * 100, 10, IMPROBABLE_TID.hex(), "", None,
     {m: "ot=th:00000cccccccd" for m in (EQ, PROP)}),
    ("probability underflow", 2**-4, 14, IMPROBABLE_TID.hex(), "ot=th:fffffffffffff8", None,
     {EQ: "ot=th:fffffffffffff8", PROP: None}),
]  # fmt: skip


@pytest.mark.parametrize("mode", [EQ, PROP])
@pytest.mark.parametrize("case", TRACE_STATE_CASES, ids=[c[0] for c in TRACE_STATE_CASES])
async def test_collector_tracestate_table(mode: str, case: tuple) -> None:
    _, pct, precision, tid, ts, priority, expected = case
    processor, sink, _ = make(
        sampling_percentage=pct,
        mode=mode,
        hash_seed=4312,
        sampling_precision=precision,
        fail_closed=False,
    )
    attributes = {} if priority is None else {"sampling.priority": priority}
    batch = one_span(bytes.fromhex(tid) if tid else DEFAULT_TID, ts, attributes)
    await processor.consume(batch)
    spans = out_spans(sink)
    if expected[mode] is None:
        assert spans == []
    else:
        assert [s.trace_state for s in spans] == [expected[mode]]


async def test_inconsistent_threshold_fails_closed() -> None:
    processor, sink, _ = make(sampling_percentage=1, mode=EQ, fail_closed=True)
    await processor.consume(one_span(DEFAULT_TID, "ot=rv:40000000000000;th:8"))
    assert out_spans(sink) == []


@pytest.mark.parametrize("mode", ["hash_seed", EQ, PROP])
@pytest.mark.parametrize(
    ("tid", "ts"),
    [(bytes(16), ""), (DEFAULT_TID, "ot=rv:abababababababab"), (DEFAULT_TID, "ot=th:abab")],
)
async def test_errors_fail_closed_by_default(mode: str, tid: bytes, ts: str) -> None:
    # missing randomness (empty trace id) and invalid r/t-values: dropped unless fail_closed
    # is false (a malformed th is only an error in the consistent modes' parsing, and in
    # hash_seed mode an arriving th or rv is one too)
    if ts == "ot=th:abab" and mode != "hash_seed":
        ts = "ot=th:abababababababab"
    processor, sink, telemetry = make(sampling_percentage=100, mode=mode)
    await processor.consume(one_span(tid, ts))
    assert out_spans(sink) == []
    assert (
        telemetry.value("otelcol_processor_dropped_spans_total", processor=ID, reason="sampled")
        == 1
    )
    processor, sink, _ = make(sampling_percentage=100, mode=mode, fail_closed=False)
    await processor.consume(one_span(tid, ts))
    assert len(out_spans(sink)) == 1


async def test_hash_seed_writes_randomness_and_threshold() -> None:
    # the Collector adds rv (its hash-derived randomness) and th to every span it keeps
    processor, sink, _ = make(sampling_percentage=25, hash_seed=22)
    tids = [bytes([i]) * 16 for i in range(1, 200)]
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    ScopeSpans(
                        spans=[Span(trace_id=t, span_id=b"\x01" * 8, name="s") for t in tids]
                    )
                ]
            )
        ]
    )
    await processor.consume(decode_traces(request))
    spans = out_spans(sink)
    assert 20 < len(spans) < 80
    for span in spans:
        state = parse_tracestate(span.trace_state)
        assert state.otel.tvalue == "c"
        assert len(state.otel.rvalue) == 14
        # the top 14 bits of rv decide: th <= rv
        assert int(state.otel.rvalue, 16) >= 0xC << 52
    assert span.trace_state.startswith("ot=rv:")


@pytest.mark.parametrize(
    ("value", "kept"),
    [(0, False), (2, True), (0.0, False), (1.5, True), ("0", False), ("1", True), ("NaN", None)],
)
async def test_sampling_priority_values(value: object, kept: bool | None) -> None:
    for pct, default in ((0, False), (100, True)):
        processor, sink, _ = make(sampling_percentage=pct, hash_seed=4312)
        await processor.consume(one_span(DEFAULT_TID, "", {"sampling.priority": value}))
        assert bool(out_spans(sink)) == (default if kept is None else kept)


# --- logs: the Collector's TestLogsSampling counts over its 100 generated records (its
# configs are built without factory defaults, so fail_closed is false unless set)


def collector_logs() -> Batch:
    records = []
    for i in range(100):
        b = bytes([i])
        tid = bytes(8) + b * 8
        attributes = [
            kv("rando", int(fnv_binary(pa.array([tid], pa.binary()), seed_state(123))[0]))
        ]
        if i % 2 == 0:
            # pdata renders the empty (all-zero) trace id as ""
            attributes += [kv("foo", tid), kv("bar", tid.hex() if i else "")]
        if i % 4 == 0:
            attributes.append(kv("priority", 100.0))
        records.append(
            LogRecord(time_unix_nano=1649400860, severity_number=5, trace_id=tid,
                      attributes=attributes)
        )  # fmt: skip
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])]
    )
    return decode_logs(request)


LOG_CASES = [
    ("happy_path", {"sampling_percentage": 100, "fail_closed": False}, 100),
    ("nothing", {"sampling_percentage": 0, "fail_closed": True}, 0),
    ("roughly half", {"sampling_percentage": 50, "mode": "hash_seed"}, 45),
    ("source no sampling", {"sampling_percentage": 0, "attribute_source": "record",
                            "from_attribute": "foo"}, 0),
    ("source all", {"sampling_percentage": 100, "attribute_source": "record",
                    "from_attribute": "foo", "fail_closed": False}, 100),
    ("source sampling", {"sampling_percentage": 50, "attribute_source": "record",
                         "from_attribute": "foo"}, 23),
    ("source as string", {"sampling_percentage": 50, "attribute_source": "record",
                          "from_attribute": "bar"}, 29),
    ("priority 0 record", {"sampling_percentage": 0, "sampling_priority": "priority",
                           "attribute_source": "record", "from_attribute": "rando",
                           "fail_closed": False}, 25),
    ("priority 50 record", {"sampling_percentage": 50, "sampling_priority": "priority",
                            "attribute_source": "record", "from_attribute": "rando",
                            "fail_closed": False}, 64),
    ("priority 100 record", {"sampling_percentage": 100, "sampling_priority": "priority",
                             "attribute_source": "record", "from_attribute": "rando",
                             "fail_closed": False}, 100),
    ("priority 0 traceid", {"sampling_percentage": 0, "sampling_priority": "priority",
                            "fail_closed": False}, 25),
    ("priority 50 traceid", {"sampling_percentage": 50, "sampling_priority": "priority",
                             "fail_closed": False}, 57),
    ("priority 100 traceid", {"sampling_percentage": 100, "sampling_priority": "priority",
                              "fail_closed": False}, 100),
]  # fmt: skip


@pytest.mark.parametrize("case", LOG_CASES, ids=[c[0] for c in LOG_CASES])
async def test_collector_logs_table(case: tuple) -> None:
    _, config, received = case
    processor, sink, telemetry = make(**config)
    await processor.consume(collector_logs())
    got = sum(b.item_count() for b in sink.batches)
    assert got == received
    assert (
        telemetry.value(
            "otelcol_processor_dropped_log_records_total", processor=ID, reason="sampled"
        )
        == 100 - received
    )


def log_attrs(sink: Sink) -> dict:
    request = encode(sink.batches[0])
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    from google.protobuf.json_format import MessageToDict

    return {a.key: MessageToDict(a.value) for a in record.attributes}


async def test_log_state_attributes() -> None:
    def one(tid: bytes, attributes: dict) -> Batch:
        record = LogRecord(trace_id=tid, attributes=[kv(k, v) for k, v in attributes.items()])
        return decode_logs(
            ExportLogsServiceRequest(
                resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
            )
        )

    # 100 percent, proportional: threshold 0 added
    processor, sink, _ = make(sampling_percentage=100, mode=PROP)
    await processor.consume(one(DEFAULT_TID, {"ignored": "value"}))
    assert log_attrs(sink) == {
        "ignored": {"stringValue": "value"},
        "sampling.threshold": {"stringValue": "0"},
    }
    # priority sampled with incoming randomness (the Collector's case, adjusted count ~9.88)
    processor, sink, _ = make(
        sampling_percentage=0, sampling_priority="veryrandom", sampling_precision=6
    )
    await processor.consume(
        one(DEFAULT_TID, {"sampling.randomness": "e6147c00000000", "veryrandom": 10.125})
    )
    assert log_attrs(sink)["sampling.threshold"] == {"stringValue": "e6147b"}
    # 25 percent incoming, proportional 50%: 12.5% -> "e"
    processor, sink, _ = make(sampling_percentage=50, mode=PROP)
    await processor.consume(
        one(bytes.fromhex("fefefefefefefefefef0000000000000"), {"sampling.threshold": "c"})
    )
    assert log_attrs(sink) == {"sampling.threshold": {"stringValue": "e"}}
    # hash_seed from an attribute: randomness and threshold recorded
    processor, sink, _ = make(
        sampling_percentage=100, attribute_source="record", from_attribute="veryrandom",
        hash_seed=49,
    )  # fmt: skip
    await processor.consume(one(b"", {"veryrandom": "1234"}))
    got = log_attrs(sink)
    assert got["sampling.threshold"] == {"stringValue": "0"}
    assert len(got["sampling.randomness"]["stringValue"]) == 14


# --- config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sampling_percentage": -1}, "sampling rate is negative: -1.000000%"),
        ({"sampling_percentage": float("nan")}, "sampling rate is invalid"),
        ({"sampling_percentage": 1e-20}, "sampling rate is too small: 1e-20%"),
        ({"sampling_precision": 0}, "invalid sampling precision: 0"),
        ({"sampling_precision": 15}, "sampling precision is too great, should be <= 14: 15"),
        ({"attribute_source": "span"}, "attribute_source"),
        ({"mode": "random"}, "mode"),
        ({"sampling_rate": 5}, "sampling_rate"),
    ],
)
def test_config_errors(config: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        ProbabilisticSamplerConfig.model_validate(config)


def test_defaults_match_the_collector() -> None:
    cfg = ProbabilisticSamplerConfig()
    assert (cfg.fail_closed, cfg.sampling_precision, cfg.attribute_source, cfg.mode) == (
        True,
        4,
        "traceID",
        "",
    )


# --- grouping, counters, statistics


async def test_grouping_kept_and_counters() -> None:
    # (one span has no trace id: kept only because errors fail open here)
    processor, sink, telemetry = make(sampling_percentage=100, fail_closed=False)
    batch = decode_traces(sample_traces())
    await processor.consume(batch)
    request = encode(sink.batches[0])
    original = sample_traces()
    assert len(request.resource_spans) == len(original.resource_spans)
    for got, want in zip(request.resource_spans, original.resource_spans, strict=True):
        assert got.resource == want.resource
        assert [ss.scope for ss in got.scope_spans] == [ss.scope for ss in want.scope_spans]
    total = batch.item_count()
    sampled = sum(
        telemetry.value(
            "otelcol_processor_probabilistic_sampler_count_spans_processed_total",
            processor=ID,
            policy=policy,
            sampled="true",
        )
        for policy in ("trace_id_hash", "missing_randomness")
    )
    assert sampled == total


def random_traces(n: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    spans = [Span(trace_id=ids[i].tobytes(), span_id=b"\x01" * 8, name="s") for i in range(n)]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    return decode_traces(request)


@pytest.fixture(scope="module")
def traces_100k() -> Batch:
    return random_traces(100_000, 7)


@pytest.mark.parametrize("mode", ["hash_seed", EQ, PROP])
@pytest.mark.parametrize("pct", [1, 10, 33.3, 75])
async def test_kept_fraction_over_100k_traces(traces_100k: Batch, mode: str, pct: float) -> None:
    processor, sink, _ = make(sampling_percentage=pct, mode=mode, hash_seed=17)
    await processor.consume(traces_100k)
    kept = sum(b.item_count() for b in sink.batches)
    n = traces_100k.item_count()
    # the hash_seed mode has 14-bit resolution: its exact rate is floor(pct * 163.84) / 2**14
    p = int(np.float32(pct) * np.float32(163.84)) / 2**14 if mode == "hash_seed" else pct / 100
    sigma = (n * p * (1 - p)) ** 0.5
    assert abs(kept - n * p) < 5 * sigma, (kept, n * p)
