"""Batch -> one Arrow table per ClickHouse table, with the columns and values the contrib
clickhouseexporter v0.165.0 inserts (exporter_traces.go, exporter_logs.go,
internal/metrics/*.go).

Resource and scope columns are computed once per resource/scope row and spread to the
records with `take`; everything else is whole-column pyarrow/numpy work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import N_DOUBLE, N_INT, POINT_TABLES, Batch
from otlp.columns import (
    as_array,
    attributes_to_string_map,
    fill_null,
    hex_ids,
    list_offsets,
    lookup_strings,
    relist,
    timestamps_ns,
    timestamps_s,
    value_to_string,
)

# ptrace.SpanKind.String() / ptrace.StatusCode.String(); unknown codes give ""
SPAN_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUS_CODES = ["Unset", "Ok", "Error"]


def _col(table: pa.Table, name: str) -> pa.Array:
    return as_array(table.column(name))


def _str(table: pa.Table, name: str) -> pa.Array:
    return fill_null(_col(table, name), "")


def _cast(arr: pa.Array, type_: pa.DataType) -> pa.Array:
    return arr if arr.type == type_ else pc.cast(arr, type_)


def _num(table: pa.Table, name: str, type_: pa.DataType) -> pa.Array:
    return _cast(fill_null(_col(table, name), 0), type_)


def _nonnull_list(lists: pa.Array) -> pa.ListArray:
    """Null lists as empty ones (ClickHouse arrays are never NULL)."""
    if not lists.null_count:
        return lists
    return relist(list_offsets(lists), pc.list_flatten(lists))


@dataclass(slots=True)
class _Scopes:
    """Resource and scope columns at scope granularity (one row per scope)."""

    service_name: pa.Array
    resource_attributes: pa.Array
    resource_schema_url: pa.Array
    scope_name: pa.Array
    scope_version: pa.Array
    scope_attributes: pa.Array
    scope_schema_url: pa.Array
    scope_dropped: pa.Array

    @classmethod
    def of(cls, batch: Batch) -> _Scopes:
        resources, scopes = batch.resources, batch.scopes
        to_resource = fill_null(_col(scopes, "resource_index"), 0)
        return cls(
            service_name=_str(resources, "service_name").take(to_resource),
            resource_attributes=attributes_to_string_map(_col(resources, "attributes")).take(
                to_resource
            ),
            resource_schema_url=_str(resources, "schema_url").take(to_resource),
            scope_name=_str(scopes, "name"),
            scope_version=_str(scopes, "version"),
            scope_attributes=attributes_to_string_map(_col(scopes, "attributes")),
            scope_schema_url=_str(scopes, "schema_url"),
            scope_dropped=_num(scopes, "dropped_attributes_count", pa.uint32()),
        )


def traces_table(batch: Batch) -> pa.Table:
    """spans -> otel_traces rows (the columns of traces_insert.sql)."""
    spans = batch.tables["spans"]
    scopes = _Scopes.of(batch)
    at = _col(spans, "scope_index")
    start = fill_null(_col(spans, "start_time_unix_nano"), 0)
    end = fill_null(_col(spans, "end_time_unix_nano"), 0)
    columns: dict[str, pa.Array] = {
        "Timestamp": timestamps_ns(start),
        "TraceId": hex_ids(_col(spans, "trace_id")),
        "SpanId": hex_ids(_col(spans, "span_id")),
        "ParentSpanId": hex_ids(_col(spans, "parent_span_id")),
        "TraceState": _str(spans, "trace_state"),
        "SpanName": _str(spans, "name"),
        "SpanKind": lookup_strings(_col(spans, "kind"), SPAN_KINDS),
        "ServiceName": scopes.service_name.take(at),
        "ResourceAttributes": scopes.resource_attributes.take(at),
        "ScopeName": scopes.scope_name.take(at),
        "ScopeVersion": scopes.scope_version.take(at),
        "SpanAttributes": attributes_to_string_map(_col(spans, "attributes")),
        # end - start in uint64, wrapping like the Go exporter when end < start
        "Duration": pc.subtract(end, start),
        "StatusCode": lookup_strings(_col(spans, "status_code"), STATUS_CODES),
        "StatusMessage": _str(spans, "status_message"),
    }
    events = _col(spans, "events")
    offsets = list_offsets(events)
    items = pc.list_flatten(events)
    columns["Events.Timestamp"] = relist(
        offsets, timestamps_ns(pc.struct_field(items, "time_unix_nano"))
    )
    columns["Events.Name"] = relist(offsets, fill_null(pc.struct_field(items, "name"), ""))
    columns["Events.Attributes"] = relist(
        offsets, attributes_to_string_map(pc.struct_field(items, "attributes"))
    )
    links = _col(spans, "links")
    offsets = list_offsets(links)
    items = pc.list_flatten(links)
    columns["Links.TraceId"] = relist(offsets, hex_ids(pc.struct_field(items, "trace_id")))
    columns["Links.SpanId"] = relist(offsets, hex_ids(pc.struct_field(items, "span_id")))
    columns["Links.TraceState"] = relist(
        offsets, fill_null(pc.struct_field(items, "trace_state"), "")
    )
    columns["Links.Attributes"] = relist(
        offsets, attributes_to_string_map(pc.struct_field(items, "attributes"))
    )
    return pa.table(columns)


def logs_table(batch: Batch, with_event_name: bool = True) -> pa.Table:
    """log records -> otel_logs rows (logs_insert.sql; EventName when the table has it)."""
    logs = batch.tables["logs"]
    scopes = _Scopes.of(batch)
    at = _col(logs, "scope_index")
    time = fill_null(_col(logs, "time_unix_nano"), 0)
    observed = fill_null(_col(logs, "observed_time_unix_nano"), 0)
    columns: dict[str, pa.Array] = {
        # the record's time, or when it was observed if it has none
        "Timestamp": timestamps_ns(pc.if_else(pc.equal(time, 0), observed, time)),
        "TraceId": hex_ids(_col(logs, "trace_id")),
        "SpanId": hex_ids(_col(logs, "span_id")),
        # uint8(r.Flags()) / uint8(r.SeverityNumber()): truncating conversions
        "TraceFlags": pc.cast(
            pc.bit_wise_and(_num(logs, "flags", pa.uint32()), pa.scalar(0xFF, pa.uint32())),
            pa.uint8(),
        ),
        "SeverityText": _str(logs, "severity_text"),
        "SeverityNumber": pc.cast(
            fill_null(_col(logs, "severity_number"), 0), pa.uint8(), safe=False
        ),
        "ServiceName": scopes.service_name.take(at),
        "Body": value_to_string(_col(logs, "body")),
        "ResourceSchemaUrl": scopes.resource_schema_url.take(at),
        "ResourceAttributes": scopes.resource_attributes.take(at),
        "ScopeSchemaUrl": scopes.scope_schema_url.take(at),
        "ScopeName": scopes.scope_name.take(at),
        "ScopeVersion": scopes.scope_version.take(at),
        "ScopeAttributes": scopes.scope_attributes.take(at),
        "LogAttributes": attributes_to_string_map(_col(logs, "attributes")),
    }
    if with_event_name:
        columns["EventName"] = _str(logs, "event_name")
    return pa.table(columns)


def _number_value(get: Callable[[str], pa.Array]) -> pa.Array:
    """getValue: as_double, float64(as_int), or 0 when the value is unset."""
    kind = fill_null(get("value_type"), 0)
    as_double = fill_null(get("as_double"), 0.0)
    as_int = pc.cast(fill_null(get("as_int"), 0), pa.float64())
    zero = pa.scalar(0.0, pa.float64())
    return pc.if_else(
        pc.equal(kind, N_DOUBLE), as_double, pc.if_else(pc.equal(kind, N_INT), as_int, zero)
    )


def _exemplar_columns(points: pa.Table) -> dict[str, pa.Array]:
    exemplars = _col(points, "exemplars")
    offsets = list_offsets(exemplars)
    items = pc.list_flatten(exemplars)
    field = partial(pc.struct_field, items)
    return {
        "Exemplars.FilteredAttributes": relist(
            offsets, attributes_to_string_map(field("filtered_attributes"))
        ),
        "Exemplars.TimeUnix": relist(offsets, timestamps_s(field("time_unix_nano"))),
        "Exemplars.Value": relist(offsets, _number_value(field)),
        # hex.EncodeToString of the raw id: an empty id is all zeros, not ""
        "Exemplars.SpanId": relist(offsets, hex_ids(field("span_id"), empty_as_zeros=True)),
        "Exemplars.TraceId": relist(offsets, hex_ids(field("trace_id"), empty_as_zeros=True)),
    }


def _metric_common(batch: Batch, points: pa.Table, scopes: _Scopes) -> dict[str, pa.Array]:
    metrics = batch.tables["metrics"]
    metric = _col(points, "metric_index")
    at = _col(metrics, "scope_index").take(metric)
    return {
        "ResourceAttributes": scopes.resource_attributes.take(at),
        "ResourceSchemaUrl": scopes.resource_schema_url.take(at),
        "ScopeName": scopes.scope_name.take(at),
        "ScopeVersion": scopes.scope_version.take(at),
        "ScopeAttributes": scopes.scope_attributes.take(at),
        "ScopeDroppedAttrCount": scopes.scope_dropped.take(at),
        "ScopeSchemaUrl": scopes.scope_schema_url.take(at),
        "ServiceName": scopes.service_name.take(at),
        "MetricName": _str(metrics, "name").take(metric),
        "MetricDescription": _str(metrics, "description").take(metric),
        "MetricUnit": _str(metrics, "unit").take(metric),
        "Attributes": attributes_to_string_map(_col(points, "attributes")),
        "StartTimeUnix": timestamps_s(_col(points, "start_time_unix_nano")),
        "TimeUnix": timestamps_s(_col(points, "time_unix_nano")),
    }


def _temporality(batch: Batch, points: pa.Table) -> pa.Array:
    metrics = batch.tables["metrics"]
    return _num(metrics, "aggregation_temporality", pa.int32()).take(_col(points, "metric_index"))


def _count_sum(points: pa.Table) -> dict[str, pa.Array]:
    return {
        "Count": _num(points, "count", pa.uint64()),
        "Sum": _num(points, "sum", pa.float64()),
    }


def _min_max(points: pa.Table) -> dict[str, pa.Array]:
    return {"Min": _num(points, "min", pa.float64()), "Max": _num(points, "max", pa.float64())}


def _flags(points: pa.Table) -> pa.Array:
    return _num(points, "flags", pa.uint32())


def metric_tables(batch: Batch) -> dict[str, pa.Table]:
    """Point tables -> {"gauge": rows, "sum": rows, ...} for the kinds present."""
    scopes: _Scopes | None = None
    out: dict[str, pa.Table] = {}
    for kind in POINT_TABLES:
        points = batch.tables.get(kind)
        if points is None or not points.num_rows:
            continue
        scopes = scopes or _Scopes.of(batch)
        columns = _metric_common(batch, points, scopes)
        if kind in ("gauge", "sum"):
            columns["Value"] = _number_value(partial(_col, points))
            columns["Flags"] = _flags(points)
            columns.update(_exemplar_columns(points))
            if kind == "sum":
                columns["AggregationTemporality"] = _temporality(batch, points)
                columns["IsMonotonic"] = fill_null(
                    _col(batch.tables["metrics"], "is_monotonic"), False
                ).take(_col(points, "metric_index"))
        elif kind == "histogram":
            columns.update(_count_sum(points))
            columns["BucketCounts"] = _nonnull_list(_col(points, "bucket_counts"))
            columns["ExplicitBounds"] = _nonnull_list(_col(points, "explicit_bounds"))
            columns.update(_exemplar_columns(points))
            columns["Flags"] = _flags(points)
            columns.update(_min_max(points))
            columns["AggregationTemporality"] = _temporality(batch, points)
        elif kind == "exponential_histogram":
            columns.update(_count_sum(points))
            columns["Scale"] = _num(points, "scale", pa.int32())
            columns["ZeroCount"] = _num(points, "zero_count", pa.uint64())
            columns["PositiveOffset"] = _num(points, "positive_offset", pa.int32())
            columns["PositiveBucketCounts"] = _nonnull_list(_col(points, "positive_bucket_counts"))
            columns["NegativeOffset"] = _num(points, "negative_offset", pa.int32())
            columns["NegativeBucketCounts"] = _nonnull_list(_col(points, "negative_bucket_counts"))
            columns.update(_exemplar_columns(points))
            columns["Flags"] = _flags(points)
            columns.update(_min_max(points))
            columns["AggregationTemporality"] = _temporality(batch, points)
        else:  # summary
            columns.update(_count_sum(points))
            quantiles = _col(points, "quantile_values")
            offsets = list_offsets(quantiles)
            items = pc.list_flatten(quantiles)
            columns["ValueAtQuantiles.Quantile"] = relist(
                offsets, fill_null(pc.struct_field(items, "quantile"), 0.0)
            )
            columns["ValueAtQuantiles.Value"] = relist(
                offsets, fill_null(pc.struct_field(items, "value"), 0.0)
            )
            columns["Flags"] = _flags(points)
        out[kind] = pa.table(columns)
    return out
