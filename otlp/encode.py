"""Columnar ``Batch`` -> OTLP Export*ServiceRequest (the inverse of ``otlp.decode``).

``encode_protobuf`` returns the serialized request (what an OTLP exporter sends);
``encode`` the ``opentelemetry.proto`` message. The message is built with the shadow classes
(``otlp.shadow``) so attributes go in as ready-made KeyValue bytes (``otlp.anyvalue``), with
identical KeyValues encoded once per batch.

Canonical output: a nested message (resource, scope, span status, exponential histogram
buckets, a KeyValue's value) is written only when it has content, so encode(decode(m)) == m
for requests that follow that convention, and decode(encode(b)) == b for every batch.
Resources and scopes without records are kept; records are grouped under their scope and
scopes under their resource in table order.

``encode_protobuf`` takes the compiled encoder (``otlp.encode_fast``, otlp/_encode.c) when it
is built; it writes the same bytes ~20x faster. The Python code below is its specification
and the fallback (``encode_protobuf_python``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import Message
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from otlp import encode_fast, shadow
from otlp.anyvalue import keyvalues_to_bytes, values_to_bytes
from otlp.batch import (
    LOGS_SIGNAL,
    METRIC_TYPE_TABLE,
    METRICS_SIGNAL,
    N_DOUBLE,
    N_INT,
    POINT_TABLES,
    TRACES,
    Batch,
)


def encode_protobuf(batch: Batch) -> bytes:
    """The batch as a serialized Export{Trace,Metrics,Logs}ServiceRequest."""
    fast = encode_fast.encode_protobuf(batch)
    return fast if fast is not None else encode_protobuf_python(batch)


def encode_protobuf_python(batch: Batch) -> bytes:
    """The Python encoder: the specification of the compiled one (otlp/_encode.c, byte for
    byte) and its fallback when it is not built or declines a batch."""
    return _ENCODERS[batch.signal](batch).SerializeToString()


def encode(batch: Batch) -> Message:
    """The batch as an opentelemetry.proto Export{Trace,Metrics,Logs}ServiceRequest."""
    return shadow.REAL_REQUEST[batch.signal].FromString(encode_protobuf(batch))


# ---------------------------------------------------------------------------------------------
# helpers


def _py(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _split(flat: list[Any], lists: pa.Array) -> list[list[Any]]:
    counts = pc.fill_null(pc.list_value_length(lists), 0).to_pylist()
    out = []
    start = 0
    for count in counts:
        out.append(flat[start : start + count])
        start += count
    return out


def _attributes(column: pa.ChunkedArray | pa.Array) -> list[list[bytes]]:
    """An ATTRIBUTES column -> per row, the list of serialized KeyValues."""
    lists = _array(column)
    return _split(keyvalues_to_bytes(lists.flatten()), lists)


def _nested(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, list[list[int]]]:
    """A list<struct> column -> (flat struct values, per row the positions in it)."""
    lists = _array(column)
    flat = lists.flatten()
    return flat, _split(list(range(len(flat))), lists)


def _f(value: float | None) -> float:
    # not `value or 0.0`: that would turn -0.0 into 0.0
    return 0.0 if value is None else value


def _id(value: bytes | None) -> bytes:
    return value or b""


def _fields(table: pa.Table | pa.StructArray, names: list[str]) -> dict[str, list[Any]]:
    if isinstance(table, pa.Table):
        return {name: table.column(name).to_pylist() for name in names}
    return {name: table.field(name).to_pylist() for name in names}


def _non_default(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v}


def _envelope(batch: Batch, resources_field: str, scopes_field: str) -> tuple[Any, list[Any]]:
    """The request with its resources and scopes; returns it and one holder per scope row."""
    request = shadow.REQUEST[batch.signal]()
    res = batch.resources
    r_attrs = _attributes(res.column("attributes"))
    r_dropped = _py(res, "dropped_attributes_count")
    r_schema = _py(res, "schema_url")
    r_refs = _py(res, "entity_refs") if "entity_refs" in res.column_names else [None] * res.num_rows
    holders = []
    for attrs, dropped, schema, refs in zip(r_attrs, r_dropped, r_schema, r_refs, strict=True):
        content = _non_default(attributes=attrs, dropped_attributes_count=dropped)
        if refs:
            content["entity_refs"] = [
                shadow.EntityRef(**{k: v for k, v in ref.items() if v}) for ref in refs
            ]
        holder = getattr(request, resources_field).add(schema_url=schema or "")
        if content:
            holder.resource.CopyFrom(shadow.Resource(**content))
        holders.append(holder)

    sc = batch.scopes
    s_attrs = _attributes(sc.column("attributes"))
    cols = _fields(
        sc, ["resource_index", "name", "version", "dropped_attributes_count", "schema_url"]
    )
    scope_holders = []
    for index, name, version, dropped, schema, attrs in zip(
        cols["resource_index"],
        cols["name"],
        cols["version"],
        cols["dropped_attributes_count"],
        cols["schema_url"],
        s_attrs,
        strict=True,
    ):
        holder = getattr(holders[index], scopes_field).add(schema_url=schema or "")
        content = _non_default(
            name=name, version=version, attributes=attrs, dropped_attributes_count=dropped
        )
        if content:
            holder.scope.CopyFrom(shadow.Scope(**content))
        scope_holders.append(holder)
    return request, scope_holders


# ---------------------------------------------------------------------------------------------
# traces


def _status_bytes(message: str | None, code: int | None) -> bytes:
    if not message and not code:
        return b""
    return Status(message=message or "", code=code or 0).SerializeToString()


def _events(column: pa.ChunkedArray) -> list[list[Any]]:
    flat, positions = _nested(column)
    cols = _fields(flat, ["time_unix_nano", "name", "dropped_attributes_count"])
    attrs = _attributes(flat.field("attributes"))
    events = [
        shadow.Event(
            time_unix_nano=time or 0,
            name=name or "",
            attributes=attr,
            dropped_attributes_count=dropped or 0,
        )
        for time, name, dropped, attr in zip(
            cols["time_unix_nano"],
            cols["name"],
            cols["dropped_attributes_count"],
            attrs,
            strict=True,
        )
    ]
    return [[events[i] for i in row] for row in positions]


def _links(column: pa.ChunkedArray) -> list[list[Any]]:
    flat, positions = _nested(column)
    cols = _fields(
        flat, ["trace_id", "span_id", "trace_state", "dropped_attributes_count", "flags"]
    )
    attrs = _attributes(flat.field("attributes"))
    links = [
        shadow.Link(
            trace_id=_id(trace_id),
            span_id=_id(span_id),
            trace_state=state or "",
            attributes=attr,
            dropped_attributes_count=dropped or 0,
            flags=flags or 0,
        )
        for trace_id, span_id, state, dropped, flags, attr in zip(
            cols["trace_id"],
            cols["span_id"],
            cols["trace_state"],
            cols["dropped_attributes_count"],
            cols["flags"],
            attrs,
            strict=True,
        )
    ]
    return [[links[i] for i in row] for row in positions]


_SPAN_SCALARS: Final = [
    "scope_index",
    "trace_id",
    "span_id",
    "trace_state",
    "parent_span_id",
    "flags",
    "name",
    "kind",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "status_message",
    "status_code",
]


def _encode_traces(batch: Batch) -> Any:
    request, scopes = _envelope(batch, "resource_spans", "scope_spans")
    spans = batch.tables["spans"]
    c = _fields(spans, _SPAN_SCALARS)
    attrs = _attributes(spans.column("attributes"))
    events = _events(spans.column("events"))
    links = _links(spans.column("links"))
    statuses: dict[tuple[str | None, int | None], bytes] = {}
    for i, scope_index in enumerate(c["scope_index"]):
        key = (c["status_message"][i], c["status_code"][i])
        status = statuses.get(key)
        if status is None:
            status = statuses[key] = _status_bytes(*key)
        scopes[scope_index].spans.add(
            trace_id=_id(c["trace_id"][i]),
            span_id=_id(c["span_id"][i]),
            trace_state=c["trace_state"][i] or "",
            parent_span_id=_id(c["parent_span_id"][i]),
            flags=c["flags"][i] or 0,
            name=c["name"][i] or "",
            kind=c["kind"][i] or 0,
            start_time_unix_nano=c["start_time_unix_nano"][i] or 0,
            end_time_unix_nano=c["end_time_unix_nano"][i] or 0,
            attributes=attrs[i],
            dropped_attributes_count=c["dropped_attributes_count"][i] or 0,
            events=events[i],
            dropped_events_count=c["dropped_events_count"][i] or 0,
            links=links[i],
            dropped_links_count=c["dropped_links_count"][i] or 0,
            status=status,
        )
    return request


# ---------------------------------------------------------------------------------------------
# logs

_LOG_SCALARS: Final = [
    "scope_index",
    "time_unix_nano",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "dropped_attributes_count",
    "flags",
    "trace_id",
    "span_id",
    "event_name",
]


def _encode_logs(batch: Batch) -> Any:
    request, scopes = _envelope(batch, "resource_logs", "scope_logs")
    logs = batch.tables["logs"]
    c = _fields(logs, _LOG_SCALARS)
    attrs = _attributes(logs.column("attributes"))
    body_column = _array(logs.column("body"))
    bodies = values_to_bytes(body_column)
    has_body = body_column.is_valid().to_pylist()
    for i, scope_index in enumerate(c["scope_index"]):
        fields: dict[str, Any] = {
            "time_unix_nano": c["time_unix_nano"][i] or 0,
            "observed_time_unix_nano": c["observed_time_unix_nano"][i] or 0,
            "severity_number": c["severity_number"][i] or 0,
            "severity_text": c["severity_text"][i] or "",
            "attributes": attrs[i],
            "dropped_attributes_count": c["dropped_attributes_count"][i] or 0,
            "flags": c["flags"][i] or 0,
            "trace_id": _id(c["trace_id"][i]),
            "span_id": _id(c["span_id"][i]),
            "event_name": c["event_name"][i] or "",
        }
        if has_body[i]:
            fields["body"] = bodies[i]
        scopes[scope_index].log_records.add(**fields)
    return request


# ---------------------------------------------------------------------------------------------
# metrics


def _exemplars(column: pa.ChunkedArray) -> list[list[Any]]:
    flat, positions = _nested(column)
    cols = _fields(
        flat, ["time_unix_nano", "value_type", "as_double", "as_int", "span_id", "trace_id"]
    )
    attrs = _attributes(flat.field("filtered_attributes"))
    exemplars = []
    for i, attr in enumerate(attrs):
        fields: dict[str, Any] = {
            "filtered_attributes": attr,
            "time_unix_nano": cols["time_unix_nano"][i] or 0,
            "span_id": _id(cols["span_id"][i]),
            "trace_id": _id(cols["trace_id"][i]),
        }
        _number_value(fields, cols["value_type"][i], cols["as_double"][i], cols["as_int"][i])
        exemplars.append(shadow.Exemplar(**fields))
    return [[exemplars[i] for i in row] for row in positions]


def _number_value(fields: dict[str, Any], kind: int | None, double: Any, integer: Any) -> None:
    if kind == N_DOUBLE:
        fields["as_double"] = _f(double)
    elif kind == N_INT:
        fields["as_int"] = integer or 0


def _common(table: pa.Table) -> tuple[list[int], list[dict[str, Any]]]:
    c = _fields(table, ["metric_index", "start_time_unix_nano", "time_unix_nano", "flags"])
    attrs = _attributes(table.column("attributes"))
    exemplars = _exemplars(table.column("exemplars"))
    points = [
        {
            "attributes": attrs[i],
            "start_time_unix_nano": c["start_time_unix_nano"][i] or 0,
            "time_unix_nano": c["time_unix_nano"][i] or 0,
            "flags": c["flags"][i] or 0,
            "exemplars": exemplars[i],
        }
        for i in range(table.num_rows)
    ]
    return c["metric_index"], points


def _number_points(table: pa.Table) -> tuple[list[int], list[Any]]:
    index, points = _common(table)
    c = _fields(table, ["value_type", "as_double", "as_int"])
    for i, fields in enumerate(points):
        _number_value(fields, c["value_type"][i], c["as_double"][i], c["as_int"][i])
    return index, [shadow.NumberDataPoint(**fields) for fields in points]


def _set_optional(fields: dict[str, Any], **values: Any) -> None:
    fields.update({k: v for k, v in values.items() if v is not None})


def _histogram_points(table: pa.Table) -> tuple[list[int], list[Any]]:
    index, points = _common(table)
    c = _fields(table, ["count", "sum", "bucket_counts", "explicit_bounds", "min", "max"])
    for i, fields in enumerate(points):
        fields["count"] = c["count"][i] or 0
        fields["bucket_counts"] = c["bucket_counts"][i] or []
        fields["explicit_bounds"] = c["explicit_bounds"][i] or []
        _set_optional(fields, sum=c["sum"][i], min=c["min"][i], max=c["max"][i])
    return index, [shadow.HistogramDataPoint(**fields) for fields in points]


def _set_buckets(buckets: Any, offset: int | None, counts: list[int] | None) -> None:
    # written only when non-empty (canonical form)
    if offset:
        buckets.offset = offset
    if counts:
        buckets.bucket_counts.extend(counts)


_EXP_COLUMNS: Final = [
    "count",
    "sum",
    "scale",
    "zero_count",
    "positive_offset",
    "positive_bucket_counts",
    "negative_offset",
    "negative_bucket_counts",
    "min",
    "max",
    "zero_threshold",
]


def _exponential_points(table: pa.Table) -> tuple[list[int], list[Any]]:
    index, points = _common(table)
    c = _fields(table, _EXP_COLUMNS)
    out = []
    for i, fields in enumerate(points):
        fields["count"] = c["count"][i] or 0
        fields["scale"] = c["scale"][i] or 0
        fields["zero_count"] = c["zero_count"][i] or 0
        fields["zero_threshold"] = _f(c["zero_threshold"][i])
        _set_optional(fields, sum=c["sum"][i], min=c["min"][i], max=c["max"][i])
        point = shadow.ExponentialHistogramDataPoint(**fields)
        _set_buckets(point.positive, c["positive_offset"][i], c["positive_bucket_counts"][i])
        _set_buckets(point.negative, c["negative_offset"][i], c["negative_bucket_counts"][i])
        out.append(point)
    return index, out


def _summary_points(table: pa.Table) -> tuple[list[int], list[Any]]:
    index, points = _common(table)
    c = _fields(table, ["count", "sum", "quantile_values"])
    out = []
    for i, fields in enumerate(points):
        del fields["exemplars"]  # summaries have none
        fields["count"] = c["count"][i] or 0
        fields["sum"] = _f(c["sum"][i])
        point = shadow.SummaryDataPoint(**fields)
        for q in c["quantile_values"][i] or []:
            point.quantile_values.add(quantile=_f(q["quantile"]), value=_f(q["value"]))
        out.append(point)
    return index, out


_POINT_ENCODERS: Final[dict[str, Callable[[pa.Table], tuple[list[int], list[Any]]]]] = {
    "gauge": _number_points,
    "sum": _number_points,
    "histogram": _histogram_points,
    "exponential_histogram": _exponential_points,
    "summary": _summary_points,
}


def _encode_metrics(batch: Batch) -> Any:
    request, scopes = _envelope(batch, "resource_metrics", "scope_metrics")
    metrics = batch.tables["metrics"]
    c = _fields(
        metrics,
        [
            "scope_index",
            "name",
            "description",
            "unit",
            "type",
            "aggregation_temporality",
            "is_monotonic",
        ],
    )
    metadata = _attributes(metrics.column("metadata"))
    messages = []
    for i, scope_index in enumerate(c["scope_index"]):
        metric = scopes[scope_index].metrics.add(
            name=c["name"][i] or "",
            description=c["description"][i] or "",
            unit=c["unit"][i] or "",
            metadata=metadata[i],
        )
        kind = METRIC_TYPE_TABLE.get(c["type"][i] or 0)
        if kind is not None:
            data = getattr(metric, kind)
            data.SetInParent()
            if kind in ("sum", "histogram", "exponential_histogram"):
                data.aggregation_temporality = c["aggregation_temporality"][i] or 0
            if kind == "sum":
                data.is_monotonic = bool(c["is_monotonic"][i])
        messages.append(metric)
    for table in POINT_TABLES:
        index, points = _POINT_ENCODERS[table](batch.tables[table])
        for metric_index, point in zip(index, points, strict=True):
            getattr(messages[metric_index], table).data_points.append(point)
    return request


_ENCODERS: Final[dict[str, Callable[[Batch], Any]]] = {
    TRACES: _encode_traces,
    LOGS_SIGNAL: _encode_logs,
    METRICS_SIGNAL: _encode_metrics,
}
