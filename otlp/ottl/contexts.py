"""OTTL contexts over a Batch: which paths exist at which level, and the rows a context
iterates (spans, span events, log records, metrics, data points, resources, scopes) with
the index columns that lead from each row to its span, metric, scope and resource.

Paths may carry the context name as prefix (``span.name``) or not (``name``), as the
Collector accepts both. Reading a higher level (``resource.attributes["k"]`` in the span
context) is supported everywhere. Writing is supported on the context's own fields and
attributes, and on resource and scope attributes from lower contexts (each selected record
writes its shared resource/scope: the last one wins, as in the Collector); other
higher-level fields are refused at config load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import (
    EVENT,
    METRICS_SIGNAL,
    N_DOUBLE,
    N_INT,
    V_BOOL,
    V_BYTES,
    V_DOUBLE,
    V_INT,
    V_STRING,
    Batch,
)
from otlp.columns import as_array, hex_ids, list_offsets, value_to_string
from otlp.ottl.ast import Path
from otlp.ottl.values import Vals

# contexts and the levels above them, nearest first
PARENTS: Final[dict[str, tuple[str, ...]]] = {
    "resource": (),
    "scope": ("resource",),
    "span": ("scope", "resource"),
    "spanevent": ("span", "scope", "resource"),
    "log": ("scope", "resource"),
    "metric": ("scope", "resource"),
    "datapoint": ("metric", "scope", "resource"),
}
CONTEXTS: Final = tuple(PARENTS)
SIGNAL_CONTEXTS: Final = {
    "traces": ("resource", "scope", "span", "spanevent"),
    "logs": ("resource", "scope", "log"),
    "metrics": ("resource", "scope", "metric", "datapoint"),
}
# path prefixes naming a level
PREFIXES: Final = {
    "resource": "resource",
    "instrumentation_scope": "scope",
    "scope": "scope",
    "span": "span",
    "spanevent": "spanevent",
    "log": "log",
    "metric": "metric",
    "datapoint": "datapoint",
}

# special (computed) fields
HEX = "hex"
DURATION = "duration"
BODY_STRING = "body_string"
VALUE = "value"  # a VALUE struct column (log body)
NUMBER = "number"  # value_double / value_int of number data points


@dataclass(frozen=True, slots=True)
class Field:
    column: str
    kind: int  # V_* of what OTTL sees
    settable: bool = True
    special: str = ""


def _ids(column: str) -> dict[str, Field]:
    return {
        column: Field(column, V_BYTES, settable=False),
        f"{column}.string": Field(column, V_STRING, settable=False, special=HEX),
    }


_COMMON_ATTR: Final = {"dropped_attributes_count": Field("dropped_attributes_count", V_INT)}

FIELDS: Final[dict[str, dict[str, Field]]] = {
    "resource": {**_COMMON_ATTR, "schema_url": Field("schema_url", V_STRING)},
    "scope": {
        **_COMMON_ATTR,
        "name": Field("name", V_STRING),
        "version": Field("version", V_STRING),
        "schema_url": Field("schema_url", V_STRING),
    },
    "span": {
        **_COMMON_ATTR,
        **_ids("trace_id"),
        **_ids("span_id"),
        **_ids("parent_span_id"),
        "trace_state": Field("trace_state", V_STRING),
        "name": Field("name", V_STRING),
        "kind": Field("kind", V_INT),
        "start_time_unix_nano": Field("start_time_unix_nano", V_INT),
        "end_time_unix_nano": Field("end_time_unix_nano", V_INT),
        "duration": Field("end_time_unix_nano", V_INT, settable=False, special=DURATION),
        # time.Time paths, as Unix nanoseconds (their difference is a Duration in ns)
        "start_time": Field("start_time_unix_nano", V_INT, settable=False),
        "end_time": Field("end_time_unix_nano", V_INT, settable=False),
        "dropped_events_count": Field("dropped_events_count", V_INT),
        "dropped_links_count": Field("dropped_links_count", V_INT),
        "status.code": Field("status_code", V_INT),
        "status.message": Field("status_message", V_STRING),
        "flags": Field("flags", V_INT),
    },
    "spanevent": {
        **_COMMON_ATTR,
        "name": Field("name", V_STRING),
        "time_unix_nano": Field("time_unix_nano", V_INT),
    },
    "log": {
        **_COMMON_ATTR,
        **_ids("trace_id"),
        **_ids("span_id"),
        "time_unix_nano": Field("time_unix_nano", V_INT),
        "observed_time_unix_nano": Field("observed_time_unix_nano", V_INT),
        "time": Field("time_unix_nano", V_INT, settable=False),
        "observed_time": Field("observed_time_unix_nano", V_INT, settable=False),
        "severity_number": Field("severity_number", V_INT),
        "severity_text": Field("severity_text", V_STRING),
        "body": Field("body", 0, special=VALUE),
        "body.string": Field("body", V_STRING, settable=False, special=BODY_STRING),
        "flags": Field("flags", V_INT),
        "event_name": Field("event_name", V_STRING),
    },
    "metric": {
        "name": Field("name", V_STRING),
        "description": Field("description", V_STRING),
        "unit": Field("unit", V_STRING),
        "type": Field("type", V_INT, settable=False),
        "aggregation_temporality": Field("aggregation_temporality", V_INT),
        "is_monotonic": Field("is_monotonic", V_BOOL),
    },
    "datapoint": {
        "start_time_unix_nano": Field("start_time_unix_nano", V_INT),
        "time_unix_nano": Field("time_unix_nano", V_INT),
        "flags": Field("flags", V_INT),
        "value_double": Field("as_double", V_DOUBLE, special=NUMBER),
        "value_int": Field("as_int", V_INT, special=NUMBER),
        "count": Field("count", V_INT),
        "sum": Field("sum", V_DOUBLE),
        "min": Field("min", V_DOUBLE),
        "max": Field("max", V_DOUBLE),
        "scale": Field("scale", V_INT),
        "zero_count": Field("zero_count", V_INT),
    },
}

_SEVERITIES = ["UNSPECIFIED"] + [
    f"{level}{suffix}"
    for level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    for suffix in ("", "2", "3", "4")
]
_SPAN_ENUMS = {
    **{
        f"SPAN_KIND_{name}": i
        for i, name in enumerate(
            ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
        )
    },
    "STATUS_CODE_UNSET": 0,
    "STATUS_CODE_OK": 1,
    "STATUS_CODE_ERROR": 2,
}
_METRIC_ENUMS = {
    **{
        f"METRIC_DATA_TYPE_{name}": i
        for i, name in enumerate(
            ["NONE", "GAUGE", "SUM", "HISTOGRAM", "EXPONENTIAL_HISTOGRAM", "SUMMARY"]
        )
    },
    "AGGREGATION_TEMPORALITY_UNSPECIFIED": 0,
    "AGGREGATION_TEMPORALITY_DELTA": 1,
    "AGGREGATION_TEMPORALITY_CUMULATIVE": 2,
    "FLAG_NONE": 0,
    "FLAG_NO_RECORDED_VALUE": 1,
}
ENUMS: Final[dict[str, dict[str, int]]] = {
    "resource": {},
    "scope": {},
    "span": _SPAN_ENUMS,
    "spanevent": _SPAN_ENUMS,
    "log": {f"SEVERITY_NUMBER_{name}": i for i, name in enumerate(_SEVERITIES)},
    "metric": _METRIC_ENUMS,
    "datapoint": _METRIC_ENUMS,
}


class PathError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PathRef:
    """A resolved path: ``level`` is the context level the value lives at ("self" when it is
    the statement's own context)."""

    level: str
    own: bool
    attribute: bool  # an attributes map (``key`` None) or one of its entries
    key: str | None
    field: Field | None
    text: str

    @property
    def is_map(self) -> bool:
        return self.attribute and self.key is None

    @property
    def settable(self) -> bool:
        if not self.own:
            return False
        return self.attribute or (self.field is not None and self.field.settable)


def resolve(context: str, path: Path) -> PathRef:
    parts = list(path.parts)
    level = context
    first = parts[0]
    if first in PREFIXES and len(parts) > 1:
        named = PREFIXES[first]
        if named == context or named in PARENTS[context]:
            level = named
            parts = parts[1:]
        elif first not in FIELDS[context] and ".".join(parts) not in FIELDS[context]:
            raise PathError(f'path "{path.dotted()}" is not available in the {context} context')
    rest = ".".join(parts)
    own = level == context
    if len(path.keys) > 1:
        raise PathError(f'path "{path.text()}": indexing into nested values is not supported')
    if rest == "attributes" or (level == "metric" and rest == "metadata"):
        key = None
        if path.keys:
            raw = path.keys[0].value
            if not isinstance(raw, str):
                raise PathError(f'path "{path.text()}": attribute keys must be strings')
            key = raw
        if level == "metric":
            raise PathError(f'path "{path.text()}": metric metadata is not supported')
        return PathRef(level, own, True, key, None, path.text())
    field = FIELDS[level].get(rest)
    if field is None:
        raise PathError(f'unknown path "{path.dotted()}" in the {context} context')
    if path.keys:
        raise PathError(f'path "{path.text()}" cannot be indexed')
    return PathRef(level, own, False, None, field, path.text())


# ---------------------------------------------------------------------------------------------
# runtime rows


def _index(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy().astype(np.int64, copy=False)


class Rows:
    """The rows one context iterates, and the current state of their table."""

    def __init__(self, batch: Batch, context: str, point_table: str = "") -> None:
        self.batch = batch
        self.context = context
        self.point_table = point_table
        self.index: dict[str, np.ndarray] = {}
        self.tables: dict[str, pa.Table] = {
            "resource": batch.resources,
            "scope": batch.scopes,
        }
        self.event_offsets: pa.Array | None = None
        # higher levels (resource, scope) written from this context
        self.dirty: set[str] = set()
        if context == "resource":
            self.table = batch.resources
        elif context == "scope":
            self.table = batch.scopes
            self.index["resource"] = _index(batch.scopes, "resource_index")
        elif context in ("span", "log", "metric"):
            name = {"span": "spans", "log": "logs", "metric": "metrics"}[context]
            self.table = batch.tables[name]
            self._scope_chain(_index(self.table, "scope_index"))
        elif context == "spanevent":
            spans = batch.tables["spans"]
            events = as_array(spans.column("events"))
            offsets = list_offsets(events)
            flat = pc.list_flatten(events) if len(events) else pa.array([], EVENT)
            self.table = (
                pa.Table.from_struct_array(flat) if len(flat) else EVENT_TABLE.empty_table()
            )
            self.event_offsets = offsets
            parents = np.repeat(np.arange(len(events), dtype=np.int64), np.diff(offsets))
            self.index["span"] = parents
            self.tables["span"] = spans
            self._scope_chain(_index(spans, "scope_index")[parents])
        elif context == "datapoint":
            if batch.signal != METRICS_SIGNAL:
                raise ValueError("datapoint context needs a metrics batch")
            self.table = batch.tables[point_table]
            metrics = batch.tables["metrics"]
            metric_rows = _index(self.table, "metric_index")
            self.index["metric"] = metric_rows
            self.tables["metric"] = metrics
            self._scope_chain(_index(metrics, "scope_index")[metric_rows])
        else:
            raise ValueError(f"unknown context {context!r}")
        self.n = self.table.num_rows

    def _scope_chain(self, scope_rows: np.ndarray) -> None:
        self.index["scope"] = scope_rows
        self.index["resource"] = _index(self.batch.scopes, "resource_index")[scope_rows]

    # --- reading

    def owner_table(self, ref: PathRef) -> pa.Table:
        return self.table if ref.own else self.tables[ref.level]

    def has(self, ref: PathRef) -> bool:
        table = self.owner_table(ref)
        column = "attributes" if ref.attribute else ref.field.column  # type: ignore[union-attr]
        return column in table.column_names

    def get(self, ref: PathRef) -> Vals:
        from otlp.ottl.attrs import lookup

        if not self.has(ref):
            return Vals.nil(self.n)
        if ref.attribute:
            if ref.key is None:
                raise TypeError("a whole attributes map is not a value")
            table = self.owner_table(ref)
            if ref.own:
                return lookup(table.column("attributes"), ref.key)
            # look up once per owner row, then spread to this context's rows
            return lookup(table.column("attributes"), ref.key).take(self.index[ref.level])
        field = ref.field
        assert field is not None
        table = self.owner_table(ref)
        column = as_array(table.column(field.column))
        vals = _field_vals(field, column, table)
        return vals if ref.own else vals.take(self.index[ref.level])

    # --- writing

    def set_column(self, name: str, column: pa.Array) -> None:
        position = self.table.schema.get_field_index(name)
        field = self.table.schema.field(position)
        if column.type != field.type:
            column = column.cast(field.type)
        self.table = self.table.set_column(position, field, column)

    def set_attributes(self, lists: pa.Array) -> None:
        self.set_column("attributes", lists)

    def _set_owner_attributes(self, level: str, lists: pa.Array) -> None:
        table = self.tables[level]
        position = table.schema.get_field_index("attributes")
        self.tables[level] = table.set_column(position, table.schema.field(position), lists)
        self.dirty.add(level)

    def owner_rows(self, level: str, mask: np.ndarray) -> np.ndarray:
        """The rows of a higher level that at least one selected row belongs to."""
        owners = np.zeros(self.tables[level].num_rows, np.bool_)
        owners[self.index[level][mask]] = True
        return owners

    def edit_map(
        self, ref: PathRef, mask: np.ndarray, edit: Callable[[pa.Array, np.ndarray], pa.Array]
    ) -> None:
        """Apply a map editor to the attributes ``ref`` names, on the selected rows (or on
        the resources/scopes the selected rows belong to)."""
        if ref.own:
            self.set_attributes(edit(self.table.column("attributes"), mask))
            return
        table = self.tables[ref.level]
        lists = edit(as_array(table.column("attributes")), self.owner_rows(ref.level, mask))
        self._set_owner_attributes(ref.level, lists)

    def set_field(self, ref: PathRef, values: Vals, rows: np.ndarray) -> None:
        """``set(path, value)`` where ``rows``; values of the wrong type leave the field as is
        (the Collector's setters ignore them)."""
        from otlp.ottl.attrs import upsert

        if not self.has(ref):
            return
        if ref.attribute:
            assert ref.key is not None
            if ref.own:
                self.set_attributes(upsert(self.table.column("attributes"), ref.key, values, rows))
                return
            # per resource/scope, the value of its last selected row that has one
            chosen = np.flatnonzero(rows & (values.types != 0))
            owners = self.index[ref.level][chosen]
            count = self.tables[ref.level].num_rows
            last = np.full(count, -1, np.int64)
            if len(chosen):
                unique, first_from_end = np.unique(owners[::-1], return_index=True)
                last[unique] = chosen[::-1][first_from_end]
            picked = values.take(pa.array(np.maximum(last, 0), mask=last < 0))
            table = self.tables[ref.level]
            lists = upsert(table.column("attributes"), ref.key, picked, last >= 0)
            self._set_owner_attributes(ref.level, lists)
            return
        field = ref.field
        assert field is not None
        old = as_array(self.table.column(field.column))
        if field.special == VALUE:
            apply = rows & (values.types != 0)
            if apply.any():
                new = pc.if_else(
                    pa.array(apply), values.to_struct(), old.cast(values.to_struct().type)
                )
                self.set_column(field.column, new)
            return
        apply = rows & (values.types == field.kind)
        if not apply.any():
            return
        source = values.column(
            {V_STRING: "str", V_INT: "int", V_DOUBLE: "double", V_BOOL: "bool"}[field.kind]
        )
        source = pc.cast(source, old.type, safe=False)
        self.set_column(field.column, pc.if_else(pa.array(apply), source, old))
        if field.special == NUMBER:
            value_type = as_array(self.table.column("value_type"))
            kind = N_DOUBLE if field.kind == V_DOUBLE else N_INT
            self.set_column(
                "value_type", pc.if_else(pa.array(apply), pa.scalar(kind, pa.int8()), value_type)
            )
            other = "as_int" if field.kind == V_DOUBLE else "as_double"
            other_col = as_array(self.table.column(other))
            self.set_column(
                other, pc.if_else(pa.array(apply), pa.scalar(None, other_col.type), other_col)
            )

    # --- results

    def result(self) -> Batch:
        """The batch with this context's table written back."""
        batch = self.batch
        tables = dict(batch.tables)
        resources, scopes = batch.resources, batch.scopes
        if "resource" in self.dirty:
            resources = refresh_service_name(self.tables["resource"])
        if "scope" in self.dirty:
            scopes = self.tables["scope"]
        if self.context == "resource":
            resources = refresh_service_name(self.table)
        elif self.context == "scope":
            scopes = self.table
        elif self.context == "spanevent":
            spans = tables["spans"]
            events = pa.ListArray.from_arrays(
                self.event_offsets,
                self.table.to_struct_array().combine_chunks()
                if self.table.num_rows
                else pa.array([], EVENT),
                type=spans.schema.field("events").type,
            )
            position = spans.schema.get_field_index("events")
            tables["spans"] = spans.set_column(position, spans.schema.field("events"), events)
        else:
            name = {"span": "spans", "log": "logs", "metric": "metrics"}.get(
                self.context, self.point_table
            )
            tables[name] = self.table
        return Batch(batch.signal, resources, scopes, tables, dict(batch.context))


EVENT_TABLE: Final = pa.schema(list(EVENT))


def refresh_service_name(resources: pa.Table) -> pa.Table:
    """Recompute the derived ``service_name`` column (resource.attributes["service.name"]
    when it is a string, else "") after the attributes changed."""
    from otlp.ottl.attrs import lookup

    if "service_name" not in resources.column_names:
        return resources
    vals = lookup(resources.column("attributes"), "service.name")
    names = pc.if_else(pa.array(vals.types == V_STRING), vals.column("str"), "")
    position = resources.schema.get_field_index("service_name")
    return resources.set_column(position, resources.schema.field(position), names)


def _field_vals(field: Field, column: pa.Array, table: pa.Table) -> Vals:
    if field.special == VALUE:
        return Vals.from_value(column)
    if field.special == HEX:
        return Vals.typed(V_STRING, hex_ids(column, empty_as_zeros=True))
    if field.special == BODY_STRING:
        return Vals.typed(V_STRING, value_to_string(column))
    if field.special == DURATION:
        start = pc.cast(
            pc.fill_null(as_array(table.column("start_time_unix_nano")), 0), pa.int64(), safe=False
        )
        end = pc.cast(pc.fill_null(column, 0), pa.int64(), safe=False)
        return Vals.typed(V_INT, pc.subtract(end, start))
    if field.special == NUMBER:
        # NumberDataPoint.DoubleValue()/IntValue(): the zero value when the other kind is set
        return Vals.typed(field.kind, pc.fill_null(column, 0 if field.kind == V_INT else 0.0))
    if field.kind == V_BYTES:
        width = column.type.byte_width
        return Vals.typed(V_BYTES, pc.fill_null(column.cast(pa.binary()), b"\x00" * width))
    if field.kind == V_STRING:
        return Vals.typed(V_STRING, pc.fill_null(column, ""))
    if field.kind == V_BOOL:
        return Vals.typed(V_BOOL, pc.fill_null(column, False))
    if field.kind == V_INT:
        ints = pc.cast(column, pa.int64(), safe=False) if column.type != pa.int64() else column
        return Vals.typed(V_INT, pc.fill_null(ints, 0))
    if field.kind == V_DOUBLE:
        # optional doubles (histogram sum/min/max) stay nil when unset
        return Vals.typed(V_DOUBLE, column)
    raise TypeError(field)
