"""OTLP requests (protobuf or JSON) -> columnar ``Batch``.

Protobuf requests are decoded by the compiled wire decoder ``otlp._wire`` (built by the
package's install from ``otlp/_wire.c``): it reads the request bytes once and writes the Arrow
buffers of every column directly, so no attribute is touched from Python. It returns None for
anything it does not take on (every malformed request, and rare valid encodings whose meaning is
upb's: a oneof set twice, groups, deep or non-canonical nested values, ...); those requests take
the Python decoder below, which is the reference both are tested against and the one that words
the errors.

The Python decoder makes one pass over the request, column by column: each column is a list
comprehension over the flat list of records, turned into an Arrow array; resources and scopes
become their own rows, referenced by index. Attribute lists are not read through upb objects:
the request is parsed with the shadow messages of ``otlp.shadow`` (attributes as raw bytes) and
every KeyValue of the request is parsed in one vectorised pass by ``otlp.anyvalue`` (see there
for why).

Receivers should call ``decode_protobuf`` on the raw request body; ``decode_traces`` & co.
take an already parsed message and re-serialize it first (the price of working on bytes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from otlp import shadow
from otlp.anyvalue import anyvalues_to_arrow, keyvalues_to_arrow
from otlp.batch import (
    ATTRIBUTES,
    ENTITY_REF,
    EVENT,
    EXEMPLAR,
    EXEMPLARS,
    EXPONENTIAL_HISTOGRAM_POINTS,
    HISTOGRAM_POINTS,
    LINK,
    LOGS,
    LOGS_SIGNAL,
    METRIC_TYPE_TABLE,
    METRICS,
    METRICS_SIGNAL,
    N_DOUBLE,
    N_INT,
    N_NONE,
    NUMBER_POINTS,
    RECORD_TABLES,
    RESOURCES,
    SCOPES,
    SPANS,
    SUMMARY_POINTS,
    TRACES,
    Batch,
)
from otlp.errors import InvalidRequestError
from otlp.jsonpb import parse_request

try:
    from otlp import _wire
except ImportError as exc:  # a source tree never built with `pip install -e .`
    _wire = None
    logging.getLogger("airis.decode").warning(
        "otlp._wire is not built (%s): OTLP requests decode with the Python decoder, ~10x slower",
        exc,
    )

_TRACE_ID_BYTES: Final = 16
_SPAN_ID_BYTES: Final = 8

# Whether decode_protobuf tries the compiled decoder first (set False to measure or debug the
# Python decoder alone).
COMPILED: bool = _wire is not None

_WIRE: Final[dict[str, Callable[[bytes], tuple[Any, ...] | None]]] = (
    {
        TRACES: _wire.decode_traces,
        LOGS_SIGNAL: _wire.decode_logs,
        METRICS_SIGNAL: _wire.decode_metrics,
    }
    if _wire is not None
    else {}
)


# what the compiled decoder measured in the last request it took (see wire_sizes)
_last_sizes: tuple[int, int, int, int] | None = None


def decode_protobuf(signal: str, body: bytes) -> Batch:
    """Decode an Export{Trace,Metrics,Logs}ServiceRequest from its protobuf bytes."""
    global _last_sizes
    if signal not in shadow.REQUEST:
        raise ValueError(f"unknown signal {signal!r}")
    _last_sizes = None
    if COMPILED:
        arrays = _WIRE[signal](body)
        if arrays is not None:
            batch = _from_wire(signal, arrays)
            _last_sizes = _wire.last_sizes()  # type: ignore[union-attr]
            return batch
    return decode_protobuf_python(signal, body)


def wire_sizes() -> tuple[int, int, int, int] | None:
    """For the request just decoded (call it right after, with no await between): the most
    attributes in one list, the longest key, the longest value and the longest array/kvlist
    encoding, in bytes, as the compiled decoder saw them; None when it did not take the
    request. Saves the receiver's limits a scan of every attribute column."""
    return _last_sizes


def decode_protobuf_python(signal: str, body: bytes) -> Batch:
    """The Python decoder: the reference for the compiled one, and its fallback."""
    cls = shadow.REQUEST[signal]
    try:
        message = cls.FromString(body)
    except DecodeError as exc:
        raise InvalidRequestError(f"cannot decode OTLP {signal} protobuf request: {exc}") from exc
    try:
        return _DECODERS[signal](message)
    except (pa.ArrowInvalid, OverflowError) as exc:
        # Arrow rejects values outside the batch's column types (e.g. an enum beyond int8)
        raise InvalidRequestError(f"invalid OTLP {signal} request: {exc}") from exc


def decode_json(signal: str, body: bytes) -> Batch:
    """Decode an OTLP/JSON request (hex ids, integer or named enums, unknown fields ignored)."""
    return decode_protobuf(signal, parse_request(signal, body).SerializeToString())


def decode_traces(req: Message) -> Batch:
    return decode_protobuf(TRACES, req.SerializeToString())


def decode_metrics(req: Message) -> Batch:
    return decode_protobuf(METRICS_SIGNAL, req.SerializeToString())


def decode_logs(req: Message) -> Batch:
    return decode_protobuf(LOGS_SIGNAL, req.SerializeToString())


def _from_wire(signal: str, arrays: tuple[Any, ...]) -> Batch:
    """The compiled decoder's tables (Arrow C data interface structs in capsules) -> Batch.

    ``_import_from_c`` takes the schema as an object, so no schema is exported and re-parsed per
    request; the arrays' layout follows these schemas (checked by tests/test_wire_decoder.py).
    Tables without rows come as None and are shared empty tables (Arrow data is immutable).
    """
    address = _wire.address  # type: ignore[union-attr]
    tables = [
        empty
        if array is None
        else pa.Table.from_batches([pa.RecordBatch._import_from_c(address(array), schema)], schema)
        for (schema, empty), array in zip(_WIRE_TABLES[signal], arrays, strict=True)
    ]
    return Batch(
        signal, tables[0], tables[1], dict(zip(RECORD_TABLES[signal], tables[2:], strict=True))
    )


# per signal, the schema and an empty table of each table _wire returns, in its order
_WIRE_TABLES: Final = {
    signal: [(schema, schema.empty_table()) for schema in [RESOURCES, SCOPES, *tables.values()]]
    for signal, tables in RECORD_TABLES.items()
}


# ---------------------------------------------------------------------------------------------
# helpers


def _flatten(lists: list[list[Any]]) -> list[Any]:
    return list(chain.from_iterable(lists))


def _lengths(lists: list[list[Any]]) -> list[int]:
    return list(map(len, lists))


def _sparse(containers: list[Any]) -> tuple[list[int], list[Any]]:
    """Counts and flat items of mostly-empty repeated fields (events, links, exemplars):
    only non-empty containers are copied out."""
    counts = _lengths(containers)
    if not any(counts):
        return counts, []
    return counts, _flatten([c[:] for c in containers if c])


def _offsets(counts: Sequence[int]) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, np.int32)
    if any(counts):
        np.cumsum(np.fromiter(counts, np.int32, len(counts)), out=offsets[1:])
    return pa.array(offsets)


def _ints(values: Sequence[int], dtype: type[np.generic], type_: pa.DataType) -> pa.Array:
    """Non-null integers -> Arrow, through numpy (about twice as fast as pa.array on a list).
    Out-of-range values raise OverflowError, which decode_protobuf reports as a bad request."""
    array = np.fromiter(values, dtype, len(values))
    return pa.Array.from_buffers(type_, len(array), [None, pa.py_buffer(array)])


def _parent_index(counts: Sequence[int]) -> pa.Array:
    return pa.array(np.repeat(np.arange(len(counts), dtype=np.int32), counts))


def _list(counts: Sequence[int], values: pa.Array, type_: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(_offsets(counts), values, type=type_)


def _columns(getter: attrgetter[Any], items: list[Any], width: int) -> list[tuple[Any, ...]]:
    """Read several fields of every item at once: one C-level getattr sweep, then transpose."""
    if not items:
        return [()] * width
    return list(zip(*map(getter, items), strict=True))


def _ids(values: Sequence[bytes], width: int, what: str) -> pa.Array:
    """Trace/span ids as fixed-size binary; empty ids are null, other sizes are rejected."""
    sizes = set(map(len, values))
    bad = sizes - {0, width}
    if bad:
        raise InvalidRequestError(
            f"{what} must be {width} bytes (or empty), got one of {min(bad)} bytes"
        )
    type_ = pa.binary(width)
    if 0 not in sizes:
        return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(b"".join(values))])
    zero = bytes(width)
    valid = np.fromiter(map(bool, values), np.bool_, len(values))
    data = b"".join([value or zero for value in values])
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(type_, len(values), [bitmap, pa.py_buffer(data)])


def _optional(items: list[Any], name: str) -> list[Any]:
    return [getattr(item, name) if item.HasField(name) else None for item in items]


class _Attributes:
    """Collects every attribute list of a request, then parses all their KeyValues at once."""

    def __init__(self) -> None:
        self._lists: list[list[bytes]] = []
        self._offsets: np.ndarray | None = None
        self._values: pa.StructArray | None = None

    def add(self, lists: list[list[bytes]]) -> tuple[int, int]:
        """Register attribute lists (each the KeyValue bytes of one owner, e.g. a span)."""
        start = len(self._lists)
        self._lists.extend(lists)
        return start, len(lists)

    def parse(self) -> None:
        # one C-level conversion yields both the per-owner and the per-KeyValue offsets
        nested = pa.array(self._lists, pa.list_(pa.binary()))
        self._lists = []
        self._offsets = np.frombuffer(nested.buffers()[1], np.int32, len(nested) + 1)
        self._values = keyvalues_to_arrow(nested.values)

    def column(self, ref: tuple[int, int]) -> pa.Array:
        assert self._offsets is not None and self._values is not None, "parse() first"
        start, count = ref
        offsets = self._offsets[start : start + count + 1]
        base = int(offsets[0])
        values = self._values.slice(base, int(offsets[-1]) - base)
        return pa.ListArray.from_arrays(pa.array(offsets - base), values, type=ATTRIBUTES)


class _Envelope:
    """Resources and scopes of a request, and the flat list of their records."""

    def __init__(
        self, attrs: _Attributes, resource_msgs: Any, scopes_field: str, records_field: str
    ) -> None:
        holders = resource_msgs[:]
        resources = [holder.resource for holder in holders]
        resource_kvs = [r.attributes[:] for r in resources]
        self.resource_attrs = attrs.add(resource_kvs)
        self.service_names = [_service_name(kvs) for kvs in resource_kvs]
        self.resource_dropped = [r.dropped_attributes_count for r in resources]
        self.entity_refs = [r.entity_refs[:] for r in resources]
        self.resource_schema = [holder.schema_url for holder in holders]

        scope_lists = [getattr(holder, scopes_field)[:] for holder in holders]
        self.scope_counts = _lengths(scope_lists)
        scope_holders = _flatten(scope_lists)
        scopes = [holder.scope for holder in scope_holders]
        self.scope_name = [s.name for s in scopes]
        self.scope_version = [s.version for s in scopes]
        self.scope_attrs = attrs.add([s.attributes[:] for s in scopes])
        self.scope_dropped = [s.dropped_attributes_count for s in scopes]
        self.scope_schema = [holder.schema_url for holder in scope_holders]

        record_lists = [getattr(holder, records_field)[:] for holder in scope_holders]
        self.record_counts = _lengths(record_lists)
        self.records: list[Any] = _flatten(record_lists)

    def resources(self, attrs: _Attributes) -> pa.Table:
        attributes = attrs.column(self.resource_attrs)
        return pa.Table.from_arrays(
            [
                attributes,
                _ints(self.resource_dropped, np.uint32, pa.uint32()),
                pa.array(self.resource_schema, pa.string()),
                pa.array(self.service_names, pa.string()),
                _entity_refs(self.entity_refs),
            ],
            schema=RESOURCES,
        )

    def scopes(self, attrs: _Attributes) -> pa.Table:
        return pa.Table.from_arrays(
            [
                _parent_index(self.scope_counts),
                pa.array(self.scope_name, pa.string()),
                pa.array(self.scope_version, pa.string()),
                attrs.column(self.scope_attrs),
                _ints(self.scope_dropped, np.uint32, pa.uint32()),
                pa.array(self.scope_schema, pa.string()),
            ],
            schema=SCOPES,
        )


_SERVICE_NAME: Final = b"\x0a\x0cservice.name"


def _service_name(kvs: list[bytes]) -> str:
    """resource.attributes["service.name"] if it is a string, else "" (first one wins, as with
    pcommon Map.Get). Looked up in the KeyValue bytes: cheaper than a pass over Arrow columns."""
    for kv in kvs:
        if _SERVICE_NAME in kv:  # canonical encodings start with it; others are parsed below
            try:
                parsed = KeyValue.FromString(kv)
            except DecodeError:
                continue  # the attribute parser reports it
            if parsed.key == "service.name":
                kind = parsed.value.WhichOneof("value")
                return parsed.value.string_value if kind == "string_value" else ""
    return ""


_EMPTY_VALUES: dict[pa.DataType, pa.Array] = {}


def _empty_lists(count: int, type_: pa.ListType) -> pa.Array:
    # Arrow arrays are immutable, so all-empty list columns (events, links, exemplars on most
    # records) are built once per length and shared
    key = (type_, count)
    cached = _EMPTY_LISTS.get(key)
    if cached is not None:
        return cached
    values = _EMPTY_VALUES.get(type_.value_type)
    if values is None:
        values = _EMPTY_VALUES[type_.value_type] = pa.array([], type_.value_type)
    offsets = np.zeros(count + 1, np.int32)
    array = pa.ListArray.from_arrays(pa.array(offsets), values, type=type_)
    if len(_EMPTY_LISTS) < 4096:
        _EMPTY_LISTS[key] = array
    return array


_EMPTY_LISTS: dict[tuple[pa.DataType, int], pa.Array] = {}


_ENTITY_REFS: Final = RESOURCES.field("entity_refs").type


def _entity_refs(per_resource: list[list[Any]]) -> pa.Array:
    counts = _lengths(per_resource)
    if not any(counts):
        return _empty_lists(len(counts), _ENTITY_REFS)
    refs = _flatten(per_resource)
    id_keys = [ref.id_keys[:] for ref in refs]
    description_keys = [ref.description_keys[:] for ref in refs]
    values = pa.StructArray.from_arrays(
        [
            pa.array([ref.schema_url for ref in refs], pa.string()),
            pa.array([ref.type for ref in refs], pa.string()),
            _list(
                _lengths(id_keys), pa.array(_flatten(id_keys), pa.string()), pa.list_(pa.string())
            ),
            _list(
                _lengths(description_keys),
                pa.array(_flatten(description_keys), pa.string()),
                pa.list_(pa.string()),
            ),
        ],
        fields=list(ENTITY_REF),
    )
    return _list(counts, values, _ENTITY_REFS)


# ---------------------------------------------------------------------------------------------
# traces

_SPAN_FIELDS: Final = attrgetter(
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
    "status",
)
_EVENT_FIELDS: Final = attrgetter("time_unix_nano", "name", "dropped_attributes_count")
_LINK_FIELDS: Final = attrgetter(
    "trace_id", "span_id", "trace_state", "dropped_attributes_count", "flags"
)


def _statuses(raw: Sequence[bytes]) -> tuple[list[str], list[int]]:
    # Span.status arrives as bytes (shadow); requests repeat a handful of distinct statuses
    parsed: dict[bytes, tuple[str, int]] = {}
    for value in set(raw):
        try:
            status = Status.FromString(value)
        except DecodeError as exc:
            raise InvalidRequestError(f"invalid span status: {exc}") from exc
        parsed[value] = (status.message, status.code)
    pairs = [parsed[value] for value in raw]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _decode_traces(message: Any) -> Batch:
    attrs = _Attributes()
    env = _Envelope(attrs, message.resource_spans, "scope_spans", "spans")
    spans = env.records
    (
        trace_id,
        span_id,
        trace_state,
        parent_span_id,
        flags,
        name,
        kind,
        start,
        end,
        dropped_attrs,
        dropped_events,
        dropped_links,
        status,
    ) = _columns(_SPAN_FIELDS, spans, 13)
    span_attrs = attrs.add([s.attributes[:] for s in spans])

    event_counts, events = _sparse([s.events for s in spans])
    ev_time, ev_name, ev_dropped = _columns(_EVENT_FIELDS, events, 3)
    ev_attrs = attrs.add([e.attributes[:] for e in events])

    link_counts, links = _sparse([s.links for s in spans])
    ln_trace, ln_span, ln_state, ln_dropped, ln_flags = _columns(_LINK_FIELDS, links, 5)
    ln_attrs = attrs.add([link.attributes[:] for link in links])

    attrs.parse()
    status_message, status_code = _statuses(status)
    return Batch(
        TRACES,
        env.resources(attrs),
        env.scopes(attrs),
        {
            "spans": _spans_table(
                env,
                attrs,
                (trace_id, span_id, trace_state, parent_span_id, flags, name, kind, start, end),
                (span_attrs, dropped_attrs, dropped_events, dropped_links),
                (status_message, status_code),
                _events_column(attrs, event_counts, (ev_time, ev_name, ev_dropped), ev_attrs),
                _links_column(
                    attrs,
                    link_counts,
                    (ln_trace, ln_span, ln_state, ln_dropped, ln_flags),
                    ln_attrs,
                ),
            )
        },
    )


_EVENTS: Final = SPANS.field("events").type
_LINKS: Final = SPANS.field("links").type


def _events_column(
    attrs: _Attributes, counts: list[int], cols: Sequence[Sequence[Any]], ref: tuple[int, int]
) -> pa.Array:
    if not any(counts):
        return _empty_lists(len(counts), _EVENTS)
    time, name, dropped = cols
    values = pa.StructArray.from_arrays(
        [
            _ints(time, np.uint64, pa.uint64()),
            pa.array(name, pa.string()),
            attrs.column(ref),
            _ints(dropped, np.uint32, pa.uint32()),
        ],
        fields=list(EVENT),
    )
    return _list(counts, values, _EVENTS)


def _links_column(
    attrs: _Attributes, counts: list[int], cols: Sequence[Sequence[Any]], ref: tuple[int, int]
) -> pa.Array:
    if not any(counts):
        return _empty_lists(len(counts), _LINKS)
    trace_id, span_id, state, dropped, flags = cols
    values = pa.StructArray.from_arrays(
        [
            _ids(trace_id, _TRACE_ID_BYTES, "link trace_id"),
            _ids(span_id, _SPAN_ID_BYTES, "link span_id"),
            pa.array(state, pa.string()),
            attrs.column(ref),
            _ints(dropped, np.uint32, pa.uint32()),
            _ints(flags, np.uint32, pa.uint32()),
        ],
        fields=list(LINK),
    )
    return _list(counts, values, _LINKS)


def _spans_table(
    env: _Envelope,
    attrs: _Attributes,
    ident: Sequence[Sequence[Any]],
    counted: tuple[tuple[int, int], Sequence[int], Sequence[int], Sequence[int]],
    status: tuple[list[str], list[int]],
    events: pa.Array,
    links: pa.Array,
) -> pa.Table:
    trace_id, span_id, trace_state, parent_span_id, flags, name, kind, start, end = ident
    span_attrs, dropped_attrs, dropped_events, dropped_links = counted
    status_message, status_code = status
    return pa.Table.from_arrays(
        [
            _parent_index(env.record_counts),
            _ids(trace_id, _TRACE_ID_BYTES, "trace_id"),
            _ids(span_id, _SPAN_ID_BYTES, "span_id"),
            pa.array(trace_state, pa.string()),
            _ids(parent_span_id, _SPAN_ID_BYTES, "parent_span_id"),
            _ints(flags, np.uint32, pa.uint32()),
            pa.array(name, pa.string()),
            _ints(kind, np.int8, pa.int8()),
            _ints(start, np.uint64, pa.uint64()),
            _ints(end, np.uint64, pa.uint64()),
            attrs.column(span_attrs),
            _ints(dropped_attrs, np.uint32, pa.uint32()),
            events,
            _ints(dropped_events, np.uint32, pa.uint32()),
            links,
            _ints(dropped_links, np.uint32, pa.uint32()),
            pa.array(status_message, pa.string()),
            _ints(status_code, np.int8, pa.int8()),
        ],
        schema=SPANS,
    )


# ---------------------------------------------------------------------------------------------
# logs

_LOG_FIELDS: Final = attrgetter(
    "time_unix_nano",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "body",
    "dropped_attributes_count",
    "flags",
    "trace_id",
    "span_id",
    "event_name",
)


def _decode_logs(message: Any) -> Batch:
    attrs = _Attributes()
    env = _Envelope(attrs, message.resource_logs, "scope_logs", "log_records")
    logs = env.records
    (
        time,
        observed,
        severity,
        severity_text,
        body,
        dropped,
        flags,
        trace_id,
        span_id,
        event_name,
    ) = _columns(_LOG_FIELDS, logs, 10)
    has_body = np.fromiter((log.HasField("body") for log in logs), np.bool_, len(logs))
    log_attrs = attrs.add([log.attributes[:] for log in logs])
    attrs.parse()
    table = pa.Table.from_arrays(
        [
            _parent_index(env.record_counts),
            _ints(time, np.uint64, pa.uint64()),
            _ints(observed, np.uint64, pa.uint64()),
            _ints(severity, np.int8, pa.int8()),
            pa.array(severity_text, pa.string()),
            anyvalues_to_arrow(list(body), has_body),
            attrs.column(log_attrs),
            _ints(dropped, np.uint32, pa.uint32()),
            _ints(flags, np.uint32, pa.uint32()),
            _ids(trace_id, _TRACE_ID_BYTES, "log trace_id"),
            _ids(span_id, _SPAN_ID_BYTES, "log span_id"),
            pa.array(event_name, pa.string()),
        ],
        schema=LOGS,
    )
    return Batch(LOGS_SIGNAL, env.resources(attrs), env.scopes(attrs), {"logs": table})


# ---------------------------------------------------------------------------------------------
# metrics

_METRIC_CODE: Final = {name: code for code, name in METRIC_TYPE_TABLE.items()}
_TEMPORAL: Final = {"sum", "histogram", "exponential_histogram"}
_POINT_FIELDS: Final = attrgetter("start_time_unix_nano", "time_unix_nano", "flags")
_EXEMPLAR_FIELDS: Final = attrgetter("time_unix_nano", "span_id", "trace_id")
_NUMBER_KIND: Final = {"as_double": N_DOUBLE, "as_int": N_INT, None: N_NONE}


def _number_values(items: list[Any]) -> tuple[list[int], list[float | None], list[int | None]]:
    kinds = [item.WhichOneof("value") for item in items]
    doubles = [i.as_double if k == "as_double" else None for i, k in zip(items, kinds, strict=True)]
    ints = [i.as_int if k == "as_int" else None for i, k in zip(items, kinds, strict=True)]
    return [_NUMBER_KIND[k] for k in kinds], doubles, ints


class _Points:
    """The data points of one point table, with the columns every point type shares."""

    def __init__(
        self, attrs: _Attributes, metric_index: list[int], datas: list[Any], exemplars: bool
    ) -> None:
        lists = [data.data_points[:] for data in datas]
        counts = _lengths(lists)
        self.metric_index = np.repeat(np.asarray(metric_index, np.int32), counts)
        self.points: list[Any] = _flatten(lists)
        self.attrs = attrs.add([p.attributes[:] for p in self.points])
        self.start, self.time, self.flags = _columns(_POINT_FIELDS, self.points, 3)
        # SummaryDataPoint has no exemplars; its column stays empty
        if exemplars:
            self.exemplar_counts, self.exemplars = _sparse([p.exemplars for p in self.points])
        else:
            self.exemplar_counts, self.exemplars = [0] * len(self.points), []
        self.ex_attrs = attrs.add([e.filtered_attributes[:] for e in self.exemplars])

    def common(self, attrs: _Attributes) -> list[pa.Array]:
        return [
            pa.Array.from_buffers(
                pa.int32(), len(self.metric_index), [None, pa.py_buffer(self.metric_index)]
            ),
            attrs.column(self.attrs),
            _ints(self.start, np.uint64, pa.uint64()),
            _ints(self.time, np.uint64, pa.uint64()),
            _ints(self.flags, np.uint32, pa.uint32()),
            self._exemplars(attrs),
        ]

    def _exemplars(self, attrs: _Attributes) -> pa.Array:
        if not self.exemplars:
            return _empty_lists(len(self.points), EXEMPLARS)
        ex_time, ex_span, ex_trace = _columns(_EXEMPLAR_FIELDS, self.exemplars, 3)
        ex_kind, ex_double, ex_int = _number_values(self.exemplars)
        exemplars = pa.StructArray.from_arrays(
            [
                attrs.column(self.ex_attrs),
                _ints(ex_time, np.uint64, pa.uint64()),
                _ints(ex_kind, np.int8, pa.int8()),
                pa.array(ex_double, pa.float64()),
                pa.array(ex_int, pa.int64()),
                _ids(ex_span, _SPAN_ID_BYTES, "exemplar span_id"),
                _ids(ex_trace, _TRACE_ID_BYTES, "exemplar trace_id"),
            ],
            fields=list(EXEMPLAR),
        )
        return _list(self.exemplar_counts, exemplars, EXEMPLARS)


def _repeated(lists: list[list[Any]], value_type: pa.DataType) -> pa.Array:
    return _list(_lengths(lists), pa.array(_flatten(lists), value_type), pa.list_(value_type))


def _number_table(points: _Points, attrs: _Attributes) -> pa.Table:
    kind, doubles, ints = _number_values(points.points)
    return pa.Table.from_arrays(
        [
            *points.common(attrs),
            _ints(kind, np.int8, pa.int8()),
            pa.array(doubles, pa.float64()),
            pa.array(ints, pa.int64()),
        ],
        schema=NUMBER_POINTS,
    )


def _histogram_table(points: _Points, attrs: _Attributes) -> pa.Table:
    items = points.points
    return pa.Table.from_arrays(
        [
            *points.common(attrs),
            _ints([p.count for p in items], np.uint64, pa.uint64()),
            pa.array(_optional(items, "sum"), pa.float64()),
            _repeated([p.bucket_counts[:] for p in items], pa.uint64()),
            _repeated([p.explicit_bounds[:] for p in items], pa.float64()),
            pa.array(_optional(items, "min"), pa.float64()),
            pa.array(_optional(items, "max"), pa.float64()),
        ],
        schema=HISTOGRAM_POINTS,
    )


def _exponential_table(points: _Points, attrs: _Attributes) -> pa.Table:
    items = points.points
    positive = [p.positive for p in items]
    negative = [p.negative for p in items]
    return pa.Table.from_arrays(
        [
            *points.common(attrs),
            _ints([p.count for p in items], np.uint64, pa.uint64()),
            pa.array(_optional(items, "sum"), pa.float64()),
            _ints([p.scale for p in items], np.int32, pa.int32()),
            _ints([p.zero_count for p in items], np.uint64, pa.uint64()),
            _ints([b.offset for b in positive], np.int32, pa.int32()),
            _repeated([b.bucket_counts[:] for b in positive], pa.uint64()),
            _ints([b.offset for b in negative], np.int32, pa.int32()),
            _repeated([b.bucket_counts[:] for b in negative], pa.uint64()),
            pa.array(_optional(items, "min"), pa.float64()),
            pa.array(_optional(items, "max"), pa.float64()),
            pa.array([p.zero_threshold for p in items], pa.float64()),
        ],
        schema=EXPONENTIAL_HISTOGRAM_POINTS,
    )


_QUANTILE: Final = SUMMARY_POINTS.field("quantile_values").type


def _summary_table(points: _Points, attrs: _Attributes) -> pa.Table:
    items = points.points
    quantile_lists = [p.quantile_values[:] for p in items]
    quantiles = _flatten(quantile_lists)
    values = pa.StructArray.from_arrays(
        [
            pa.array([q.quantile for q in quantiles], pa.float64()),
            pa.array([q.value for q in quantiles], pa.float64()),
        ],
        fields=list(_QUANTILE.value_type),
    )
    return pa.Table.from_arrays(
        [
            *points.common(attrs),
            _ints([p.count for p in items], np.uint64, pa.uint64()),
            pa.array([p.sum for p in items], pa.float64()),
            _list(_lengths(quantile_lists), values, _QUANTILE),
        ],
        schema=SUMMARY_POINTS,
    )


_POINT_BUILDERS: Final[dict[str, Callable[[_Points, _Attributes], pa.Table]]] = {
    "gauge": _number_table,
    "sum": _number_table,
    "histogram": _histogram_table,
    "exponential_histogram": _exponential_table,
    "summary": _summary_table,
}


def _decode_metrics(message: Any) -> Batch:
    attrs = _Attributes()
    env = _Envelope(attrs, message.resource_metrics, "scope_metrics", "metrics")
    metrics = env.records
    kinds = [m.WhichOneof("data") for m in metrics]
    datas = [getattr(m, k) if k else None for m, k in zip(metrics, kinds, strict=True)]
    temporality = [
        d.aggregation_temporality if k in _TEMPORAL else None
        for d, k in zip(datas, kinds, strict=True)
    ]
    monotonic = [d.is_monotonic if k == "sum" else None for d, k in zip(datas, kinds, strict=True)]
    metadata = attrs.add([m.metadata[:] for m in metrics])
    points = {}
    for table in _POINT_BUILDERS:
        index = [i for i, k in enumerate(kinds) if k == table]
        points[table] = _Points(attrs, index, [datas[i] for i in index], table != "summary")
    attrs.parse()

    tables = {
        "metrics": pa.Table.from_arrays(
            [
                _parent_index(env.record_counts),
                pa.array([m.name for m in metrics], pa.string()),
                pa.array([m.description for m in metrics], pa.string()),
                pa.array([m.unit for m in metrics], pa.string()),
                _ints([_METRIC_CODE.get(k, 0) for k in kinds], np.int8, pa.int8()),
                pa.array(temporality, pa.int8()),
                pa.array(monotonic, pa.bool_()),
                attrs.column(metadata),
            ],
            schema=METRICS,
        )
    }
    for table, build in _POINT_BUILDERS.items():
        tables[table] = build(points[table], attrs)
    return Batch(METRICS_SIGNAL, env.resources(attrs), env.scopes(attrs), tables)


_DECODERS: Final[dict[str, Callable[[Any], Batch]]] = {
    TRACES: _decode_traces,
    LOGS_SIGNAL: _decode_logs,
    METRICS_SIGNAL: _decode_metrics,
}
