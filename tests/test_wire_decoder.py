"""The compiled wire decoder (otlp/_wire.c) against the Python decoder it replaces.

Contract: for any bytes, ``_wire.decode_*`` returns the tables the Python decoder would build, or
None ("let the Python decoder judge"). So whenever the compiled decoder accepts, the Python one
must accept too, with equal batches; and canonical requests (what every OTLP exporter sends) must
be accepted. Checked on generated requests, structure-aware random protobuf (unknown fields,
wire-type mismatches at every level of the schema), mutations and raw garbage.
"""

from __future__ import annotations

import gc
import hashlib
import math
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from otlp_samples import ALL_TYPES, REQUESTS, SAMPLES, assert_batches_equal, av, kv

from otlp import _wire as wire  # not skipped when missing: the install must build it
from otlp import batch as b
from otlp import decode
from otlp.anyvalue import as_string, go_float
from otlp.errors import InvalidRequestError

EXAMPLES = int(os.environ.get("AIRIS_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WIRE: dict[str, Callable[[bytes], Any]] = {
    "traces": wire.decode_traces,
    "logs": wire.decode_logs,
    "metrics": wire.decode_metrics,
}
REFUSED = "refused"


def compiled(signal: str, body: bytes) -> b.Batch | None:
    arrays = WIRE[signal](body)
    if arrays is None:
        return None
    batch = decode._from_wire(signal, arrays)
    for table in (batch.resources, batch.scopes, *batch.tables.values()):
        table.validate(full=True)  # offsets, UTF-8, buffer sizes: what the C side wrote
    return batch


def reference(signal: str, body: bytes) -> b.Batch | str:
    try:
        return decode.decode_protobuf_python(signal, body)
    except InvalidRequestError:
        return REFUSED


def _nan_safe(value: Any) -> Any:
    """Rows with NaN compare equal when both have NaN there (mutated bytes make NaNs)."""
    if isinstance(value, float) and math.isnan(value):
        return ("NaN", struct.pack("<d", value))
    if isinstance(value, list):
        return [_nan_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


def assert_same(fast: b.Batch, slow: b.Batch) -> None:
    assert (fast.signal, list(fast.tables)) == (slow.signal, list(slow.tables))
    for name, x, y in [
        ("resources", fast.resources, slow.resources),
        ("scopes", fast.scopes, slow.scopes),
        *((name, fast.tables[name], slow.tables[name]) for name in fast.tables),
    ]:
        assert x.schema == y.schema, name
        if _nan_safe(x.to_pylist()) != _nan_safe(y.to_pylist()):
            assert_batches_equal(fast, slow)  # shows the differing rows


def check(signal: str, body: bytes, *, accept: bool = False) -> b.Batch | None:
    """Compiled == Python whenever the compiled decoder takes the request."""
    fast = compiled(signal, body)
    if fast is None:
        assert not accept, "the compiled decoder deferred a canonical request"
        return None
    slow = reference(signal, body)
    assert slow != REFUSED, "the compiled decoder accepted what the Python decoder refuses"
    assert_same(fast, slow)
    return fast


def test_extension_is_built_from_this_source() -> None:
    """A stale build (edited _wire.c, no reinstall) would test old code: rebuild with
    `pip install -e .`."""
    source = Path(decode.__file__).with_name("_wire.c").read_bytes()
    assert wire.SOURCE_HASH == hashlib.sha256(source).hexdigest()[:16]
    assert decode.COMPILED


# ---------------------------------------------------------------------------------------------
# canonical requests: always accepted, always equal


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_samples(signal: str) -> None:
    check(signal, SAMPLES[signal]().SerializeToString(), accept=True)
    check(signal, b"", accept=True)


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_generated_requests(signal: str) -> None:
    @SETTINGS
    @given(REQUESTS[signal])
    def run(request: Any) -> None:
        check(signal, request.SerializeToString(), accept=True)

    run()


def test_benchmark_payloads() -> None:
    from benchmarks.payloads import make_templates

    for signal in ("traces", "logs", "metrics"):
        for size in (1, 64):
            for template in make_templates(signal, size, distinct=2):
                check(signal, template.render(7), accept=True)


def test_decode_protobuf_uses_it() -> None:
    body = SAMPLES["traces"]().SerializeToString()
    calls = []

    def spy(data: bytes) -> Any:
        calls.append(data)
        return wire.decode_traces(data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(decode._WIRE, "traces", spy)
        batch = decode.decode_protobuf("traces", body)
    assert calls == [body]
    assert_same(batch, decode.decode_protobuf_python("traces", body))


# ---------------------------------------------------------------------------------------------
# structure-aware random protobuf: every message level of the schema, random fields


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, wire_type: int, payload: Any) -> bytes:
    tag = _varint(number << 3 | wire_type)
    if wire_type == 0:
        return tag + _varint(payload)
    if wire_type == 1:
        return tag + struct.pack("<Q", payload & (1 << 64) - 1)
    if wire_type == 5:
        return tag + struct.pack("<I", payload & (1 << 32) - 1)
    return tag + _varint(len(payload)) + payload


_scalars = st.one_of(
    st.integers(0, 3), st.integers(0, 2**64 - 1), st.integers(-(2**63), -1), st.just(2**31)
)
_leaf_payloads = st.one_of(
    st.binary(max_size=20),
    st.text(max_size=8).map(str.encode),
    st.sampled_from([bytes(range(1, 17)), bytes(range(1, 9)), b"\xff\xfe", b"\xc0\x80"]),
    st.sampled_from([kv(k, v).SerializeToString() for k, v in ALL_TYPES.items()]),
    st.sampled_from([av(v).SerializeToString() for v in ALL_TYPES.values()]),
)


def _fields(payloads: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A message body: fields numbered 1..16 (mostly the schema's), any wire type."""
    field = st.one_of(
        st.builds(_field, st.integers(1, 16), st.sampled_from([0, 1, 5]), _scalars),
        st.builds(_field, st.integers(1, 16), st.just(2), payloads),
    )
    return st.lists(field, max_size=6).map(b"".join)


random_messages = st.recursive(_leaf_payloads, _fields, max_leaves=25)


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_random_protobuf(signal: str) -> None:
    @SETTINGS
    @given(_fields(random_messages))
    def run(body: bytes) -> None:
        check(signal, body)

    run()


# ---------------------------------------------------------------------------------------------
# mutations of valid requests and raw garbage: same accept / reject decision


def _mutate(body: bytes, kind: int, at: int, data: bytes) -> bytes:
    at = at % (len(body) + 1)
    if kind == 0:  # truncate
        return body[:at]
    if kind == 1:  # overwrite bytes
        return body[:at] + data + body[at + len(data) :]
    if kind == 2:  # insert bytes
        return body[:at] + data + body[at:]
    return body[:at] + body[at + len(data) :]  # delete bytes


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_mutated_requests(signal: str) -> None:
    @SETTINGS
    @given(
        REQUESTS[signal],
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.binary(min_size=1, max_size=3)),
            min_size=1,
            max_size=3,
        ),
    )
    def run(request: Any, mutations: list[tuple[int, int, bytes]]) -> None:
        body = request.SerializeToString()
        for kind, at, data in mutations:
            body = _mutate(body, kind, at, data)
        check(signal, body)

    run()


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_garbage(signal: str) -> None:
    @SETTINGS
    @given(st.binary(max_size=64))
    def run(body: bytes) -> None:
        check(signal, body)
        # whichever decoder ends up judging it, a bad request is an InvalidRequestError
        try:
            decode.decode_protobuf(signal, body)
        except InvalidRequestError:
            pass

    run()


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_every_truncation_of_a_sample(signal: str) -> None:
    body = SAMPLES[signal]().SerializeToString()
    for end in range(len(body)):
        check(signal, body[:end])


# ---------------------------------------------------------------------------------------------
# known cases


def _len(number: int, payload: bytes) -> bytes:
    return _field(number, 2, payload)


def _traces(*spans: bytes, resource: bytes = b"", scope: bytes = b"") -> bytes:
    holder = b"".join(_len(2, s) for s in spans) + (_len(1, scope) if scope else b"")
    return _len(1, (_len(1, resource) if resource else b"") + _len(2, holder))


def _span_attr(kv_bytes: bytes) -> bytes:
    return _len(9, kv_bytes)


def _logs(*records: bytes) -> bytes:
    return _len(1, _len(2, b"".join(_len(2, r) for r in records)))


def _metrics(*metrics: bytes) -> bytes:
    return _len(1, _len(2, b"".join(_len(2, x) for x in metrics)))


KEY = _len(1, b"k")
DEEP = 40  # AnyValue levels: beyond the compiled decoder's 32, within upb's 100 messages


def _nested(levels: int) -> bytes:
    value = AnyValue(int_value=1)
    for _ in range(levels):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return KeyValue(key="k", value=value).SerializeToString()


# (signal, body, compiled decoder takes it?) -- either way the batches must agree
CASES = {
    # unknown fields and known fields with another wire type are skipped (as upb does)
    "unknown span field": ("traces", _traces(_field(99, 0, 5) + _len(5, b"n")), True),
    "span name as varint": ("traces", _traces(_field(5, 0, 1)), True),
    "span flags as varint": ("traces", _traces(_field(16, 0, 7)), True),
    "span attribute as fixed32": ("traces", _traces(_field(9, 5, 1)), True),
    "request field as varint": ("traces", _field(1, 0, 1), True),
    "kv value as varint": ("traces", _traces(_span_attr(KEY + _field(2, 0, 1))), True),
    "anyvalue string as varint": ("traces", _traces(_span_attr(KEY + _len(2, b"\x08\x01"))), True),
    "anyvalue unknown field": (
        "traces",
        _traces(_span_attr(KEY + _len(2, b"\x18\x05\x50\x01"))),
        True,
    ),
    "kv value before key": ("traces", _traces(_span_attr(_len(2, b"\x18\x05") + KEY)), True),
    "kv key twice": (
        "traces",
        _traces(_span_attr(KEY + _len(1, b"z") + _len(2, b"\x18\x05"))),
        True,
    ),
    "kv key_strindex": ("traces", _traces(_span_attr(KEY + _field(3, 0, 4))), True),
    "strindex value": ("traces", _traces(_span_attr(KEY + _len(2, b"\x40\x03"))), True),
    "bool value 5": ("traces", _traces(_span_attr(KEY + _len(2, b"\x10\x05"))), True),
    "10-byte varint": (
        "traces",
        _traces(_span_attr(KEY + _len(2, b"\x18" + b"\xff" * 9 + b"\x7f"))),
        True,
    ),
    "non-minimal tag and length": ("traces", _traces(b"\xaa\x00\x81\x00n"), True),
    "span fields twice: last wins": ("traces", _traces(_len(5, b"a") + _len(5, b"b")), True),
    "status twice: last bytes win": (
        "traces",
        _traces(_len(15, b"\x12\x01a") + _len(15, b"\x18\x02")),
        True,
    ),
    "resource twice: merged": (
        "traces",
        _len(1, _len(1, _len(1, KEY)) + _len(2, b"") + _len(1, _field(2, 0, 3))),
        True,
    ),
    "scope twice: merged": (
        "traces",
        _len(1, _len(2, _len(1, _len(1, b"a")) + _len(1, _len(2, b"v")))),
        True,
    ),
    "negative kind": ("traces", _traces(_field(6, 0, -1)), True),
    "kind out of int8": ("traces", _traces(_field(6, 0, 300)), False),
    "status code out of int8": ("traces", _traces(_len(15, _field(3, 0, 128))), False),
    "invalid UTF-8 name": ("traces", _traces(_len(5, b"\xff")), False),
    "invalid UTF-8 trace_state": ("traces", _traces(_len(3, b"\xed\xa0\x80")), False),
    "invalid UTF-8 key": ("traces", _traces(_span_attr(_len(1, b"\xc0\x80"))), False),
    "invalid UTF-8 value": (
        "traces",
        _traces(_span_attr(KEY + _len(2, _len(1, b"\xf4\x90\x80\x80")))),
        False,
    ),
    # keys and string values are checked a column at a time (text_ok in _wire.c)
    "invalid UTF-8 key among valid ones": (
        "traces",
        _traces(_span_attr(KEY + _len(2, _len(1, b"v"))) + _span_attr(_len(1, b"ok\xe2\x82"))),
        False,
    ),
    "a character split over two keys": (
        "traces",
        _traces(_span_attr(_len(1, b"a\xc3")) + _span_attr(_len(1, b"\xa9b"))),
        False,
    ),
    "a character split over two values": (
        "traces",
        _traces(
            _span_attr(KEY + _len(2, _len(1, b"\xc3")))
            + _span_attr(KEY + _len(2, _len(1, b"\xa9")))
        ),
        False,
    ),
    "non-ASCII keys and values after ASCII ones": (
        "traces",
        _traces(
            _span_attr(KEY + _len(2, _len(1, b"plain")))
            + _span_attr(_len(1, "분석".encode()) + _len(2, _len(1, "é\u2028🙂".encode())))
        ),
        True,
    ),
    "invalid UTF-8 in the first of a key twice": (
        "traces",
        _traces(_span_attr(_len(1, b"\xff") + KEY + _len(2, b"\x18\x05"))),
        False,
    ),
    "invalid UTF-8 log body": ("logs", _logs(_len(5, _len(1, b"\xff"))), False),
    "invalid UTF-8 resource key": (
        "traces",
        _len(1, _len(1, _len(1, _len(1, b"\x80")))),
        False,
    ),
    "invalid UTF-8 metric point value": (
        "metrics",
        _metrics(
            _len(
                5,
                _len(
                    1,
                    _len(
                        7,
                        _len(1, b"k")
                        + _len(
                            2,
                            _len(1, b"\xc3("),
                        ),
                    ),
                ),
            )
        ),
        False,
    ),
    "invalid UTF-8 nested": (
        "traces",
        _traces(_span_attr(KEY + _len(2, _len(5, _len(1, _len(1, b"\xff")))))),
        False,
    ),
    "invalid UTF-8 event name": ("traces", _traces(_len(11, _len(2, b"\xff"))), False),
    "invalid UTF-8 link state": ("traces", _traces(_len(13, _len(3, b"\xff"))), False),
    "invalid UTF-8 status": ("traces", _traces(_len(15, _len(2, b"\xff"))), False),
    "invalid UTF-8 scope name": ("traces", _traces(scope=_len(1, b"\xff")), False),
    "invalid UTF-8 entity id key": ("traces", _traces(resource=_len(3, _len(3, b"\xff"))), False),
    "invalid UTF-8 schema_url": ("traces", _len(1, _len(3, b"\xff")), False),
    "trace id of 15 bytes": ("traces", _traces(_len(1, b"x" * 15)), False),
    "link span id of 3 bytes": ("traces", _traces(_len(13, _len(2, b"abc"))), False),
    "value twice (upb merges)": (
        "traces",
        _traces(_span_attr(KEY + _len(2, b"\x18\x01") + _len(2, b"\x18\x02"))),
        False,
    ),
    "oneof twice (upb decides)": (
        "traces",
        _traces(_span_attr(KEY + _len(2, b"\x18\x01\x10\x01"))),
        False,
    ),
    "group (skipped by upb)": (
        "traces",
        _traces(_varint(99 << 3 | 3) + _varint(99 << 3 | 4)),
        False,
    ),
    "nested unknown field (non-canonical)": (
        "traces",
        _traces(_span_attr(KEY + _len(2, _len(5, _len(1, b"\x18\x01") + b"\x50\x01")))),
        False,
    ),
    "nested empty key written": (
        "traces",
        _traces(_span_attr(KEY + _len(2, _len(6, _len(1, _len(1, b"")))))),
        False,
    ),
    "array of canonical values": (
        "traces",
        _traces(_span_attr(kv("k", [1, "x", None, b"\x00", 2.5, True]).SerializeToString())),
        True,
    ),
    f"{DEEP} levels of arrays": ("traces", _traces(_span_attr(_nested(DEEP))), False),
    "32 levels of arrays": ("traces", _traces(_span_attr(_nested(31))), True),
    "log body twice: last wins": ("logs", _logs(_len(5, b"\x18\x01") + _len(5, b"\x08\x01")), True),
    "log body varint (no body)": ("logs", _logs(_field(5, 0, 1)), True),
    "log severity out of int8": ("logs", _logs(_field(2, 0, 1000)), False),
    "log span id of 7 bytes": ("logs", _logs(_len(10, b"x" * 7)), False),
    "metric data twice: merged": (
        "metrics",
        _metrics(_len(5, _len(1, b"")) + _len(5, _len(1, b""))),
        True,
    ),
    "metric data switches type": (
        "metrics",
        _metrics(_len(5, _len(1, b"")) + _len(7, _len(1, b""))),
        False,
    ),
    "histogram counts unpacked": (
        "metrics",
        _metrics(
            _len(9, _len(1, _field(6, 1, 3) + _field(6, 1, 4) + _len(6, struct.pack("<Q", 5))))
        ),
        True,
    ),
    "histogram counts packed badly": (
        "metrics",
        _metrics(_len(9, _len(1, _len(6, b"\x01\x02\x03")))),
        False,
    ),
    "exp buckets twice: merged": (
        "metrics",
        _metrics(_len(10, _len(1, _len(8, b"\x08\x03\x10\x01") + _len(8, b"\x12\x02\x02\x03")))),
        True,
    ),
    "temporality out of int8": ("metrics", _metrics(_len(7, _field(2, 0, 200))), False),
    "temporality on a gauge is ignored": ("metrics", _metrics(_len(5, _field(2, 0, 200))), True),
    "exemplar trace id of 3 bytes": (
        "metrics",
        _metrics(_len(5, _len(1, _len(5, _len(5, b"abc"))))),
        False,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_cases(name: str) -> None:
    signal, body, taken = CASES[name]
    batch = check(signal, body, accept=taken)
    if not taken:
        assert batch is None, "expected the compiled decoder to defer this request"
        assert wire.last_deferral() > 0  # the line of _wire.c that gave up on it
    # the public entry point gives the Python decoder's answer either way
    slow = reference(signal, body)
    if slow == REFUSED:
        with pytest.raises(InvalidRequestError):
            decode.decode_protobuf(signal, body)
    else:
        assert_same(decode.decode_protobuf(signal, body), slow)


def test_reject_messages_are_clear() -> None:
    with pytest.raises(InvalidRequestError, match="trace_id must be 16 bytes"):
        decode.decode_protobuf("traces", CASES["trace id of 15 bytes"][1])
    with pytest.raises(InvalidRequestError, match="cannot decode OTLP traces"):
        decode.decode_protobuf("traces", b"\x0a\x05\x0a")
    with pytest.raises(InvalidRequestError, match="UTF-8"):
        decode.decode_protobuf("traces", CASES["invalid UTF-8 key"][1])


def test_nested_values_render_like_pcommon() -> None:
    values = [
        [1, 2.0, "é\n<&>\u2028", None, b"\x00\xff", True, -0.0, 1e21, 1e-7, 123456.789],
        {"b": 1, "a": [], "c": {"x": None}, "": "empty key"},
        [math.nan],
        {"k": math.inf},
        [[[[]]]],
    ]
    for value in values:
        body = _traces(_span_attr(kv("k", value).SerializeToString()))
        batch = check("traces", body, accept=True)
        assert batch is not None
        row = batch.tables["spans"].column("attributes").to_pylist()[0][0]
        assert row["str"] == as_string(av(value))
        assert row["bytes"] == av(value).SerializeToString()


def test_kvlist_duplicate_keys_last_wins() -> None:
    pairs = [kv("b", 1), kv("a", math.nan), kv("b", 2), kv("a", "x")]
    value = AnyValue()
    value.kvlist_value.values.extend(pairs)
    body = _traces(_span_attr(KeyValue(key="k", value=value).SerializeToString()))
    batch = check("traces", body, accept=True)
    assert batch is not None
    row = batch.tables["spans"].column("attributes").to_pylist()[0][0]
    assert row["str"] == '{"a":"x","b":2}'  # the NaN was overwritten, so it never renders


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e21, 1e-6, 9.99e-7]))
def test_go_float(value: float) -> None:
    assert wire.go_float(value) == go_float(value)


def test_go_float_unsupported() -> None:
    for value in (math.nan, math.inf, -math.inf):
        assert wire.go_float(value) is None


# ---------------------------------------------------------------------------------------------
# memory: batches own their buffers; release from any thread; no work for unused capsules


def test_batches_outlive_the_decoder_scratch() -> None:
    """The column scratch is reused by the next call: earlier batches must not change."""
    bodies = [request.SerializeToString() for request in _two_trace_requests()]
    first = compiled("traces", bodies[0])
    expected = first.tables["spans"].to_pylist() if first else None
    for _ in range(3):
        compiled("traces", bodies[1])
    assert first is not None and first.tables["spans"].to_pylist() == expected


def _two_trace_requests() -> list[ExportTraceServiceRequest]:
    def request(name: str, n: int) -> ExportTraceServiceRequest:
        spans = [
            Span(name=f"{name}{i}", attributes=[kv("i", i), kv("s", name * i)]) for i in range(n)
        ]
        return ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
        )

    return [request("a", 50), request("b", 300)]


def test_release_from_another_thread() -> None:
    body = SAMPLES["metrics"]().SerializeToString()
    batches = [compiled("metrics", body) for _ in range(20)]
    columns = [batch.tables["gauge"].column("attributes") for batch in batches if batch]
    done = threading.Event()

    def drop() -> None:
        columns.clear()
        gc.collect()
        done.set()

    batches.clear()
    thread = threading.Thread(target=drop)
    thread.start()
    thread.join()
    assert done.is_set()


def test_unimported_capsules_are_freed() -> None:
    body = SAMPLES["logs"]().SerializeToString()
    for _ in range(200):
        assert WIRE["logs"](body) is not None  # dropped without import: the capsule frees it


def test_partial_import_of_a_request() -> None:
    """Tables of one request share one block: releasing some keeps the others valid."""
    body = SAMPLES["traces"]().SerializeToString()
    resources, scopes, spans = wire.decode_traces(body)
    table = pa.RecordBatch._import_from_c(wire.address(spans), b.SPANS)
    del resources, scopes
    gc.collect()
    table.validate(full=True)
    assert table.num_rows == 3


def test_wrong_signal_bytes_do_not_crash() -> None:
    for signal in ("traces", "logs", "metrics"):
        for other in ("traces", "logs", "metrics"):
            check(signal, SAMPLES[other]().SerializeToString())


def test_large_request() -> None:
    spans = [
        Span(
            trace_id=bytes(16),
            span_id=i.to_bytes(8, "big"),
            name="op",
            attributes=[kv("i", i), kv("s", "x" * (i % 50)), kv("a", [i, "y"])],
            status=Status(code=1),
        )
        for i in range(1, 3001)
    ]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    check("traces", request.SerializeToString(), accept=True)
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(log_records=[LogRecord(body=av({"n": i})) for i in range(2000)])
                ]
            )
        ]
    )
    check("logs", logs.SerializeToString(), accept=True)
    metrics = ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                scope_metrics=[
                    m.ScopeMetrics(
                        metrics=[
                            m.Metric(
                                name=f"h{i}",
                                histogram=m.Histogram(
                                    data_points=[m.HistogramDataPoint(bucket_counts=[1] * 50)]
                                ),
                            )
                            for i in range(500)
                        ]
                    )
                ]
            )
        ]
    )
    check("metrics", metrics.SerializeToString(), accept=True)
