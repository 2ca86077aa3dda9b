"""Shared OTLP test data: readable builders, hand-written full requests, hypothesis strategies,
the OTel SDK's JSON rendering of a message, and batch comparison helpers."""

from __future__ import annotations

import base64
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    EntityRef,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.proto_json.collector.logs.v1 import logs_service as json_logs
from opentelemetry.proto_json.collector.metrics.v1 import metrics_service as json_metrics
from opentelemetry.proto_json.collector.trace.v1 import trace_service as json_trace

from otlp.batch import Batch

TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(1, 9))
PARENT_ID = bytes(range(11, 19))


def av(value: Any) -> AnyValue:
    """A Python value as an AnyValue (None -> empty; bytes, list, dict nest as in OTLP)."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[av(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in value.items()]))
    raise TypeError(value)


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=av(value))


def attrs(**values: Any) -> list[KeyValue]:
    return [kv(k.replace("_", "."), v) for k, v in values.items()]


ALL_TYPES: dict[str, Any] = {
    "s": "text",
    "b": True,
    "i": -42,
    "d": 2.5,
    "y": b"\x00\xff",
    "a": [1, "x", False, 0.5, b"\x01", None, [2], {"z": 1, "a": "<&>"}],
    "m": {"k2": [True], "k1": {"n": 7}},
}
ALL_TYPES_JSON = {
    "a": '[1,"x",false,0.5,"AQ==",null,[2],{"a":"\\u003c\\u0026\\u003e","z":1}]',
    "m": '{"k1":{"n":7},"k2":[true]}',
}


def all_type_attrs() -> list[KeyValue]:
    return [*(kv(k, v) for k, v in ALL_TYPES.items()), KeyValue(key="e")]


def sample_resource() -> Resource:
    return Resource(
        attributes=[kv("service.name", "checkout"), *all_type_attrs()],
        dropped_attributes_count=3,
        entity_refs=[EntityRef(schema_url="https://s/1", type="service", id_keys=["service.name"])],
    )


def sample_scope() -> InstrumentationScope:
    return InstrumentationScope(
        name="lib", version="1.0", attributes=[kv("scope.attr", 1)], dropped_attributes_count=2
    )


def sample_traces() -> ExportTraceServiceRequest:
    span = Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        trace_state="k=v",
        parent_span_id=PARENT_ID,
        flags=0x301,
        name="GET /cart",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_000_500_000,
        attributes=all_type_attrs(),
        dropped_attributes_count=4,
        events=[
            Span.Event(
                time_unix_nano=1_700_000_000_000_100_000,
                name="exception",
                attributes=[kv("exception.type", "ValueError")],
                dropped_attributes_count=1,
            ),
            Span.Event(name="bare"),
        ],
        dropped_events_count=5,
        links=[
            Span.Link(
                trace_id=bytes(range(21, 37)),
                span_id=bytes(range(21, 29)),
                trace_state="a=b",
                attributes=[kv("link.kind", "follows")],
                dropped_attributes_count=6,
                flags=0x100,
            )
        ],
        dropped_links_count=7,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
    )
    root = Span(trace_id=TRACE_ID, span_id=PARENT_ID, name="root")
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=sample_resource(),
                schema_url="https://opentelemetry.io/schemas/1.21.0",
                scope_spans=[
                    ScopeSpans(
                        scope=sample_scope(), schema_url="https://scope", spans=[span, root]
                    ),
                    ScopeSpans(),
                ],
            ),
            ResourceSpans(scope_spans=[ScopeSpans(spans=[Span(name="other", span_id=SPAN_ID)])]),
        ]
    )


def sample_logs() -> ExportLogsServiceRequest:
    full = LogRecord(
        time_unix_nano=1_700_000_000_000_000_001,
        observed_time_unix_nano=1_700_000_000_000_000_002,
        severity_number=17,
        severity_text="ERROR",
        body=av("something failed"),
        attributes=[kv("k", "v")],
        dropped_attributes_count=8,
        flags=1,
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        event_name="app.failure",
    )
    records = [full, LogRecord(severity_text="no body")]
    records.append(LogRecord(body=AnyValue()))  # present but empty
    records += [LogRecord(body=av(value)) for value in ALL_TYPES.values()]
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=sample_resource(),
                schema_url="https://r",
                scope_logs=[
                    ScopeLogs(scope=sample_scope(), schema_url="https://s", log_records=records)
                ],
            )
        ]
    )


def exemplar(**kwargs: Any) -> m.Exemplar:
    return m.Exemplar(
        filtered_attributes=[kv("ex", "1")],
        time_unix_nano=11,
        span_id=SPAN_ID,
        trace_id=TRACE_ID,
        **kwargs,
    )


def sample_metrics() -> ExportMetricsServiceRequest:
    common = {"start_time_unix_nano": 1, "time_unix_nano": 2}
    metrics = [
        m.Metric(
            name="g",
            description="gauge",
            unit="1",
            metadata=[kv("meta", "x")],
            gauge=m.Gauge(
                data_points=[
                    m.NumberDataPoint(
                        attributes=[kv("p", 1)],
                        as_double=1.5,
                        exemplars=[exemplar(as_double=0.5), exemplar(as_int=3)],
                        flags=1,
                        **common,
                    ),
                    m.NumberDataPoint(as_int=-7, **common),
                    m.NumberDataPoint(**common),
                ]
            ),
        ),
        m.Metric(
            name="s",
            sum=m.Sum(
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
                is_monotonic=True,
                data_points=[m.NumberDataPoint(as_int=10, **common)],
            ),
        ),
        m.Metric(
            name="h",
            histogram=m.Histogram(
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA,
                data_points=[
                    m.HistogramDataPoint(
                        count=6,
                        sum=12.0,
                        bucket_counts=[1, 2, 3],
                        explicit_bounds=[1.0, 5.0],
                        min=0.5,
                        max=9.0,
                        exemplars=[exemplar()],
                        **common,
                    ),
                    m.HistogramDataPoint(count=0, **common),
                ],
            ),
        ),
        m.Metric(
            name="e",
            exponential_histogram=m.ExponentialHistogram(
                aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
                data_points=[
                    m.ExponentialHistogramDataPoint(
                        count=5,
                        sum=3.0,
                        scale=-2,
                        zero_count=1,
                        positive=m.ExponentialHistogramDataPoint.Buckets(
                            offset=-3, bucket_counts=[1, 2]
                        ),
                        negative=m.ExponentialHistogramDataPoint.Buckets(
                            offset=4, bucket_counts=[1]
                        ),
                        min=-1.0,
                        max=8.0,
                        zero_threshold=1e-9,
                        flags=1,
                        **common,
                    )
                ],
            ),
        ),
        m.Metric(
            name="q",
            summary=m.Summary(
                data_points=[
                    m.SummaryDataPoint(
                        count=3,
                        sum=6.0,
                        quantile_values=[
                            m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=2.0),
                            m.SummaryDataPoint.ValueAtQuantile(quantile=1.0, value=3.0),
                        ],
                        **common,
                    )
                ]
            ),
        ),
        m.Metric(name="nodata"),
        m.Metric(name="emptygauge", gauge=m.Gauge()),
    ]
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=sample_resource(),
                schema_url="https://r",
                scope_metrics=[
                    m.ScopeMetrics(scope=sample_scope(), schema_url="https://s", metrics=metrics)
                ],
            )
        ]
    )


SAMPLES = {"traces": sample_traces, "metrics": sample_metrics, "logs": sample_logs}


# ---------------------------------------------------------------------------------------------
# hypothesis strategies for canonical requests (nested messages set only when non-empty)

texts = st.text(max_size=12)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
doubles = st.floats(allow_nan=False)
trace_ids = st.sampled_from([b""]) | st.binary(min_size=16, max_size=16)
span_ids = st.sampled_from([b""]) | st.binary(min_size=8, max_size=8)


def _small_lists(
    elements: st.SearchStrategy[Any], max_size: int = 3
) -> st.SearchStrategy[list[Any]]:
    return st.lists(elements, max_size=max_size)


def _nested_kv(value: AnyValue, key: str) -> KeyValue:
    return KeyValue(key=key, value=value)


_leaf_values = st.one_of(
    st.just(AnyValue()),
    st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=20)),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(int_value=v), i64),
    st.builds(lambda v: AnyValue(double_value=v), doubles),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=10)),
)
any_values = st.recursive(
    _leaf_values,
    lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), _small_lists(inner)),
        st.builds(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs)),
            _small_lists(st.builds(_nested_kv, inner, texts)),
        ),
    ),
    max_leaves=4,
)


def _top_kv(key: str, value: AnyValue) -> KeyValue:
    # canonical: an empty value is left unset (encode writes no value for V_EMPTY)
    return KeyValue(key=key, value=value) if value.ByteSize() else KeyValue(key=key)


key_values = st.builds(_top_kv, texts, any_values)
attr_lists = _small_lists(key_values, 3)


def _set_if(message: Any, field: str, value: Any) -> None:
    if value.ByteSize():
        getattr(message, field).CopyFrom(value)


resources = st.builds(
    lambda a, d, refs: Resource(attributes=a, dropped_attributes_count=d, entity_refs=refs),
    attr_lists,
    u32,
    _small_lists(
        st.builds(
            lambda s, t, ids, desc: EntityRef(
                schema_url=s, type=t, id_keys=ids, description_keys=desc
            ),
            texts,
            texts,
            _small_lists(texts),
            _small_lists(texts),
        ),
        2,
    ),
)
scopes = st.builds(
    lambda n, v, a, d: InstrumentationScope(
        name=n, version=v, attributes=a, dropped_attributes_count=d
    ),
    texts,
    texts,
    attr_lists,
    u32,
)


def _envelope(
    holder_cls: Any, scope_cls: Any, records_field: str, scopes_field: str, records: Any
) -> Any:
    def scope_holder(scope: Any, schema: str, items: list[Any]) -> Any:
        holder = scope_cls(schema_url=schema, **{records_field: items})
        _set_if(holder, "scope", scope)
        return holder

    def resource_holder(resource: Any, schema: str, holders: list[Any]) -> Any:
        holder = holder_cls(schema_url=schema, **{scopes_field: holders})
        _set_if(holder, "resource", resource)
        return holder

    scope_holders = st.builds(scope_holder, scopes, texts, _small_lists(records, 3))
    return _small_lists(
        st.builds(resource_holder, resources, texts, _small_lists(scope_holders, 2)), 2
    )


def _span(ids: tuple[bytes, bytes, bytes], fields: dict[str, Any], status: Status) -> Span:
    span = Span(trace_id=ids[0], span_id=ids[1], parent_span_id=ids[2], **fields)
    _set_if(span, "status", status)
    return span


spans = st.builds(
    _span,
    st.tuples(trace_ids, span_ids, span_ids),
    st.fixed_dictionaries(
        {
            "trace_state": texts,
            "flags": u32,
            "name": texts,
            "kind": st.integers(0, 5),
            "start_time_unix_nano": u64,
            "end_time_unix_nano": u64,
            "attributes": attr_lists,
            "dropped_attributes_count": u32,
            "events": _small_lists(
                st.builds(
                    lambda t, n, a, d: Span.Event(
                        time_unix_nano=t, name=n, attributes=a, dropped_attributes_count=d
                    ),
                    u64,
                    texts,
                    attr_lists,
                    u32,
                ),
                2,
            ),
            "dropped_events_count": u32,
            "links": _small_lists(
                st.builds(
                    lambda t, s, ts, a, d, f: Span.Link(
                        trace_id=t,
                        span_id=s,
                        trace_state=ts,
                        attributes=a,
                        dropped_attributes_count=d,
                        flags=f,
                    ),
                    trace_ids,
                    span_ids,
                    texts,
                    attr_lists,
                    u32,
                    u32,
                ),
                2,
            ),
            "dropped_links_count": u32,
        }
    ),
    st.builds(lambda c, msg: Status(code=c, message=msg), st.integers(0, 2), texts),
)


def _log(fields: dict[str, Any], body: AnyValue | None) -> LogRecord:
    record = LogRecord(**fields)
    if body is not None:
        record.body.CopyFrom(body)
    return record


logs = st.builds(
    _log,
    st.fixed_dictionaries(
        {
            "time_unix_nano": u64,
            "observed_time_unix_nano": u64,
            "severity_number": st.integers(0, 24),
            "severity_text": texts,
            "attributes": attr_lists,
            "dropped_attributes_count": u32,
            "flags": u32,
            "trace_id": trace_ids,
            "span_id": span_ids,
            "event_name": texts,
        }
    ),
    st.none() | any_values,
)


def _with_number(cls: Any, fields: dict[str, Any], value: tuple[str, Any] | None) -> Any:
    message = cls(**fields)
    if value is not None:
        setattr(message, value[0], value[1])
    return message


number_values = (
    st.none() | st.tuples(st.just("as_double"), doubles) | st.tuples(st.just("as_int"), i64)
)
exemplars = st.builds(
    lambda fields, value: _with_number(m.Exemplar, fields, value),
    st.fixed_dictionaries(
        {
            "filtered_attributes": attr_lists,
            "time_unix_nano": u64,
            "span_id": span_ids,
            "trace_id": trace_ids,
        }
    ),
    number_values,
)
_point_common = {
    "attributes": attr_lists,
    "start_time_unix_nano": u64,
    "time_unix_nano": u64,
    "flags": u32,
    "exemplars": _small_lists(exemplars, 2),
}
number_points = st.builds(
    lambda fields, value: _with_number(m.NumberDataPoint, fields, value),
    st.fixed_dictionaries(_point_common),
    number_values,
)


def _optionals(cls: Any, fields: dict[str, Any], optional: dict[str, Any]) -> Any:
    return cls(**fields, **{k: v for k, v in optional.items() if v is not None})


_opt_double = st.none() | doubles
histogram_points = st.builds(
    lambda fields, optional: _optionals(m.HistogramDataPoint, fields, optional),
    st.fixed_dictionaries(
        {
            **_point_common,
            "count": u64,
            "bucket_counts": _small_lists(u64),
            "explicit_bounds": _small_lists(doubles),
        }
    ),
    st.fixed_dictionaries({"sum": _opt_double, "min": _opt_double, "max": _opt_double}),
)


def _exp_point(fields: dict[str, Any], optional: dict[str, Any], pos: Any, neg: Any) -> Any:
    point = _optionals(m.ExponentialHistogramDataPoint, fields, optional)
    _set_if(point, "positive", pos)
    _set_if(point, "negative", neg)
    return point


buckets = st.builds(
    lambda o, c: m.ExponentialHistogramDataPoint.Buckets(offset=o, bucket_counts=c),
    st.integers(-(2**31), 2**31 - 1),
    _small_lists(u64),
)
exponential_points = st.builds(
    _exp_point,
    st.fixed_dictionaries(
        {
            **_point_common,
            "count": u64,
            "scale": st.integers(-(2**31), 2**31 - 1),
            "zero_count": u64,
            "zero_threshold": doubles,
        }
    ),
    st.fixed_dictionaries({"sum": _opt_double, "min": _opt_double, "max": _opt_double}),
    buckets,
    buckets,
)
summary_points = st.builds(
    lambda fields: m.SummaryDataPoint(**fields),
    st.fixed_dictionaries(
        {
            **{k: v for k, v in _point_common.items() if k != "exemplars"},
            "count": u64,
            "sum": doubles,
            "quantile_values": _small_lists(
                st.builds(
                    lambda q, v: m.SummaryDataPoint.ValueAtQuantile(quantile=q, value=v),
                    doubles,
                    doubles,
                )
            ),
        }
    ),
)
temporality = st.integers(0, 2)
metric_data = st.one_of(
    st.none(),
    st.builds(lambda p: ("gauge", m.Gauge(data_points=p)), _small_lists(number_points)),
    st.builds(
        lambda p, t, mono: (
            "sum",
            m.Sum(data_points=p, aggregation_temporality=t, is_monotonic=mono),
        ),
        _small_lists(number_points),
        temporality,
        st.booleans(),
    ),
    st.builds(
        lambda p, t: ("histogram", m.Histogram(data_points=p, aggregation_temporality=t)),
        _small_lists(histogram_points),
        temporality,
    ),
    st.builds(
        lambda p, t: (
            "exponential_histogram",
            m.ExponentialHistogram(data_points=p, aggregation_temporality=t),
        ),
        _small_lists(exponential_points),
        temporality,
    ),
    st.builds(lambda p: ("summary", m.Summary(data_points=p)), _small_lists(summary_points)),
)


def _metric(
    name: str, description: str, unit: str, metadata: list[KeyValue], data: Any
) -> m.Metric:
    metric = m.Metric(name=name, description=description, unit=unit, metadata=metadata)
    if data is not None:
        getattr(metric, data[0]).CopyFrom(data[1])
        getattr(metric, data[0]).SetInParent()
    return metric


metrics = st.builds(_metric, texts, texts, texts, attr_lists, metric_data)

REQUESTS = {
    "traces": st.builds(
        lambda rs: ExportTraceServiceRequest(resource_spans=rs),
        _envelope(ResourceSpans, ScopeSpans, "spans", "scope_spans", spans),
    ),
    "logs": st.builds(
        lambda rl: ExportLogsServiceRequest(resource_logs=rl),
        _envelope(ResourceLogs, ScopeLogs, "log_records", "scope_logs", logs),
    ),
    "metrics": st.builds(
        lambda rm: ExportMetricsServiceRequest(resource_metrics=rm),
        _envelope(m.ResourceMetrics, m.ScopeMetrics, "metrics", "scope_metrics", metrics),
    ),
}


# ---------------------------------------------------------------------------------------------
# the OTel SDK's own OTLP/JSON rendering (opentelemetry-proto-json), for the JSON path

_JSON_CLASSES = {
    "traces": json_trace.ExportTraceServiceRequest,
    "metrics": json_metrics.ExportMetricsServiceRequest,
    "logs": json_logs.ExportLogsServiceRequest,
}
_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _ids_to_hex(node: Any) -> None:
    # proto3 JSON writes bytes as base64; OTLP/JSON ids are hex
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


def sdk_json(signal: str, message: Any) -> str:
    """``message`` as the OTel Python SDK's OTLP/JSON classes serialize it."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_to_hex(data)
    return _JSON_CLASSES[signal].from_dict(data).to_json()


# ---------------------------------------------------------------------------------------------


def table_diff(name: str, a: pa.Table, b: pa.Table) -> str | None:
    if a.schema != b.schema:
        return f"{name}: schema differs:\n{a.schema}\n--\n{b.schema}"
    if a.num_rows != b.num_rows:
        return f"{name}: {a.num_rows} rows vs {b.num_rows}"
    left, right = a.to_pylist(), b.to_pylist()
    for i, (x, y) in enumerate(zip(left, right, strict=True)):
        if x != y:
            return f"{name} row {i}:\n{x}\n--\n{y}"
    return None


def assert_batches_equal(a: Batch, b: Batch) -> None:
    assert a.signal == b.signal
    assert set(a.tables) == set(b.tables)
    diffs = [
        table_diff("resources", a.resources, b.resources),
        table_diff("scopes", a.scopes, b.scopes),
        *(table_diff(name, a.tables[name], b.tables[name]) for name in a.tables),
    ]
    problems = [d for d in diffs if d]
    assert not problems, "\n".join(problems)
