"""The debug exporter's text: what the Collector's debugexporter prints for a batch.

`summary` is the one-line count of every verbosity, `normal_text` the one-line-per-record
form, `detailed_text` the full dump (the Collector's otlptext). Layout, value rendering
(`Str(x)`, `Int(1)`, Go's float and time formats) follow the Collector so that output can
be compared line by line.
"""

from __future__ import annotations

import base64
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from otlp import batch as b
from otlp.batch import Batch

Row = dict[str, Any]

# --- Go value formatting ---------------------------------------------------------------------

VALUE_TYPE_NAMES = {
    b.V_EMPTY: "Empty",
    b.V_STRING: "Str",
    b.V_BOOL: "Bool",
    b.V_INT: "Int",
    b.V_DOUBLE: "Double",
    b.V_ARRAY: "Slice",
    b.V_KVLIST: "Map",
    b.V_BYTES: "Bytes",
}
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
TEMPORALITIES = ("Unspecified", "Delta", "Cumulative")
METRIC_TYPES = ("Empty", "Gauge", "Sum", "Histogram", "ExponentialHistogram", "Summary")
SEVERITIES = (
    "Unspecified",
    *(
        f"{level}{n if n > 1 else ''}"
        for level in ("Trace", "Debug", "Info", "Warn", "Error", "Fatal")
        for n in range(1, 5)
    ),
)


def _name(names: tuple[str, ...], index: int | None) -> str:
    index = index or 0
    return names[index] if 0 <= index < len(names) else str(index)


def _shortest(x: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(x) (finite, non-zero) and the decimal exponent of
    the first digit: the digits Go's strconv picks too."""
    _, digits, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    assert isinstance(exponent, int)
    return "".join(map(str, digits)), len(digits) + exponent - 1


def _mantissa(digits: str) -> str:
    return digits[0] + ("." + digits[1:] if len(digits) > 1 else "")


def _plain(x: float) -> str:
    return format(Decimal(repr(x)).normalize(), "f")


def go_v(x: float) -> str:
    """fmt's %v of a float64 (shortest digits; exponent form from 1e+06 and below 1e-04)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    digits, e10 = _shortest(x)
    sign = "-" if x < 0 else ""
    if e10 < -4 or e10 >= 6:
        return f"{sign}{_mantissa(digits)}e{'-' if e10 < 0 else '+'}{abs(e10):02d}"
    return _plain(x)


def go_f(x: float) -> str:
    """fmt's %f."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return f"{x:f}"


def es6(x: float) -> str:
    """pcommon's AsString of a double: ECMAScript number formatting."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    if 1e-6 <= abs(x) < 1e21:
        return _plain(x)
    digits, e10 = _shortest(x)
    sign = "-" if x < 0 else ""
    exponent = f"-{-e10}" if e10 < 0 else f"+{e10:02d}"
    return f"{sign}{_mantissa(digits)}e{exponent}"


def go_time(unix_ns: int | None) -> str:
    """pcommon.Timestamp.String(): Go's time.Time.String() in UTC."""
    seconds, nanos = divmod(unix_ns or 0, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + " +0000 UTC"


def hex_id(raw: bytes | None) -> str:
    """TraceID/SpanID String(): lowercase hex, empty for an unset (null or all-zero) id."""
    return raw.hex() if raw and any(raw) else ""


def as_string(value: Row | None) -> str:
    """pcommon.Value.AsString() of a VALUE/ATTRIBUTE struct."""
    if value is None:
        return ""
    kind = value["type"]
    if kind == b.V_STRING:
        return value["str"] or ""
    if kind == b.V_BOOL:
        return "true" if value["bool"] else "false"
    if kind == b.V_INT:
        return str(value["int"] or 0)
    if kind == b.V_DOUBLE:
        return es6(value["double"] or 0.0)
    if kind == b.V_BYTES:
        return base64.b64encode(value["bytes"] or b"").decode()
    if kind in (b.V_ARRAY, b.V_KVLIST):
        return value["str"] or ""  # the batch keeps their JSON rendering here
    return ""


def typed(value: Row | None) -> str:
    """`Str(value)`, `Int(3)`: the detailed output's value form."""
    kind = value["type"] if value is not None else b.V_EMPTY
    return f"{VALUE_TYPE_NAMES.get(kind, 'Empty')}({as_string(value)})"


# --- the batch as a tree: resources → scopes → records ---------------------------------------


@dataclass(slots=True)
class _Scope:
    row: Row
    records: list[Row] = field(default_factory=list)


@dataclass(slots=True)
class _Resource:
    row: Row
    scopes: list[_Scope] = field(default_factory=list)


def _group(rows: Iterable[Row], key: str) -> dict[int, list[Row]]:
    groups: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return groups


def _tree(batch: Batch) -> list[_Resource]:
    records = batch.records.to_pylist()
    for index, row in enumerate(records):
        row["_index"] = index  # metric rows: what the point tables' metric_index refers to
    by_scope = _group(records, "scope_index")
    resources = [_Resource(row) for row in batch.resources.to_pylist()]
    for index, row in enumerate(batch.scopes.to_pylist()):
        resources[row["resource_index"]].scopes.append(_Scope(row, by_scope.get(index, [])))
    return resources


def _points(batch: Batch) -> dict[str, dict[int, list[Row]]]:
    return {name: _group(batch.tables[name].to_pylist(), "metric_index") for name in b.POINT_TABLES}


def _points_of(points: dict[str, dict[int, list[Row]]], metric: Row) -> list[Row]:
    table = b.METRIC_TYPE_TABLE.get(metric["type"])
    return points[table].get(metric["_index"], []) if table else []


# --- basic -----------------------------------------------------------------------------------

SIGNAL_MESSAGES = {b.TRACES: "Traces", b.METRICS_SIGNAL: "Metrics", b.LOGS_SIGNAL: "Logs"}


def summary(batch: Batch) -> dict[str, int]:
    """The counts the Collector logs with "Traces"/"Metrics"/"Logs" at every verbosity."""
    resources = batch.resources.num_rows
    if batch.signal == b.TRACES:
        return {"resource spans": resources, "spans": batch.item_count()}
    if batch.signal == b.LOGS_SIGNAL:
        return {"resource logs": resources, "log records": batch.item_count()}
    return {
        "resource metrics": resources,
        "metrics": batch.tables["metrics"].num_rows,
        "data points": batch.item_count(),
    }


# --- normal ----------------------------------------------------------------------------------


def _pairs(attributes: list[Row] | None) -> list[str]:
    return [f"{a['key']}={as_string(a)}" for a in attributes or ()]


def _pairs_suffix(attributes: list[Row] | None) -> str:
    pairs = _pairs(attributes)
    return " " + " ".join(pairs) if pairs else ""


def _resource_line(label: str, index: int, row: Row) -> str:
    schema = f" [{row['schema_url']}]" if row["schema_url"] else ""
    return f"{label} #{index}{schema}{_pairs_suffix(row['attributes'])}"


def _scope_line(label: str, index: int, row: Row) -> str:
    details = (row["name"] or "") + (f"@{row['version']}" if row["version"] else "")
    if row["schema_url"]:
        details += (" " if details else "") + f"[{row['schema_url']}]"
    details = f" {details}" if details else ""
    return f"{label} #{index}{details}{_pairs_suffix(row['attributes'])}"


_NORMAL_LABELS = {
    b.TRACES: ("ResourceTraces", "ScopeTraces"),
    b.LOGS_SIGNAL: ("ResourceLog", "ScopeLog"),
    b.METRICS_SIGNAL: ("ResourceMetrics", "ScopeMetrics"),
}


def normal_text(batch: Batch) -> str:
    """One line per resource, scope and record (metric data point)."""
    resource_label, scope_label = _NORMAL_LABELS[batch.signal]
    points = _points(batch) if batch.signal == b.METRICS_SIGNAL else {}
    lines: list[str] = []
    for i, resource in enumerate(_tree(batch)):
        lines.append(_resource_line(resource_label, i, resource.row))
        for j, scope in enumerate(resource.scopes):
            lines.append(_scope_line(scope_label, j, scope.row))
            for record in scope.records:
                if batch.signal == b.TRACES:
                    line = f"{record['name'] or ''} {hex_id(record['trace_id'])} "
                    lines.append(
                        line + hex_id(record["span_id"]) + _pairs_suffix(record["attributes"])
                    )
                elif batch.signal == b.LOGS_SIGNAL:
                    pairs = " ".join(_pairs(record["attributes"]))
                    lines.append(f"{as_string(record['body'])} {pairs}")
                else:
                    lines.extend(_normal_points(record, _points_of(points, record)))
    return "\n".join(lines)


def _normal_points(metric: Row, points: list[Row]) -> list[str]:
    kind = metric["type"]
    lines = []
    for p in points:
        if kind in (b.M_GAUGE, b.M_SUM):
            if p["value_type"] == b.N_INT:
                value = str(p["as_int"])
            elif p["value_type"] == b.N_DOUBLE:
                value = go_v(p["as_double"])
            else:
                value = ""
        elif kind == b.M_SUMMARY:
            value = f"count={p['count'] or 0} sum={go_f(p['sum'] or 0.0)}" + "".join(
                f" q{go_v(q['quantile'])}={go_v(q['value'])}" for q in p["quantile_values"] or ()
            )
        else:
            value = _normal_histogram(kind, p)
        lines.append(f"{metric['name'] or ''}{{{','.join(_pairs(p['attributes']))}}} {value}")
    return lines


def _normal_histogram(kind: int, p: Row) -> str:
    parts = [f"count={p['count'] or 0}"]
    parts += [f"{key}={go_v(p[key])}" for key in ("sum", "min", "max") if p[key] is not None]
    if kind == b.M_HISTOGRAM:
        bounds = p["explicit_bounds"] or []
        for i, count in enumerate(p["bucket_counts"] or ()):
            parts.append(f"le{go_v(bounds[i])}={count}" if i < len(bounds) else str(count))
        return " ".join(parts)
    factor = math.ldexp(math.log(2), -(p["scale"] or 0))
    negative = p["negative_bucket_counts"] or []
    for j in reversed(range(len(negative))):
        upper = -math.exp(((p["negative_offset"] or 0) + j) * factor)
        parts.append(f"le{go_v(upper)}={negative[j]}")
    if p["zero_count"]:
        parts.append(f"zero={p['zero_count']}")
    for j, count in enumerate(p["positive_bucket_counts"] or ()):
        upper = math.exp(((p["positive_offset"] or 0) + j + 1) * factor)
        parts.append(f"le{go_v(upper)}={count}")
    return " ".join(parts)


# --- detailed --------------------------------------------------------------------------------


class _Dump:
    """The Collector's otlptext dataBuffer."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def entry(self, line: str) -> None:
        self.lines.append(line)

    def field(self, name: str, value: object) -> None:
        self.entry(f"    {name:<15}: {value}")

    def attributes(self, header: str, attributes: list[Row] | None) -> None:
        if not attributes:
            return
        self.entry(f"{header}:")
        # nested headers ("     -> Attributes") indent their items one level further
        prefix = header.split("->")[0] + "     ->" if "->" in header else "     ->"
        for a in attributes:
            self.entry(f"{prefix} {a['key']}: {typed(a)}")

    def resource(self, label: str, index: int, row: Row) -> None:
        self.entry(f"{label} #{index}")
        self.entry(f"Resource SchemaURL: {row['schema_url'] or ''}")
        self.attributes("Resource attributes", row["attributes"])

    def scope(self, label: str, index: int, row: Row) -> None:
        self.entry(f"{label} #{index}")
        self.entry(f"{label} SchemaURL: {row['schema_url'] or ''}")
        self.entry(f"InstrumentationScope {row['name'] or ''} {row['version'] or ''}")
        self.attributes("InstrumentationScope attributes", row["attributes"])

    def span(self, index: int, s: Row) -> None:
        self.entry(f"Span #{index}")
        self.field("Trace ID", hex_id(s["trace_id"]))
        self.field("Parent ID", hex_id(s["parent_span_id"]))
        self.field("ID", hex_id(s["span_id"]))
        self.field("Name", s["name"] or "")
        self.field("Kind", _name(SPAN_KINDS, s["kind"]))
        if s["trace_state"]:
            self.field("TraceState", s["trace_state"])
        self.field("Start time", go_time(s["start_time_unix_nano"]))
        self.field("End time", go_time(s["end_time_unix_nano"]))
        self.field("Status code", _name(STATUS_CODES, s["status_code"]))
        self.field("Status message", s["status_message"] or "")
        self.field("DroppedAttributesCount", s["dropped_attributes_count"] or 0)
        self.field("DroppedEventsCount", s["dropped_events_count"] or 0)
        self.field("DroppedLinksCount", s["dropped_links_count"] or 0)
        self.attributes("Attributes", s["attributes"])
        if s["events"]:
            self.entry("Events:")
            for i, e in enumerate(s["events"]):
                self.entry(f"SpanEvent #{i}")
                self.entry(f"     -> Name: {e['name'] or ''}")
                self.entry(f"     -> Timestamp: {go_time(e['time_unix_nano'])}")
                self.entry(f"     -> DroppedAttributesCount: {e['dropped_attributes_count'] or 0}")
                self.attributes("     -> Attributes:", e["attributes"])
        if s["links"]:
            self.entry("Links:")
            for i, link in enumerate(s["links"]):
                self.entry(f"SpanLink #{i}")
                self.entry(f"     -> Trace ID: {hex_id(link['trace_id'])}")
                self.entry(f"     -> ID: {hex_id(link['span_id'])}")
                self.entry(f"     -> TraceState: {link['trace_state'] or ''}")
                self.entry(
                    f"     -> DroppedAttributesCount: {link['dropped_attributes_count'] or 0}"
                )
                self.attributes("     -> Attributes:", link["attributes"])

    def log_record(self, index: int, r: Row) -> None:
        severity = r["severity_number"] or 0
        self.entry(f"LogRecord #{index}")
        self.entry(f"ObservedTimestamp: {go_time(r['observed_time_unix_nano'])}")
        self.entry(f"Timestamp: {go_time(r['time_unix_nano'])}")
        self.entry(f"SeverityText: {r['severity_text'] or ''}")
        self.entry(f"SeverityNumber: {_name(SEVERITIES, severity)}({severity})")
        if r["event_name"]:
            self.entry(f"EventName: {r['event_name']}")
        self.entry(f"Body: {typed(r['body'])}")
        self.attributes("Attributes", r["attributes"])
        self.entry(f"Trace ID: {hex_id(r['trace_id'])}")
        self.entry(f"Span ID: {hex_id(r['span_id'])}")
        self.entry(f"Flags: {r['flags'] or 0}")

    def metric(self, index: int, m: Row, points: list[Row]) -> None:
        kind = m["type"]
        self.entry(f"Metric #{index}")
        self.entry("Descriptor:")
        self.entry(f"     -> Name: {m['name'] or ''}")
        self.entry(f"     -> Description: {m['description'] or ''}")
        self.entry(f"     -> Unit: {m['unit'] or ''}")
        self.entry(f"     -> DataType: {_name(METRIC_TYPES, kind)}")
        self.attributes("     -> Metadata", m["metadata"])
        if kind == b.M_SUM:
            self.entry(f"     -> IsMonotonic: {'true' if m['is_monotonic'] else 'false'}")
        if kind in (b.M_SUM, b.M_HISTOGRAM, b.M_EXPONENTIAL_HISTOGRAM):
            temporality = _name(TEMPORALITIES, m["aggregation_temporality"])
            self.entry(f"     -> AggregationTemporality: {temporality}")
        label = {
            b.M_GAUGE: "NumberDataPoints",
            b.M_SUM: "NumberDataPoints",
            b.M_HISTOGRAM: "HistogramDataPoints",
            b.M_EXPONENTIAL_HISTOGRAM: "ExponentialHistogramDataPoints",
            b.M_SUMMARY: "SummaryDataPoints",
        }.get(kind)
        for i, p in enumerate(points):
            self.entry(f"{label} #{i}")
            self.attributes("Data point attributes", p["attributes"])
            self.entry(f"StartTimestamp: {go_time(p['start_time_unix_nano'])}")
            self.entry(f"Timestamp: {go_time(p['time_unix_nano'])}")
            if kind in (b.M_GAUGE, b.M_SUM):
                if p["value_type"] == b.N_INT:
                    self.entry(f"Value: {p['as_int']}")
                elif p["value_type"] == b.N_DOUBLE:
                    self.entry(f"Value: {go_f(p['as_double'])}")
            elif kind == b.M_SUMMARY:
                self.entry(f"Count: {p['count'] or 0}")
                self.entry(f"Sum: {go_f(p['sum'] or 0.0)}")
                for q, qv in enumerate(p["quantile_values"] or ()):
                    self.entry(
                        f"QuantileValue #{q}: Quantile {go_f(qv['quantile'])}, "
                        f"Value {go_f(qv['value'])}"
                    )
                continue  # the Collector prints no exemplars for summaries (they have none)
            else:
                self._histogram(kind, p)
            self._exemplars(p["exemplars"])

    def _histogram(self, kind: int, p: Row) -> None:
        self.entry(f"Count: {p['count'] or 0}")
        for key in ("sum", "min", "max"):
            if p[key] is not None:
                self.entry(f"{key.capitalize()}: {go_f(p[key])}")
        if kind == b.M_HISTOGRAM:
            for i, bound in enumerate(p["explicit_bounds"] or ()):
                self.entry(f"ExplicitBounds #{i}: {go_f(bound)}")
            for i, count in enumerate(p["bucket_counts"] or ()):
                self.entry(f"Buckets #{i}, Count: {count}")
            return
        factor = math.ldexp(math.log(2), -(p["scale"] or 0))
        negative = p["negative_bucket_counts"] or []
        for j in reversed(range(len(negative))):
            index = (p["negative_offset"] or 0) + j
            lower, upper = math.exp(index * factor), math.exp((index + 1) * factor)
            self.entry(f"Bucket [{go_f(-upper)}, {go_f(-lower)}), Count: {negative[j]}")
        if p["zero_count"]:
            self.entry(f"Bucket [0, 0], Count: {p['zero_count']}")
        for j, count in enumerate(p["positive_bucket_counts"] or ()):
            index = (p["positive_offset"] or 0) + j
            lower, upper = math.exp(index * factor), math.exp((index + 1) * factor)
            self.entry(f"Bucket ({go_f(lower)}, {go_f(upper)}], Count: {count}")

    def _exemplars(self, exemplars: list[Row] | None) -> None:
        if not exemplars:
            return
        self.entry("Exemplars:")
        for i, e in enumerate(exemplars):
            self.entry(f"Exemplar #{i}")
            self.entry(f"     -> Trace ID: {hex_id(e['trace_id'])}")
            self.entry(f"     -> Span ID: {hex_id(e['span_id'])}")
            self.entry(f"     -> Timestamp: {go_time(e['time_unix_nano'])}")
            if e["value_type"] == b.N_INT:
                self.entry(f"     -> Value: {e['as_int']}")
            elif e["value_type"] == b.N_DOUBLE:
                self.entry(f"     -> Value: {go_f(e['as_double'])}")
            self.attributes("     -> FilteredAttributes", e["filtered_attributes"])


_DETAILED_LABELS = {
    b.TRACES: ("ResourceSpans", "ScopeSpans"),
    b.LOGS_SIGNAL: ("ResourceLog", "ScopeLogs"),
    b.METRICS_SIGNAL: ("ResourceMetrics", "ScopeMetrics"),
}


def detailed_text(batch: Batch) -> str:
    """Every field of every record, attributes with their types."""
    resource_label, scope_label = _DETAILED_LABELS[batch.signal]
    points = _points(batch) if batch.signal == b.METRICS_SIGNAL else {}
    dump = _Dump()
    for i, resource in enumerate(_tree(batch)):
        dump.resource(resource_label, i, resource.row)
        for j, scope in enumerate(resource.scopes):
            dump.scope(scope_label, j, scope.row)
            for k, record in enumerate(scope.records):
                if batch.signal == b.TRACES:
                    dump.span(k, record)
                elif batch.signal == b.LOGS_SIGNAL:
                    dump.log_record(k, record)
                else:
                    dump.metric(k, record, _points_of(points, record))
    return "\n".join(dump.lines)
