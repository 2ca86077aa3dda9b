"""Known-answer tests: every OTLP field lands in the batch, and bad requests are refused."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from otlp_samples import (
    ALL_TYPES,
    ALL_TYPES_JSON,
    PARENT_ID,
    SPAN_ID,
    TRACE_ID,
    assert_batches_equal,
    av,
    kv,
    sample_logs,
    sample_metrics,
    sample_traces,
)

import otlp.anyvalue
from otlp import batch as b
from otlp.anyvalue import as_string, go_float
from otlp.decode import decode_logs, decode_metrics, decode_protobuf, decode_traces
from otlp.errors import InvalidRequestError
from otlp.shadow import REAL_REQUEST


@pytest.fixture(params=["upb", "vectorised"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through both attribute decoders (per-value upb and numpy)."""
    monkeypatch.setattr(otlp.anyvalue, "SMALL", 10**9 if request.param == "upb" else 0)
    return request.param


def value(row: dict[str, Any]) -> Any:
    """The typed value of a VALUE / ATTRIBUTE row."""
    kind = row["type"]
    field = {
        b.V_STRING: "str",
        b.V_BOOL: "bool",
        b.V_INT: "int",
        b.V_DOUBLE: "double",
        b.V_BYTES: "bytes",
    }
    if kind in field:
        return row[field[kind]]
    if kind in (b.V_ARRAY, b.V_KVLIST):
        assert AnyValue.FromString(row["bytes"]) == av(ALL_TYPES["a" if kind == b.V_ARRAY else "m"])
        return ("json", row["str"])
    assert kind == b.V_EMPTY
    return None


def attr_map(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {row["key"]: value(row) for row in rows}


EXPECTED_ALL_TYPES = {
    "s": "text",
    "b": True,
    "i": -42,
    "d": 2.5,
    "y": b"\x00\xff",
    "a": ("json", ALL_TYPES_JSON["a"]),
    "m": ("json", ALL_TYPES_JSON["m"]),
    "e": None,
}


def check_value_columns(rows: list[dict[str, Any]]) -> None:
    """Only the field named by ``type`` is set (arrays/kvlists: str and bytes)."""
    allowed = {
        b.V_EMPTY: set(),
        b.V_STRING: {"str"},
        b.V_BOOL: {"bool"},
        b.V_INT: {"int"},
        b.V_DOUBLE: {"double"},
        b.V_BYTES: {"bytes"},
        b.V_ARRAY: {"str", "bytes"},
        b.V_KVLIST: {"str", "bytes"},
    }
    for row in rows:
        set_fields = {k for k in ("str", "int", "double", "bool", "bytes") if row[k] is not None}
        assert set_fields == allowed[row["type"]], row


def check_resource_and_scope(batch: b.Batch) -> None:
    res = batch.resources.to_pylist()[0]
    assert attr_map(res["attributes"]) == {"service.name": "checkout", **EXPECTED_ALL_TYPES}
    check_value_columns(res["attributes"])
    assert res["dropped_attributes_count"] == 3
    assert res["service_name"] == "checkout"
    assert res["entity_refs"] == [
        {
            "schema_url": "https://s/1",
            "type": "service",
            "id_keys": ["service.name"],
            "description_keys": [],
        }
    ]
    scope = batch.scopes.to_pylist()[0]
    assert scope["resource_index"] == 0
    assert (scope["name"], scope["version"], scope["dropped_attributes_count"]) == ("lib", "1.0", 2)
    assert attr_map(scope["attributes"]) == {"scope.attr": 1}


def test_traces_every_field(path: str) -> None:
    batch = decode_traces(sample_traces())
    assert batch.signal == b.TRACES and batch.item_count() == 3
    check_resource_and_scope(batch)
    assert batch.resources.column("schema_url").to_pylist() == [
        "https://opentelemetry.io/schemas/1.21.0",
        "",
    ]
    assert batch.resources.column("service_name").to_pylist() == ["checkout", ""]
    assert batch.scopes.column("resource_index").to_pylist() == [0, 0, 1]
    assert batch.scopes.column("schema_url").to_pylist() == ["https://scope", "", ""]
    spans = batch.tables["spans"].to_pylist()
    assert [s["scope_index"] for s in spans] == [0, 0, 2]
    span = spans[0]
    assert span["trace_id"] == TRACE_ID and span["span_id"] == SPAN_ID
    assert span["parent_span_id"] == PARENT_ID
    assert span["trace_state"] == "k=v" and span["flags"] == 0x301
    assert span["name"] == "GET /cart" and span["kind"] == Span.SPAN_KIND_SERVER
    assert span["start_time_unix_nano"] == 1_700_000_000_000_000_000
    assert span["end_time_unix_nano"] == 1_700_000_000_000_500_000
    assert attr_map(span["attributes"]) == EXPECTED_ALL_TYPES
    check_value_columns(span["attributes"])
    assert span["dropped_attributes_count"] == 4
    assert span["events"][0]["time_unix_nano"] == 1_700_000_000_000_100_000
    assert span["events"][0]["name"] == "exception"
    assert attr_map(span["events"][0]["attributes"]) == {"exception.type": "ValueError"}
    assert span["events"][0]["dropped_attributes_count"] == 1
    assert span["events"][1] == {
        "time_unix_nano": 0,
        "name": "bare",
        "attributes": [],
        "dropped_attributes_count": 0,
    }
    assert span["dropped_events_count"] == 5
    link = span["links"][0]
    assert link["trace_id"] == bytes(range(21, 37)) and link["span_id"] == bytes(range(21, 29))
    assert link["trace_state"] == "a=b" and link["flags"] == 0x100
    assert attr_map(link["attributes"]) == {"link.kind": "follows"}
    assert link["dropped_attributes_count"] == 6
    assert span["dropped_links_count"] == 7
    assert (span["status_code"], span["status_message"]) == (2, "boom")
    root = spans[1]
    assert root["parent_span_id"] is None  # empty id -> null
    assert (root["status_code"], root["status_message"]) == (0, "")
    assert spans[2]["trace_id"] is None


def test_logs_every_field(path: str) -> None:
    batch = decode_logs(sample_logs())
    check_resource_and_scope(batch)
    logs = batch.tables["logs"].to_pylist()
    full = logs[0]
    assert full["time_unix_nano"] == 1_700_000_000_000_000_001
    assert full["observed_time_unix_nano"] == 1_700_000_000_000_000_002
    assert (full["severity_number"], full["severity_text"]) == (17, "ERROR")
    assert value(full["body"]) == "something failed"
    assert attr_map(full["attributes"]) == {"k": "v"}
    assert full["dropped_attributes_count"] == 8 and full["flags"] == 1
    assert (full["trace_id"], full["span_id"]) == (TRACE_ID, SPAN_ID)
    assert full["event_name"] == "app.failure"
    assert logs[1]["body"] is None  # absent body
    assert logs[1]["trace_id"] is None and logs[1]["span_id"] is None
    assert logs[2]["body"]["type"] == b.V_EMPTY  # present but empty
    bodies = [value(row["body"]) for row in logs[3:]]
    assert bodies == [EXPECTED_ALL_TYPES[k] for k in ALL_TYPES]
    check_value_columns([row["body"] for row in logs if row["body"] is not None])


def test_metrics_every_field(path: str) -> None:
    batch = decode_metrics(sample_metrics())
    check_resource_and_scope(batch)
    assert batch.item_count() == 8
    metrics = batch.tables["metrics"].to_pylist()
    assert [x["name"] for x in metrics] == ["g", "s", "h", "e", "q", "nodata", "emptygauge"]
    assert [x["type"] for x in metrics] == [
        b.M_GAUGE,
        b.M_SUM,
        b.M_HISTOGRAM,
        b.M_EXPONENTIAL_HISTOGRAM,
        b.M_SUMMARY,
        b.M_EMPTY,
        b.M_GAUGE,
    ]
    assert [x["aggregation_temporality"] for x in metrics] == [None, 2, 1, 2, None, None, None]
    assert [x["is_monotonic"] for x in metrics] == [None, True, None, None, None, None, None]
    assert (metrics[0]["description"], metrics[0]["unit"]) == ("gauge", "1")
    assert attr_map(metrics[0]["metadata"]) == {"meta": "x"}

    gauge = batch.tables["gauge"].to_pylist()
    assert [p["metric_index"] for p in gauge] == [0, 0, 0]
    assert [(p["value_type"], p["as_double"], p["as_int"]) for p in gauge] == [
        (b.N_DOUBLE, 1.5, None),
        (b.N_INT, None, -7),
        (b.N_NONE, None, None),
    ]
    first = gauge[0]
    assert (first["start_time_unix_nano"], first["time_unix_nano"], first["flags"]) == (1, 2, 1)
    assert attr_map(first["attributes"]) == {"p": 1}
    ex = first["exemplars"]
    assert [(e["value_type"], e["as_double"], e["as_int"]) for e in ex] == [
        (b.N_DOUBLE, 0.5, None),
        (b.N_INT, None, 3),
    ]
    assert (ex[0]["time_unix_nano"], ex[0]["span_id"], ex[0]["trace_id"]) == (11, SPAN_ID, TRACE_ID)
    assert attr_map(ex[0]["filtered_attributes"]) == {"ex": "1"}

    total = batch.tables["sum"].to_pylist()
    assert [(p["metric_index"], p["as_int"]) for p in total] == [(1, 10)]

    hist = batch.tables["histogram"].to_pylist()
    assert [p["metric_index"] for p in hist] == [2, 2]
    h = hist[0]
    assert (h["count"], h["sum"], h["min"], h["max"]) == (6, 12.0, 0.5, 9.0)
    assert (h["bucket_counts"], h["explicit_bounds"]) == ([1, 2, 3], [1.0, 5.0])
    assert hist[0]["exemplars"][0]["value_type"] == b.N_NONE
    assert (hist[1]["sum"], hist[1]["min"], hist[1]["max"]) == (None, None, None)  # unset optionals

    (e,) = batch.tables["exponential_histogram"].to_pylist()
    assert e["metric_index"] == 3
    assert (e["count"], e["sum"], e["scale"], e["zero_count"]) == (5, 3.0, -2, 1)
    assert (e["positive_offset"], e["positive_bucket_counts"]) == (-3, [1, 2])
    assert (e["negative_offset"], e["negative_bucket_counts"]) == (4, [1])
    assert (e["min"], e["max"], e["zero_threshold"], e["flags"]) == (-1.0, 8.0, 1e-9, 1)

    (q,) = batch.tables["summary"].to_pylist()
    assert (q["metric_index"], q["count"], q["sum"]) == (4, 3, 6.0)
    assert q["quantile_values"] == [
        {"quantile": 0.5, "value": 2.0},
        {"quantile": 1.0, "value": 3.0},
    ]


def test_both_attribute_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    for signal, make in (
        ("traces", sample_traces),
        ("logs", sample_logs),
        ("metrics", sample_metrics),
    ):
        body = make().SerializeToString()
        monkeypatch.setattr(otlp.anyvalue, "SMALL", 10**9)
        slow = decode_protobuf(signal, body)
        monkeypatch.setattr(otlp.anyvalue, "SMALL", 0)
        assert_batches_equal(slow, decode_protobuf(signal, body))


def test_non_canonical_attributes(path: str) -> None:
    """Unknown fields, repeated fields, wire order and strindex take the full protobuf path."""
    key = b"\x0a\x01k"
    cases = [
        (key + b"\x12\x02\x08\x01", None),  # profiles-only string_value_strindex: treated as empty
        (b"\x12\x02\x18\x05" + key, 5),  # value before key
        (key + b"\x12\x04\x18\x01\x18\x02", 2),  # repeated oneof field: last wins
        (key + b"\x12\x02\x18\x05\x50\x01", 5),  # unknown field after the value
        (key + b"\x12\x02\x18\x05" + b"\x12\x03\x0a\x01x", "x"),  # value twice: messages merge
        (key + b"\x12\x0b\x18" + b"\xff" * 9 + b"\x01", -1),  # 10-byte negative varint
    ]
    for raw, expected in cases:
        span = b"\x4a" + bytes([len(raw)]) + raw  # Span.attributes (field 9)
        body = _traces_body(span)
        row = decode_protobuf("traces", body).tables["spans"].column("attributes").to_pylist()[0][0]
        assert row["key"] == "k"
        assert value(row) == expected, raw


def _traces_body(span: bytes) -> bytes:
    scope = b"\x12" + bytes([len(span)]) + span
    resource = b"\x12" + bytes([len(scope)]) + scope
    return b"\x0a" + bytes([len(resource)]) + resource


def test_as_string_matches_pcommon() -> None:
    assert as_string(av([1, 2.0, "é\n", None])) == '[1,2,"é\\n",null]'
    assert as_string(av({"b": 1e21, "a": 1e-7, "c": 0.000001, "d": 1e20, "e": -0.0})) == (
        '{"a":1e-7,"b":1e+21,"c":0.000001,"d":100000000000000000000,"e":-0}'
    )
    assert as_string(av([math.nan])) == ""  # Go's json.Marshal fails: AsString() is ""
    assert as_string(av({"k": 1, "k2": 2})) == '{"k":1,"k2":2}'
    assert go_float(123.0) == "123" and go_float(0.1) == "0.1" and go_float(1.5e-300) == "1.5e-300"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x0a\x05\x0a", "cannot decode"),  # truncated
        (b"\xff\xff\xff", "cannot decode"),  # garbage
    ],
)
def test_unparseable(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        decode_protobuf("traces", body)


def _span_request(**fields: Any) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[Span(**fields)])])]
    )


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"trace_id": b"\x01" * 15}, "trace_id"),
        ({"span_id": b"\x01" * 16}, "span_id"),
        ({"parent_span_id": b"\x01" * 4}, "parent_span_id"),
        ({"links": [Span.Link(trace_id=b"\x01" * 3)]}, "link trace_id"),
        ({"links": [Span.Link(span_id=b"\x01" * 3)]}, "link span_id"),
    ],
)
def test_bad_ids(fields: dict[str, Any], what: str) -> None:
    with pytest.raises(InvalidRequestError, match=what):
        decode_traces(_span_request(**fields))


def test_bad_ids_in_logs_and_exemplars() -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    logs = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(trace_id=b"x")])])]
    )
    with pytest.raises(InvalidRequestError, match="log trace_id"):
        decode_logs(logs)
    point = m.NumberDataPoint(exemplars=[m.Exemplar(span_id=b"xyz")])
    metrics = ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                scope_metrics=[
                    m.ScopeMetrics(metrics=[m.Metric(gauge=m.Gauge(data_points=[point]))])
                ]
            )
        ]
    )
    with pytest.raises(InvalidRequestError, match="exemplar span_id"):
        decode_metrics(metrics)


def test_invalid_utf8(path: str) -> None:
    # span name: upb refuses it while parsing
    name = b"\x2a\x02\xff\xfe"
    with pytest.raises(InvalidRequestError, match=r"UTF-8|cannot decode"):
        decode_protobuf("traces", _traces_body(name))
    # attribute key, string value and a string nested in an array: our decoders refuse them
    bad_key = b"\x0a\x02\xff\xfe\x12\x03\x0a\x01x"
    bad_value = b"\x0a\x01k\x12\x04\x0a\x02\xff\xfe"
    bad_nested = b"\x0a\x01k\x12\x08\x2a\x06\x0a\x04\x0a\x02\xff\xfe"
    for kv_bytes in (bad_key, bad_value, bad_nested):
        span = b"\x4a" + bytes([len(kv_bytes)]) + kv_bytes
        with pytest.raises(InvalidRequestError):
            decode_protobuf("traces", _traces_body(span))


def test_invalid_utf8_in_log_body(path: str) -> None:
    record = b"\x2a\x04\x0a\x02\xff\xfe"  # LogRecord.body (field 5) = AnyValue{string_value=bad}
    scope = b"\x12" + bytes([len(record)]) + record
    resource = b"\x12" + bytes([len(scope)]) + scope
    with pytest.raises(InvalidRequestError):
        decode_protobuf("logs", b"\x0a" + bytes([len(resource)]) + resource)


def test_wrong_message_type_is_refused() -> None:
    # a metrics request posted as traces: the metric name lands in Span.trace_id
    body = sample_metrics().SerializeToString()
    with pytest.raises(InvalidRequestError):
        decode_protobuf("traces", body)


def test_enum_outside_column_range() -> None:
    with pytest.raises(InvalidRequestError):
        decode_traces(_span_request(kind=300))
    # undefined but representable values are kept (proto3 enums are open)
    assert decode_traces(_span_request(kind=9)).tables["spans"].column("kind").to_pylist() == [9]


def test_empty_requests() -> None:
    for signal, cls in REAL_REQUEST.items():
        batch = decode_protobuf(signal, b"")
        assert batch.item_count() == 0 and batch.resources.num_rows == 0
        assert cls.FromString(b"") == cls()
        assert batch.resources.schema == b.RESOURCES
        for name, schema in b.RECORD_TABLES[signal].items():
            assert batch.tables[name].schema == schema


def test_service_name_first_occurrence_wins() -> None:
    """As the Collector's exporters read it: Map.Get (first match), then Str()."""
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    def names(*values: Any) -> list[str]:
        resource = Resource(attributes=[kv("service.name", v) for v in values])
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource)])
        return decode_traces(request).resources.column("service_name").to_pylist()

    assert names("a", "b") == ["a"]
    assert names(5, "a") == [""]  # not a string
    value_first = KeyValue.FromString(b"\x12\x03\x0a\x01x" + b"\x0a\x0cservice.name")
    resource = Resource(attributes=[value_first])
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource)])
    assert decode_traces(request).resources.column("service_name").to_pylist() == ["x"]


def test_kv_without_value_and_empty_key(path: str) -> None:
    request = _span_request(attributes=[KeyValue(key="only"), KeyValue(value=av("v"))])
    rows = decode_traces(request).tables["spans"].column("attributes").to_pylist()[0]
    assert [(r["key"], r["type"], r["str"]) for r in rows] == [
        ("only", b.V_EMPTY, None),
        ("", b.V_STRING, "v"),
    ]


@settings(max_examples=int(os.environ.get("AIRIS_HYPOTHESIS_EXAMPLES", "150")), deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=24),
            # mutations of a valid KeyValue: truncated, extended, or with a flipped byte
            st.builds(
                lambda kv_bytes, cut, flip: (
                    (kv_bytes[:cut] if cut else kv_bytes)
                    + (bytes([flip]) if flip is not None else b"")
                ),
                st.sampled_from([kv(k, v).SerializeToString() for k, v in ALL_TYPES.items()]),
                st.integers(0, 12),
                st.none() | st.integers(0, 255),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_garbage_attributes_never_crash(chunks: list[bytes]) -> None:
    """Arbitrary KeyValue bytes either decode or raise InvalidRequestError, on both paths,
    and both paths agree on what they accept."""
    span = b"".join(b"\x4a" + bytes([len(c)]) + c for c in chunks)
    body = _traces_body(span) if len(span) < 120 else None
    if body is None:
        return
    results = []
    for threshold in (10**9, 0):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(otlp.anyvalue, "SMALL", threshold)
            try:
                rows = decode_protobuf("traces", body).tables["spans"].column("attributes")
                results.append(rows.to_pylist())
            except InvalidRequestError:
                results.append("refused")
    assert results[0] == results[1]


@settings(max_examples=int(os.environ.get("AIRIS_HYPOTHESIS_EXAMPLES", "150")), deadline=None)
@given(
    st.one_of(
        st.binary(max_size=24),
        st.builds(
            lambda value, cut, flip: (
                (value[:cut] if cut else value) + (bytes([flip]) if flip is not None else b"")
            ),
            st.sampled_from([av(v).SerializeToString() for v in ALL_TYPES.values()]),
            st.integers(0, 12),
            st.none() | st.integers(0, 255),
        ),
    )
)
def test_garbage_log_bodies_never_crash(body: bytes) -> None:
    record = b"\x2a" + bytes([len(body)]) + body if len(body) < 100 else b""
    scope = b"\x12" + bytes([len(record)]) + record
    resource = b"\x12" + bytes([len(scope)]) + scope
    request = b"\x0a" + bytes([len(resource)]) + resource
    results = []
    for threshold in (10**9, 0):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(otlp.anyvalue, "SMALL", threshold)
            try:
                results.append(decode_protobuf("logs", request).tables["logs"].to_pylist())
            except InvalidRequestError:
                results.append("refused")
    assert results[0] == results[1]
