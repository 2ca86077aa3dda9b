"""Limits on hostile or sloppy input, applied to a decoded request before it enters a pipeline.

Two kinds (receiver key `limits:`, an AIRIS addition):

* SDK-style truncation (the OTel SDK's attribute limits, off by default): attribute lists
  longer than `attribute_count_limit` keep their first entries and add the rest to the
  record's `dropped_attributes_count`; string values longer than
  `attribute_value_length_limit` characters are cut. Both are counted in self-metrics.
* Hard limits (generous defaults): a request breaking one is refused whole with 400 /
  INVALID_ARGUMENT naming the limit: items per request, attributes per list, key and value
  length in bytes, and the nesting depth of arrays/kvlists inside an AnyValue.

The decoders bound nesting themselves, so no input can blow the stack: the compiled decoder
hands anything deeper than 32 levels to the Python one, whose upb parser refuses messages
nested deeper than 100 (about 30 kvlist levels); `max_attribute_depth` words the refusal for
the depths in between.

Work is columnar (pyarrow compute over every attribute column); only arrays and kvlists,
which are rare, are walked in Python to measure their depth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from otlp.batch import V_ARRAY, V_KVLIST, V_STRING, Batch
from otlp.component import ComponentConfig
from otlp.errors import InvalidRequestError


class LimitsConfig(ComponentConfig):
    # hard limits (0 = no limit)
    max_items_per_request: int = Field(100_000, ge=0)
    max_attributes: int = Field(1024, ge=0)
    max_attribute_key_length: int = Field(1024, ge=0)
    max_attribute_value_length: int = Field(1024 * 1024, ge=0)
    max_attribute_depth: int = Field(16, ge=0)
    # SDK-style truncation (0 = off)
    attribute_count_limit: int = Field(0, ge=0)
    attribute_value_length_limit: int = Field(0, ge=0)
    # invalid UTF-8 in a string field: refuse the request (as proto3 parsers do), or replace
    # each bad sequence with U+FFFD (what the OTLP specification recommends to sanitizers)
    invalid_utf8: Literal["reject", "replace"] = "reject"


class LimitExceeded(InvalidRequestError):
    def __init__(self, limit: str, value: int, actual: int) -> None:
        super().__init__(f"request exceeds limits.{limit} ({value}): found {actual}")
        self.limit = limit


@dataclass(slots=True)
class Truncations:
    attributes: int = 0  # attributes dropped by attribute_count_limit
    values: int = 0  # values cut by attribute_value_length_limit


# tables (by name) whose rows have attribute lists with a dropped_attributes_count beside them
_NESTED = {"events": "attributes", "links": "attributes", "exemplars": "filtered_attributes"}


def _list_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _relist(lists: pa.Array, values: pa.Array) -> pa.Array:
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    mask = lists.is_null() if lists.null_count else None
    return pa.ListArray.from_arrays(offsets, values, type=lists.type, mask=mask)


def _replace_fields(struct: pa.StructArray, **new: pa.Array) -> pa.StructArray:
    names = [f.name for f in struct.type]
    arrays = [new.get(n, struct.field(n)) for n in names]
    mask = struct.is_null() if struct.null_count else None
    return pa.StructArray.from_arrays(arrays, fields=list(struct.type), mask=mask)


def _items(lists: pa.Array) -> pa.Array:
    """The entries of a list array (its child as is when unsliced: no copy, no compute)."""
    return lists.values if lists.offset == 0 else lists.flatten()


def _attribute_lists(batch: Batch) -> Iterator[pa.Array]:
    """Every attribute list column of the batch (read-only view, nested ones flattened)."""
    for table in (batch.resources, batch.scopes, *batch.tables.values()):
        if not table.num_rows:
            continue
        names = set(table.schema.names)
        for name in ("attributes", "metadata"):
            if name in names:
                yield _list_array(table.column(name))
        for name, child in _NESTED.items():
            if name in names:
                nested = _items(_list_array(table.column(name)))
                if len(nested):
                    yield nested.field(child)


def _longest(strings: pa.Array) -> int:
    """The longest entry of a string/binary (or list) array, in bytes (entries), from its
    offsets alone."""
    if not len(strings):
        return 0
    offsets = np.frombuffer(strings.buffers()[1], np.int32, len(strings) + 1, strings.offset * 4)
    return int((offsets[1:] - offsets[:-1]).max())


class Limiter:
    def __init__(self, config: LimitsConfig) -> None:
        self.config = config

    def apply(
        self,
        batch: Batch,
        body_size: int | None = None,
        sizes: tuple[int, int, int, int] | None = None,
    ) -> Truncations:
        """Truncate (in place on the batch) then check the hard limits; raises LimitExceeded.

        body_size (the request as decoded, protobuf or JSON) bounds what it can hold: no
        string is longer, no list has more than body_size / 2 entries. Checks the body cannot
        fail are skipped, which with the default limits is all but the item count and the
        depth of the (rare) nested values for any request under 1 MiB.

        sizes (decode.wire_sizes()) are the request's largest list, key, value and nested
        value as the compiled decoder measured them: with them, no column is scanned."""
        cfg = self.config
        done = Truncations()
        items = batch.item_count()
        if cfg.max_items_per_request and items > cfg.max_items_per_request:
            raise LimitExceeded("max_items_per_request", cfg.max_items_per_request, items)
        if cfg.attribute_count_limit or cfg.attribute_value_length_limit:
            self._truncate(batch, done)
        bound = body_size if body_size is not None else 1 << 62
        check_count = bool(cfg.max_attributes) and bound // 2 > cfg.max_attributes
        check_keys = bool(cfg.max_attribute_key_length) and bound > cfg.max_attribute_key_length
        check_values = (
            bool(cfg.max_attribute_value_length) and bound > cfg.max_attribute_value_length
        )
        if not (check_count or check_keys or check_values or cfg.max_attribute_depth):
            return done
        truncating = cfg.attribute_count_limit or cfg.attribute_value_length_limit
        if sizes is not None and not truncating:  # truncation changed what was measured
            most, key, value, nested = sizes
            for limit, checked, found in (
                ("max_attributes", check_count, most),
                ("max_attribute_key_length", check_keys, key),
                ("max_attribute_value_length", check_values, value),
            ):
                if checked and found > getattr(cfg, limit):
                    raise LimitExceeded(limit, getattr(cfg, limit), found)
            if not cfg.max_attribute_depth or nested < 4 * (cfg.max_attribute_depth - 1):
                return done
            check_count = check_keys = check_values = False  # only the depth is left to see
        for lists in _attribute_lists(batch):
            values = _items(lists)
            if check_count and len(values) > cfg.max_attributes:
                longest = _longest(lists)  # a list array's offsets work the same way
                if longest > cfg.max_attributes:
                    raise LimitExceeded("max_attributes", cfg.max_attributes, longest)
            if len(values):
                self._check_values(values, check_keys, check_values)
        if "logs" in batch.tables:
            body = _list_array(batch.tables["logs"].column("body"))
            self._check_values(body, check_keys, check_values)
        return done

    def _check_values(self, values: pa.StructArray, check_keys: bool, check_values: bool) -> None:
        cfg = self.config
        raw = values.field("bytes")
        # arrays, kvlists and bytes values fill `bytes`, other values leave it null: a column
        # without any has nothing nested to measure
        if not (check_keys or check_values) and raw.null_count == len(raw):
            return
        if check_keys and "key" in values.type.names:
            longest = _longest(values.field("key"))
            if longest > cfg.max_attribute_key_length:
                raise LimitExceeded(
                    "max_attribute_key_length", cfg.max_attribute_key_length, longest
                )
        if check_values:
            # from the offsets: a value of another kind is null there, i.e. zero long (bytes
            # also holds the encoded arrays and kvlists, whose size counts as their length)
            longest = max(_longest(values.field("str")), _longest(raw))
            if longest > cfg.max_attribute_value_length:
                raise LimitExceeded(
                    "max_attribute_value_length", cfg.max_attribute_value_length, longest
                )
        # each level of nesting takes at least 4 encoded bytes (a field tag and a length for
        # the AnyValue's array/kvlist, the same for its entry): shorter values are shallow
        if cfg.max_attribute_depth and _longest(raw) >= 4 * (cfg.max_attribute_depth - 1):
            types = values.field("type").to_numpy(zero_copy_only=False)
            # arrays and kvlists are rare: usually no row is walked
            rows = np.flatnonzero((types == V_ARRAY) | (types == V_KVLIST))
            if len(rows):
                for nested in set(raw.take(rows).to_pylist()):
                    depth = anyvalue_depth(nested or b"", cfg.max_attribute_depth)
                    if depth > cfg.max_attribute_depth:
                        raise LimitExceeded("max_attribute_depth", cfg.max_attribute_depth, depth)

    # --- truncation -------------------------------------------------------------------
    def _truncate_lists(
        self, lists: pa.Array, dropped: pa.Array, done: Truncations
    ) -> tuple[pa.Array, pa.Array]:
        cfg = self.config
        if cfg.attribute_value_length_limit and len(lists):
            values = lists.flatten()
            types = values.field("type")
            text = values.field("str")
            limit = cfg.attribute_value_length_limit
            too_long = pc.and_(pc.equal(types, V_STRING), pc.greater(pc.utf8_length(text), limit))
            cut = pc.sum(too_long).as_py() or 0
            if cut:
                done.values += cut
                short = pc.if_else(too_long, pc.utf8_slice_codeunits(text, 0, limit), text)
                lists = _relist(lists, _replace_fields(values, str=short))
        if cfg.attribute_count_limit and len(lists):
            lengths = pc.fill_null(pc.list_value_length(lists), 0)
            excess = pc.max_element_wise(pc.subtract(lengths, cfg.attribute_count_limit), 0)
            total = pc.sum(excess).as_py() or 0
            if total:
                done.attributes += total
                kept = pc.list_slice(lists, 0, cfg.attribute_count_limit)
                lists = kept.cast(lists.type)
                dropped = pc.add(pc.fill_null(dropped, 0), excess.cast(pa.uint32())).cast(
                    pa.uint32()
                )
        return lists, dropped

    def _truncate_table(self, table: pa.Table, done: Truncations) -> pa.Table:
        if "attributes" in table.column_names and "dropped_attributes_count" in table.column_names:
            lists, dropped = self._truncate_lists(
                _list_array(table.column("attributes")),
                _list_array(table.column("dropped_attributes_count")),
                done,
            )
            table = table.set_column(
                table.schema.get_field_index("attributes"), table.schema.field("attributes"), lists
            )
            table = table.set_column(
                table.schema.get_field_index("dropped_attributes_count"),
                table.schema.field("dropped_attributes_count"),
                dropped,
            )
        for name in ("events", "links"):
            if name not in table.column_names:
                continue
            outer = _list_array(table.column(name))
            inner = outer.flatten()
            if not len(inner):
                continue
            lists, dropped = self._truncate_lists(
                inner.field("attributes"), inner.field("dropped_attributes_count"), done
            )
            inner = _replace_fields(inner, attributes=lists, dropped_attributes_count=dropped)
            index = table.schema.get_field_index(name)
            table = table.set_column(index, table.schema.field(name), _relist(outer, inner))
        return table

    def _truncate(self, batch: Batch, done: Truncations) -> None:
        batch.resources = self._truncate_table(batch.resources, done)
        batch.scopes = self._truncate_table(batch.scopes, done)
        for name in ("spans", "logs"):
            if name in batch.tables:
                batch.tables[name] = self._truncate_table(batch.tables[name], done)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise InvalidRequestError("malformed nested value")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, bytes | None]]:
    """(field number, payload of length-delimited fields or None) of one message."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            yield number, None
        elif wire == 1:
            pos += 8
            yield number, None
        elif wire == 5:
            pos += 4
            yield number, None
        elif wire == 2:
            size, pos = _varint(data, pos)
            yield number, data[pos : pos + size]
            pos += size
        else:
            raise InvalidRequestError("malformed nested value")


def anyvalue_depth(data: bytes, stop_after: int) -> int:
    """Levels of arrays/kvlists in a serialized AnyValue (`[1]` is 1, `{"a": [1]}` is 2).
    Iterative, and it stops counting past stop_after, so hostile input costs little."""
    deepest = 0
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        for number, payload in _fields(value):
            if payload is None or number not in (5, 6):
                continue
            level = depth + 1
            deepest = max(deepest, level)
            if deepest > stop_after:
                return deepest
            for item_number, item in _fields(payload):
                if item_number != 1 or item is None:
                    continue
                if number == 5:  # ArrayValue.values: AnyValue
                    stack.append((item, level))
                else:  # KeyValueList.values: KeyValue, whose field 2 is the AnyValue
                    for kv_number, kv_value in _fields(item):
                        if kv_number == 2 and kv_value is not None:
                            stack.append((kv_value, level))
    return deepest


# --- invalid UTF-8 ------------------------------------------------------------------------

_MAX_MESSAGE_DEPTH = 100  # upb's, which the decoders apply anyway


def _request_descriptor(signal: str) -> Any:
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    return {
        "traces": trace_service_pb2.ExportTraceServiceRequest,
        "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
        "logs": logs_service_pb2.ExportLogsServiceRequest,
    }[signal].DESCRIPTOR


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _sanitize(descriptor: Any, data: bytes, depth: int) -> bytes:
    """The message with every string field made valid UTF-8 (bad sequences → U+FFFD)."""
    if depth > _MAX_MESSAGE_DEPTH:
        raise InvalidRequestError("message nested too deeply")
    out = bytearray()
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire != 2:
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            else:
                raise InvalidRequestError("malformed protobuf")
            out += data[start:pos]
            continue
        tag_end = pos
        size, pos = _varint(data, pos)
        payload = data[pos : pos + size]
        if len(payload) != size:
            raise InvalidRequestError("malformed protobuf")
        pos += size
        field = descriptor.fields_by_number.get(number)
        if field is not None and field.type == field.TYPE_STRING:
            payload = payload.decode("utf-8", "replace").encode()
        elif field is not None and field.type == field.TYPE_MESSAGE:
            payload = _sanitize(field.message_type, payload, depth + 1)
        out += data[start:tag_end]
        out += _varint_bytes(len(payload))
        out += payload
    return bytes(out)


def replace_invalid_utf8(signal: str, body: bytes) -> bytes | None:
    """The request with invalid UTF-8 replaced, or None when there was none to replace."""
    fixed = _sanitize(_request_descriptor(signal), body, 0)
    return fixed if fixed != body else None
