"""OTLP spans (the columnar batch) → Jaeger api_v2 `PostSpansRequest`s, one `Batch` per resource.

The mapping is the OpenTelemetry specification's (trace/sdk_exporters/jaeger.md and
common/mapping-to-non-otlp.md), as the Collector's translator (contrib
pkg/translator/jaeger, ProtoFromTraces) implements it:

* resource → `Process`: `service.name` is the service name (a resource without attributes
  gets "OTLPResourceNoServiceName"), the other attributes are process tags;
* span tags, in this order: `otel.scope.name`, `otel.scope.version`, the attributes,
  `span.kind` (unset kind: none), `otel.status_code` ("OK"/"ERROR"), `error=true` for
  ERROR, `otel.status_description`, `w3c.tracestate`, then the specification's
  `otel.dropped_attributes_count` / `otel.dropped_events_count` /
  `otel.dropped_links_count` (int64, only when non-zero);
* events → logs: the name in an `event` field (unless an attribute is called `event`), the
  attributes, `otel.dropped_attributes_count` when non-zero;
* parent → the first reference, CHILD_OF; links → FOLLOWS_FROM references (CHILD_OF when
  the link's `opentracing.ref_type` attribute says `child_of`; a link to the parent only
  changes the parent reference's type);
* attribute types: string, bool, int64, float64 and bytes (BINARY) keep their type; arrays
  and maps become their JSON text (a STRING tag);
* ids are big-endian bytes (16 and 8), start time a Timestamp, duration end minus start;
* the W3C sampled bit of the span's flags becomes Jaeger's sampled flag.

The protobuf is written straight from the columns, not through message objects: each field
of every span (tag, log, reference) is built for the whole batch at once with Arrow kernels
and numpy (exporters/jaeger/wire.py), and the per-span messages are row-wise concatenations
of those columns. Python loops only over resources and requests. The generated
`proto.jaeger.api_v2` modules parse the result in the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exporters.jaeger import wire
from exporters.jaeger.wire import concat
from otlp.anyvalue import delimited
from otlp.batch import (
    V_ARRAY,
    V_BOOL,
    V_BYTES,
    V_DOUBLE,
    V_EMPTY,
    V_INT,
    V_KVLIST,
    V_STRING,
    Batch,
)
from otlp.columns import as_array, list_offsets

# Jaeger's Flags: bit 0 is "sampled", like the W3C trace flags' bit 0 in OTLP span flags
SAMPLED_FLAG: Final = 1

NO_SERVICE_NAME: Final = "OTLPResourceNoServiceName"
SPAN_KINDS: Final = ("", "internal", "server", "client", "producer", "consumer")
SERVICE_NAME_KEY: Final = "service.name"
EVENT_KEY: Final = "event"
REF_TYPE_KEY: Final = "opentracing.ref_type"
REF_TYPE_CHILD_OF: Final = "child_of"

# Jaeger collectors take at most 4 MiB per message by default (grpc's default receive limit);
# a resource with more spans than fit is sent in several requests.
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024 - 64 * 1024

_NS: Final = 1_000_000_000

# field tags: field number << 3 | wire type (2: length-delimited, 0: varint)
SPAN_TAG: Final = b"\x42"  # Span.tags = 8
SPAN_LOG: Final = b"\x4a"  # Span.logs = 9
PROCESS_TAG: Final = b"\x12"  # Process.tags = 2
LOG_FIELD: Final = b"\x12"  # Log.fields = 2


def kv_string(key: str, value: str) -> bytes:
    """A STRING KeyValue message."""
    raw = value.encode()
    return delimited(b"\x0a", key.encode()) + (delimited(b"\x1a", raw) if raw else b"")


# --- tags ------------------------------------------------------------------------------------
# the bytes between a KeyValue's key and its payload, per value kind (see kv_fields)
_HEADS: Final = [
    b"",  # empty value (or empty string): a STRING tag without a value, as contrib writes it
    b"\x1a",  # v_str, then varint length
    b"\x10\x02\x28",  # INT64, v_int64 varint
    b"\x10\x02",  # INT64 zero
    b"\x10\x03\x31",  # FLOAT64, then 8 bytes
    b"\x10\x01\x20\x01",  # BOOL true
    b"\x10\x01",  # BOOL false
    b"\x10\x04\x3a",  # BINARY, v_binary varint length
    b"\x10\x04",  # BINARY empty
]


def kv_fields(items: pa.Array, tag: bytes) -> pa.BinaryArray:
    """Flattened ATTRIBUTE structs → one KeyValue each, as a `tag` field (span tags, process
    tags or log fields)."""
    n = len(items)
    if n == 0:
        return pa.array([], wire.BINARY)
    keys = wire.to_binary(pc.struct_field(items, "key"))
    key_size = wire.lengths(keys)
    types = pc.fill_null(pc.struct_field(items, "type"), V_EMPTY).to_numpy(zero_copy_only=False)
    head = np.zeros(n, dtype=np.int64)  # index into _HEADS
    number = np.zeros(n, dtype=np.uint64)  # the varint after the head, where there is one
    has_number = np.zeros(n, dtype=bool)
    payload_size = np.zeros(n, dtype=np.int64)
    conditions: list[pa.Array] = []
    payloads: list[pa.Array] = []

    # arrays and maps carry their JSON rendering in `str` (otlp.batch), the text pcommon's
    # AsString gives, and go as STRING tags (type 0: no v_type field)
    rows = (types == V_STRING) | (types == V_ARRAY) | (types == V_KVLIST)
    if rows.any():
        text = wire.to_binary(pc.struct_field(items, "str"))
        size = wire.lengths(text)
        filled = rows & (size > 0)
        head[filled], number[filled], has_number[filled] = 1, size[filled], True
        payload_size[filled] = size[filled]
        conditions.append(pa.array(rows))
        payloads.append(text)
    rows = types == V_INT
    if rows.any():
        ints = pc.fill_null(pc.struct_field(items, "int"), 0).to_numpy(zero_copy_only=False)
        ints = ints.view(np.uint64)  # two's complement: a negative int64 is a 10-byte varint
        nonzero = rows & (ints != 0)
        head[rows] = 3
        head[nonzero], number[nonzero], has_number[nonzero] = 2, ints[nonzero], True
    rows = types == V_DOUBLE
    if rows.any():
        doubles = pc.fill_null(pc.struct_field(items, "double"), 0.0).to_numpy(zero_copy_only=False)
        head[rows], payload_size[rows] = 4, 8
        conditions.append(pa.array(rows))
        payloads.append(wire.doubles_le(doubles))
    rows = types == V_BOOL
    if rows.any():
        truth = pc.fill_null(pc.struct_field(items, "bool"), False).to_numpy(zero_copy_only=False)
        head[rows] = np.where(truth[rows], 5, 6)
    rows = types == V_BYTES
    if rows.any():
        raw = wire.to_binary(pc.struct_field(items, "bytes"))
        size = wire.lengths(raw)
        head[rows] = 8
        filled = rows & (size > 0)
        head[filled], number[filled], has_number[filled] = 7, size[filled], True
        payload_size[filled] = size[filled]
        conditions.append(pa.array(rows))
        payloads.append(raw)
    value_head = wire.Rows(n).choose(_HEADS, head).varint(number, has_number)
    body_size = 1 + wire.varint_sizes(key_size) + key_size + value_head.size() + payload_size
    key_head = wire.Rows(n).const(tag).varint(body_size).const(b"\x0a").varint(key_size)
    parts = [key_head.build(), keys, value_head.build()]
    if len(conditions) == 1 and pc.all(conditions[0]).as_py():
        parts.append(payloads[0])
    elif conditions:
        names = [str(i) for i in range(len(conditions))]
        parts.append(
            pc.case_when(pa.StructArray.from_arrays(conditions, names), *payloads, wire.EMPTY)
        )
    return concat(*parts)


def _string_tags(key: str, values: pa.Array, tag: bytes = SPAN_TAG) -> list[pa.Array]:
    """A STRING tag `key` on the rows whose value is not empty: (head, text) columns."""
    text = wire.to_binary(as_array(values))
    size = wire.lengths(text)
    present = size > 0
    key_field = delimited(b"\x0a", key.encode()) + b"\x1a"
    body = len(key_field) + wire.varint_sizes(size) + size
    head = wire.Rows(len(size)).const(tag, present).varint(body, present)
    head.const(key_field, present).varint(size, present)
    return [head.build(), text]


def _int_tags(rows: wire.Rows, key: str, values: np.ndarray, tag: bytes = SPAN_TAG) -> None:
    """An INT64 tag `key` on the rows whose value is not 0 (the dropped counts)."""
    present = values > 0
    head = delimited(b"\x0a", key.encode()) + b"\x10\x02\x28"
    body = len(head) + wire.varint_sizes(values)
    rows.const(tag, present).varint(body, present).const(head, present).varint(values, present)


def _codes(values: np.ndarray, table: list[bytes]) -> np.ndarray:
    """Small enum column → index into table (out of range: 0, the empty entry)."""
    codes = values.astype(np.int64)
    return np.where((codes >= 0) & (codes < len(table)), codes, 0)


_KIND_TAGS: Final = [b""] + [delimited(SPAN_TAG, kv_string("span.kind", k)) for k in SPAN_KINDS[1:]]
_ERROR_TAG: Final = delimited(SPAN_TAG, delimited(b"\x0a", b"error") + b"\x10\x01\x20\x01")
_STATUS_TAGS: Final = [
    b"",
    delimited(SPAN_TAG, kv_string("otel.status_code", "OK")),
    delimited(SPAN_TAG, kv_string("otel.status_code", "ERROR")) + _ERROR_TAG,
]


# --- time ------------------------------------------------------------------------------------
def _time_field(rows: wire.Rows, tag: bytes, seconds: np.ndarray, nanos: np.ndarray) -> None:
    """A Timestamp / Duration field: int64 seconds (1), int32 nanos (2), zeros left out."""
    has_s, has_n = seconds != 0, nanos != 0
    s, ns = seconds.view(np.uint64), nanos.view(np.uint64)
    size = np.where(has_s, 1 + wire.varint_sizes(s), 0) + np.where(
        has_n, 1 + wire.varint_sizes(ns), 0
    )
    rows.const(tag).varint(size)
    rows.const(b"\x08", has_s).varint(s, has_s).const(b"\x10", has_n).varint(ns, has_n)


def timestamp_parts(nanos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint64 Unix nanoseconds, read as Go's int64 → (seconds, nanos in [0, 1e9))."""
    unix = nanos.astype(np.int64)
    return unix // _NS, unix % _NS


_INT64_MIN: Final = np.int64(-(2**63))
_INT64_MAX: Final = np.int64(2**63 - 1)


def duration_parts(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """end - start as a Duration, as Go computes it from pcommon timestamps: each read as
    int64 nanoseconds, the difference saturating at the int64 limits (time.Sub), negative
    when the span ends before it starts; seconds and nanos carry the same sign."""
    s, e = start.astype(np.int64), end.astype(np.int64)
    with np.errstate(over="ignore"):
        delta = e - s
    overflow = ((e < 0) != (s < 0)) & ((delta < 0) != (e < 0))
    if overflow.any():
        delta = np.where(overflow, np.where(e < 0, _INT64_MIN, _INT64_MAX), delta)
    seconds, nanos = np.divmod(delta, _NS)
    # truncate toward zero: a negative remainder goes with negative seconds
    carry = (nanos != 0) & (delta < 0)
    return np.where(carry, seconds + 1, seconds), np.where(carry, nanos - _NS, nanos)


# --- per-span columns ------------------------------------------------------------------------
def _u64(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(as_array(column), 0).to_numpy(zero_copy_only=False).astype(np.uint64)


def _id_matrix(column: pa.Array, width: int) -> np.ndarray:
    """fixed_size_binary ids → (rows, width) uint8, null as zeros."""
    column = as_array(column)
    if column.null_count:
        column = pc.fill_null(column, pa.scalar(bytes(width), pa.binary(width)))
    n = len(column)
    raw = np.frombuffer(column.buffers()[1], dtype=np.uint8, count=(column.offset + n) * width)
    return raw[column.offset * width :].reshape(n, width)


def _owners(offsets: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """The list row each flattened index in `hits` belongs to."""
    return np.searchsorted(offsets, hits, side="right") - 1


_EVENT_FIELD: Final = delimited(b"\x0a", EVENT_KEY.encode()) + b"\x1a"


def _logs(events: pa.Array) -> pa.BinaryArray:
    """list<EVENT> → per span, its `logs` fields."""
    offsets = list_offsets(events).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(events)
    m = len(flat)
    if m == 0:
        return wire.join_rows(offsets, pa.array([], wire.BINARY))
    names = wire.to_binary(pc.struct_field(flat, "name"))
    name_size = wire.lengths(names)
    attributes = pc.struct_field(flat, "attributes")
    attr_offsets = list_offsets(attributes).to_numpy(zero_copy_only=False)
    items = pc.list_flatten(attributes)
    fields = wire.join_rows(attr_offsets, kv_fields(items, LOG_FIELD))
    # an attribute called `event` takes the place of the name
    named = name_size > 0
    if len(items):
        is_event = pc.fill_null(pc.equal(pc.struct_field(items, "key"), EVENT_KEY), False)
        hits = np.flatnonzero(is_event.to_numpy(zero_copy_only=False))
        named[_owners(attr_offsets, hits)] = False
    # the part after the event's name: its attributes, then the dropped count
    tail = wire.Rows(m)
    _int_tags(
        tail,
        "otel.dropped_attributes_count",
        _u64(pc.struct_field(flat, "dropped_attributes_count")),
        LOG_FIELD,
    )
    head = wire.Rows(m)
    _time_field(head, b"\x0a", *timestamp_parts(_u64(pc.struct_field(flat, "time_unix_nano"))))
    name_body = len(_EVENT_FIELD) + wire.varint_sizes(name_size) + name_size
    head.const(LOG_FIELD, named).varint(name_body, named)
    head.const(_EVENT_FIELD, named).varint(name_size, named)
    names = wire.where(named, names)
    size = head.size() + np.where(named, name_size, 0) + wire.lengths(fields) + tail.size()
    log_head = wire.Rows(m).const(SPAN_LOG).varint(size)
    logs = concat(log_head.build(), head.build(), names, fields, tail.build())
    return wire.join_rows(offsets, logs)


_REF_HEADS: Final = [b"\x22\x1c\x0a\x10", b"\x22\x1e\x0a\x10"]  # SpanRef of 28 / 30 bytes


def _ref(
    rows: wire.Rows, trace: np.ndarray, span: np.ndarray, follows: np.ndarray, present=None
) -> wire.Rows:
    """A SpanRef field: CHILD_OF (0, left out) or FOLLOWS_FROM."""
    rows.choose(_REF_HEADS, follows.astype(np.int64), present).fixed(trace, present)
    rows.const(b"\x12\x08", present).fixed(span, present)
    with_type = follows if present is None else follows & present
    return rows.const(b"\x18\x01", with_type)


def _references(spans: pa.Table, trace_m: np.ndarray, head: wire.Rows) -> pa.BinaryArray:
    """The parent reference into `head` (first, CHILD_OF) and the link references per span:
    FOLLOWS_FROM unless `opentracing.ref_type` is `child_of`; a link to the parent only sets
    the parent reference's type (contrib's makeJaegerProtoReferences)."""
    n = spans.num_rows
    parent_m = _id_matrix(spans.column("parent_span_id"), 8)
    has_parent = parent_m.any(axis=1)
    parent_follows = np.zeros(n, dtype=bool)
    links = as_array(spans.column("links"))
    offsets = list_offsets(links).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(links)
    link_refs = wire.join_rows(offsets, pa.array([], wire.BINARY))
    if len(flat):
        owner = np.repeat(np.arange(n), np.diff(offsets))
        link_trace = _id_matrix(pc.struct_field(flat, "trace_id"), 16)
        link_span = _id_matrix(pc.struct_field(flat, "span_id"), 8)
        follows = np.ones(len(flat), dtype=bool)
        attributes = pc.struct_field(flat, "attributes")
        items = pc.list_flatten(attributes)
        if len(items):
            child_of = pc.and_(
                pc.equal(pc.struct_field(items, "key"), REF_TYPE_KEY),
                pc.equal(pc.struct_field(items, "str"), REF_TYPE_CHILD_OF),
            )
            hits = np.flatnonzero(pc.fill_null(child_of, False).to_numpy(zero_copy_only=False))
            attr_offsets = list_offsets(attributes).to_numpy(zero_copy_only=False)
            follows[_owners(attr_offsets, hits)] = False
        to_parent = (
            has_parent[owner]
            & (link_trace == trace_m[owner]).all(axis=1)
            & (link_span == parent_m[owner]).all(axis=1)
        )
        for link in np.flatnonzero(to_parent):  # rare: in order, so the last one wins
            parent_follows[owner[link]] = follows[link]
        keep = ~to_parent
        if not keep.all():
            owner, link_trace, link_span, follows = (
                owner[keep],
                link_trace[keep],
                link_span[keep],
                follows[keep],
            )
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
        refs = _ref(wire.Rows(len(owner)), link_trace, link_span, follows).build()
        link_refs = wire.join_rows(offsets, refs)
    _ref(head, trace_m, parent_m, parent_follows, has_parent)
    return link_refs


def _scope_tags(scopes: pa.Table) -> pa.BinaryArray:
    """Per scope, its otel.scope.name / otel.scope.version tags (scopes are few)."""
    out = []
    names = scopes.column("name").to_pylist()
    versions = scopes.column("version").to_pylist()
    for name, version in zip(names, versions, strict=True):
        tags = delimited(SPAN_TAG, kv_string("otel.scope.name", name)) if name else b""
        if version:
            tags += delimited(SPAN_TAG, kv_string("otel.scope.version", version))
        out.append(tags)
    return pa.array(out, wire.BINARY)


def encode_spans(batch: Batch) -> tuple[np.ndarray, pa.BinaryArray]:
    """Every span as a `Batch.spans` field (an encoded Span), with each span's resource.

    Field order inside a message does not matter to protobuf parsers, so the numeric fields
    (ids, parent reference, flags, times) are built together in one numpy pass; the tags
    keep contrib's order among themselves."""
    spans = batch.tables["spans"]
    n = spans.num_rows
    scope_index = _u64(spans.column("scope_index")).astype(np.int64)
    scope_resource = _u64(batch.scopes.column("resource_index")).astype(np.int64)
    span_resource = scope_resource[scope_index] if n else np.zeros(0, dtype=np.int64)
    if n == 0:
        return span_resource, pa.array([], wire.BINARY)
    trace_m = _id_matrix(spans.column("trace_id"), 16)
    head = wire.Rows(n).const(b"\x0a\x10").fixed(trace_m)
    head.const(b"\x12\x08").fixed(_id_matrix(spans.column("span_id"), 8))
    link_refs = _references(spans, trace_m, head)
    sampled = (_u64(spans.column("flags")) & np.uint64(SAMPLED_FLAG)) != 0
    head.const(b"\x28\x01", sampled)
    start = _u64(spans.column("start_time_unix_nano"))
    _time_field(head, b"\x32", *timestamp_parts(start))
    _time_field(head, b"\x3a", *duration_parts(start, _u64(spans.column("end_time_unix_nano"))))
    names = wire.to_binary(as_array(spans.column("name")))
    name_size = wire.lengths(names)
    head.const(b"\x1a", name_size > 0).varint(name_size, name_size > 0)

    attributes = as_array(spans.column("attributes"))
    attr_offsets = list_offsets(attributes).to_numpy(zero_copy_only=False)
    enums = wire.Rows(n)
    enums.choose(_KIND_TAGS, _codes(_u64(spans.column("kind")), _KIND_TAGS))
    enums.choose(_STATUS_TAGS, _codes(_u64(spans.column("status_code")), _STATUS_TAGS))
    dropped = wire.Rows(n)
    for key, column in (
        ("otel.dropped_attributes_count", "dropped_attributes_count"),
        ("otel.dropped_events_count", "dropped_events_count"),
        ("otel.dropped_links_count", "dropped_links_count"),
    ):
        _int_tags(dropped, key, _u64(spans.column(column)))
    parts = [
        names,
        link_refs,
        # tags, in contrib's order, then the specification's dropped counts
        _scope_tags(batch.scopes).take(pa.array(scope_index)),
        wire.join_rows(attr_offsets, kv_fields(pc.list_flatten(attributes), SPAN_TAG)),
        enums.build(),
        *_string_tags("otel.status_description", spans.column("status_message")),
        *_string_tags("w3c.tracestate", spans.column("trace_state")),
        dropped.build(),
        _logs(as_array(spans.column("events"))),
    ]
    size = head.size()
    for part in parts:
        size += wire.lengths(part).astype(np.int64)
    # the Batch.spans field around each span
    outer = wire.Rows(n).const(b"\x0a").varint(size).extend(head)
    return span_resource, concat(outer.build(), *parts)


# --- processes and requests ------------------------------------------------------------------
def process_fields(resources: pa.Table) -> list[bytes]:
    """Each resource as a `Batch.process` field: `service.name` as the service name, the other
    attributes as tags."""
    attributes = as_array(resources.column("attributes"))
    offsets = list_offsets(attributes).to_numpy(zero_copy_only=False).tolist()
    items = pc.list_flatten(attributes)
    tags = kv_fields(items, PROCESS_TAG).to_pylist()
    keys = pc.struct_field(items, "key").to_pylist() if len(items) else []
    types = pc.struct_field(items, "type").to_pylist() if len(items) else []
    strs = pc.struct_field(items, "str").to_pylist() if len(items) else []
    out = []
    for r in range(len(attributes)):
        a, b = offsets[r], offsets[r + 1]
        if a == b:
            out.append(delimited(b"\x12", delimited(b"\x0a", NO_SERVICE_NAME.encode())))
            continue
        service: str | None = None
        kept = []
        for j in range(a, b):
            if keys[j] == SERVICE_NAME_KEY:
                if service is None:
                    # contrib reads it with Str(): a non-string service.name names nothing
                    service = (strs[j] or "") if types[j] == V_STRING else ""
                continue
            kept.append(tags[j])
        head = delimited(b"\x0a", service.encode()) if service else b""
        out.append(delimited(b"\x12", head + b"".join(kept)))
    return out


@dataclass(slots=True)
class Request:
    """One PostSpansRequest: the spans of (part of) one resource."""

    resource_index: int
    span_count: int
    body: bytes


def post_spans_requests(batch: Batch, max_bytes: int = MAX_REQUEST_BYTES) -> Iterator[Request]:
    """The batch as PostSpansRequest bodies: one per resource that has spans, split further
    only when a resource's spans exceed `max_bytes`."""
    span_resource, span_fields = encode_spans(batch)
    n = len(span_fields)
    if n == 0:
        return
    order = np.argsort(span_resource, kind="stable")
    if (np.diff(order) != 1).any():
        span_fields = span_fields.take(pa.array(order))
        span_resource = span_resource[order]
    offsets = wire.value_offsets(span_fields).astype(np.int64)
    data = memoryview(span_fields.buffers()[2]) if offsets[-1] else memoryview(b"")
    processes = process_fields(batch.resources)
    starts = [0, *(np.flatnonzero(np.diff(span_resource)) + 1).tolist(), n]
    for a, b in pairwise(starts):
        resource = int(span_resource[a])
        process = processes[resource]
        budget = max_bytes - len(process) - 16
        while a < b:
            # as many spans as fit (at least one: an oversized span goes alone)
            limit = offsets[a] + max(budget, 0)
            end = int(np.searchsorted(offsets[a + 1 : b + 1], limit, side="right")) + a
            end = min(max(end, a + 1), b)
            spans = data[offsets[a] : offsets[end]]
            yield Request(resource, end - a, delimited(b"\x0a", bytes(spans) + process))
            a = end
