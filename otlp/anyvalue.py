"""KeyValue / AnyValue wire bytes <-> Arrow ``ATTRIBUTE`` / ``VALUE`` columns.

Decoding here serves the Python decoder (the reference for the compiled ``otlp._wire``, which
renders nested values the same way: ``as_string`` and ``go_float`` are the specification its
tests compare against). The shadow messages (``otlp.shadow``) give every KeyValue of a request
as raw bytes. ``keyvalues_to_arrow`` parses all of them in one vectorised numpy pass over the
concatenated bytes. It recognises the canonical encodings every OTLP exporter produces (key,
then value; the value a single string / bool / int / double / bytes / array / kvlist field);
anything else (unknown fields, repeated fields, the profiles-only ``*_strindex`` fields) takes
the per-value upb path, which has the full protobuf semantics and raises on malformed input.
Small inputs take the upb path outright because numpy's fixed cost per call outweighs it there.

Strings never go through Python objects on the fast path: the concatenated bytes are cut into
segments (header, key, header, payload per KeyValue), and keys and values are gathered from
that segment array with Arrow ``take``; the cast to ``string`` validates UTF-8.

Encoding goes the other way, producing KeyValue / AnyValue bytes for the shadow messages.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otlp.batch import (
    ATTRIBUTE,
    V_ARRAY,
    V_BOOL,
    V_BYTES,
    V_DOUBLE,
    V_EMPTY,
    V_INT,
    V_KVLIST,
    V_STRING,
    VALUE,
)
from otlp.errors import InvalidRequestError

# Below this many values per request the per-value upb path is cheaper: the vectorised path
# costs a fixed ~150 numpy/Arrow calls (~0.3 ms here), the upb path ~1.8 us per value; they
# break even around 200 values (measured).
SMALL = 200

_PAD: Final = b"\x00" * 16
_I32_MAX: Final = 2**31 - 1

# AnyValue tags (field number << 3 | wire type)
_T_STRING: Final = 0x0A
_T_BOOL: Final = 0x10
_T_INT: Final = 0x18
_T_DOUBLE: Final = 0x21
_T_ARRAY: Final = 0x2A
_T_KVLIST: Final = 0x32
_T_BYTES: Final = 0x3A

# first tag of a canonical AnyValue -> its VALUE type; and the AnyValue's size for fixed-size
# types (0: length-delimited, checked separately; ints are 2..11 bytes)
_TAG_TYPE: Final = np.zeros(256, np.int8)
for _tag, _type in (
    (_T_STRING, V_STRING),
    (_T_BOOL, V_BOOL),
    (_T_INT, V_INT),
    (_T_DOUBLE, V_DOUBLE),
    (_T_ARRAY, V_ARRAY),
    (_T_KVLIST, V_KVLIST),
    (_T_BYTES, V_BYTES),
):
    _TAG_TYPE[_tag] = _type
_FIXED_SIZE: Final = np.zeros(8, np.int64)
_FIXED_SIZE[V_BOOL] = 2
_FIXED_SIZE[V_DOUBLE] = 9
_FIXED_SIZE[V_INT] = -1

_ONEOF_TYPE: Final = {
    "string_value": V_STRING,
    "bool_value": V_BOOL,
    "int_value": V_INT,
    "double_value": V_DOUBLE,
    "array_value": V_ARRAY,
    "kvlist_value": V_KVLIST,
    "bytes_value": V_BYTES,
}

Row = tuple[str, int, str | None, int | None, float | None, bool | None, bytes | None]


# ---------------------------------------------------------------------------------------------
# JSON rendering compatible with the Collector's pcommon Value.AsString() (Go encoding/json)


class _Unsupported(Exception):
    """NaN or infinity: Go's json.Marshal fails, and AsString() yields ""."""


_GO_ESCAPES: Final = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def _go_str(value: str) -> str:
    # json.dumps escapes quotes, backslashes and control characters the way Go does (lowercase
    # \u00xx, short forms for \b \f \n \r \t); Go additionally escapes HTML characters.
    return json.dumps(value, ensure_ascii=False).translate(_GO_ESCAPES)


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json writes it (ES6 number formatting)."""
    if math.isnan(value) or math.isinf(value):
        raise _Unsupported
    text = repr(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        # Python's repr is already in exponent form here; Go drops the exponent's leading 0
        mantissa, _, exponent = text.partition("e")
        sign = exponent[0]
        digits = exponent[1:].lstrip("0") or "0"
        return f"{mantissa}e{sign}{digits}"
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def _render(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _go_str(value.string_value)
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return go_float(value.double_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "bytes_value":
        return '"' + base64.b64encode(value.bytes_value).decode() + '"'
    if kind == "array_value":
        return "[" + ",".join(_render(item) for item in value.array_value.values) + "]"
    if kind == "kvlist_value":
        # AsRaw() builds a Go map (last duplicate wins); json.Marshal sorts the keys
        items = {kv.key: kv.value for kv in value.kvlist_value.values}
        return "{" + ",".join(_go_str(k) + ":" + _render(items[k]) for k in sorted(items)) + "}"
    return "null"


def as_string(value: AnyValue) -> str:
    """pcommon Value.AsString() for arrays and kvlists: a JSON rendering."""
    try:
        return _render(value)
    except _Unsupported:
        return ""


# ---------------------------------------------------------------------------------------------
# per-value path (small inputs, non-canonical encodings)


def _py_value(
    value: AnyValue,
) -> tuple[int, str | None, int | None, float | None, bool | None, bytes | None]:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return V_STRING, value.string_value, None, None, None, None
    if kind == "int_value":
        return V_INT, None, value.int_value, None, None, None
    if kind == "double_value":
        return V_DOUBLE, None, None, value.double_value, None, None
    if kind == "bool_value":
        return V_BOOL, None, None, None, value.bool_value, None
    if kind == "bytes_value":
        return V_BYTES, None, None, None, None, value.bytes_value
    if kind == "array_value" or kind == "kvlist_value":
        return _ONEOF_TYPE[kind], as_string(value), None, None, None, value.SerializeToString()
    # unset, or string_value_strindex: a profiles-only reference that other signals must treat
    # as absent (OTLP spec)
    return V_EMPTY, None, None, None, None, None


def _parse_kv(chunk: bytes) -> Row:
    try:
        kv = KeyValue.FromString(chunk)
    except DecodeError as exc:
        raise InvalidRequestError(f"invalid attribute (KeyValue): {exc}") from exc
    return (kv.key, *_py_value(kv.value))


def _parse_av(chunk: bytes) -> Row:
    try:
        value = AnyValue.FromString(chunk)
    except DecodeError as exc:
        raise InvalidRequestError(f"invalid value (AnyValue): {exc}") from exc
    return ("", *_py_value(value))


def _parse_each(chunks: list[bytes], parse: Callable[[bytes], Row]) -> list[Row]:
    # requests repeat most attributes (same keys and values on every span): parse each once
    rows: dict[bytes, Row] = {}
    out = []
    for chunk in chunks:
        row = rows.get(chunk)
        if row is None:
            row = rows[chunk] = parse(chunk)
        out.append(row)
    return out


def _rows_to_arrays(rows: list[Row]) -> list[pa.Array]:
    keys, types, strs, ints, doubles, bools, raw = zip(*rows, strict=True) if rows else ([],) * 7
    return [
        pa.array(keys, pa.string()),
        pa.array(types, pa.int8()),
        pa.array(strs, pa.string()),
        pa.array(ints, pa.int64()),
        pa.array(doubles, pa.float64()),
        pa.array(bools, pa.bool_()),
        pa.array(raw, pa.binary()),
    ]


# ---------------------------------------------------------------------------------------------
# vectorised path


def _varint(data: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, Any, Any]:
    """Decode a length varint (at most 5 bytes) at each position.

    Returns (value, its size in bytes, complete?); the last two are scalars in the common
    case where every varint is a single byte, and broadcast like arrays.
    """
    byte = data[pos]
    value = byte.astype(np.int64)
    more = byte >= 0x80
    if not more.any():
        return value, 1, True
    value &= 0x7F
    size = np.ones(len(pos), np.int64)
    rows = np.flatnonzero(more)
    for i in range(1, 5):
        byte = data[pos[rows] + i]
        value[rows] |= (byte & 0x7F).astype(np.int64) << (7 * i)
        size[rows] += 1
        rows = rows[byte >= 0x80]
        if not len(rows):
            return value, size, True
    complete = np.ones(len(pos), np.bool_)
    complete[rows] = False
    return value, size, complete


def _varint64(data: np.ndarray, pos: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode int64 varints of known ``size`` (1..10 bytes): (values, well-formed?)."""
    value = np.zeros(len(pos), np.uint64)
    ok = np.ones(len(pos), np.bool_)
    for i in range(int(size.max(initial=0))):
        inside = i < size
        byte = data[pos + np.where(inside, i, 0)]
        value |= np.where(inside, (byte & 0x7F).astype(np.uint64) << np.uint64(7 * i), np.uint64(0))
        # every byte but the last has the continuation bit
        ok &= ~inside | ((byte >= 0x80) == (i < size - 1))
    return value.view(np.int64), ok


def _valid_array(values: np.ndarray, valid: np.ndarray, type_: pa.DataType, count: int) -> pa.Array:
    if not valid.any():
        return pa.nulls(count, type_)
    return pa.array(values, type_, mask=~valid)


def _parse_vectorised(chunks: pa.BinaryArray, keyed: bool) -> list[pa.Array]:
    n = len(chunks)
    offsets = np.frombuffer(chunks.buffers()[1], np.int32, n + 1, 4 * chunks.offset)
    first, size = int(offsets[0]), int(offsets[-1] - offsets[0])
    # a private copy with padding: reads just past the end (a header at the very end) stay
    # in bounds; clipped positions keep malformed lengths in bounds
    data = np.zeros(size + len(_PAD), np.uint8)
    data[:size] = np.frombuffer(chunks.buffers()[2], np.uint8, size, first)
    starts = offsets[:-1].astype(np.int64) - first
    ends = offsets[1:].astype(np.int64) - first

    if keyed:
        has_key = (data[starts] == 0x0A) & (ends > starts)
        key_len, key_hdr, key_ok = _varint(data, starts + 1)
        key_start = np.where(has_key, starts + 1 + key_hdr, starts)
        key_stop = key_start + np.where(has_key, key_len, 0)
        ok = ~has_key | (key_ok & (key_stop <= ends))
        key_end = np.minimum(key_stop, ends)
        has_value = (data[key_end] == 0x12) & (key_end < ends)
        val_len, val_hdr, val_ok = _varint(data, key_end + 1)
        val_start = np.where(has_value, key_end + 1 + val_hdr, key_end)
        val_end = np.where(has_value, val_start + val_len, key_end)
        ok &= (~has_value | val_ok) & (val_end == ends)
        # bounds the reads of malformed rows (those are not ok: the upb path judges them)
        val_start = np.minimum(val_start, ends)
    else:
        key_start = key_end = val_start = starts
        val_end = ends
        ok = np.ones(n, np.bool_)

    val_size = val_end - val_start
    tag = np.where(val_size > 0, data[val_start], 0)
    pay_len, pay_hdr, pay_ok = _varint(data, val_start + 1)
    pay_start = val_start + 1 + pay_hdr
    delimited = pay_ok & (pay_start + pay_len == val_end)

    # the AnyValue's type from its first tag, kept only if the encoding has the canonical shape
    types = _TAG_TYPE[tag]
    fixed = _FIXED_SIZE[types]
    shape_ok = np.where(fixed > 0, val_size == fixed, delimited)
    shape_ok[types == V_INT] = ((val_size >= 2) & (val_size <= 11))[types == V_INT]
    types[~shape_ok] = V_EMPTY
    ok &= (types != V_EMPTY) | (val_size == 0)

    ints = np.zeros(n, np.int64)
    rows = np.flatnonzero(types == V_INT)
    if len(rows):
        ints[rows], well_formed = _varint64(data, val_start[rows] + 1, val_size[rows] - 1)
        ok[rows[~well_formed]] = False
    doubles = np.zeros(n, np.float64)
    rows = np.flatnonzero(types == V_DOUBLE)
    if len(rows):
        gathered = data[(val_start[rows] + 1)[:, None] + np.arange(8)]
        doubles[rows] = np.ascontiguousarray(gathered).view("<f8")[:, 0]
    bools = data[val_start + 1] == 1
    rows = np.flatnonzero(types == V_BOOL)
    if len(rows):
        ok[rows[data[val_start[rows] + 1] > 1]] = False

    is_str = types == V_STRING
    is_complex = (types == V_ARRAY) | (types == V_KVLIST)
    has_bytes = (types == V_BYTES) | is_complex

    # Segments tile the blob, four per value: [start, key) [key) [key end, payload) [payload).
    # Strings and bytes are gathered from them with Arrow `take`. Rows whose strings come
    # from Python (fallbacks, JSON renderings) point at extra segments after the blob.
    payload = np.where(
        is_str | (types == V_BYTES), pay_start, np.where(is_complex, val_start, ends)
    )
    bounds = np.empty(4 * n + 1, np.int64)
    bounds[0:-1:4] = starts
    bounds[1::4] = np.where(ok, key_start, starts)
    bounds[2::4] = np.where(ok, key_end, starts)
    bounds[3::4] = np.where(ok, payload, starts)
    bounds[-1] = size
    key_idx = np.arange(1, 4 * n, 4, dtype=np.int64)
    str_idx = key_idx + 2
    bytes_idx = key_idx + 2
    str_valid = is_str & ok
    bytes_valid = has_bytes & ok

    extra: list[bytes] = []

    def add_extra(value: bytes) -> int:
        extra.append(value)
        return 4 * n + len(extra) - 1

    # arrays and kvlists: bytes are the raw AnyValue; the JSON rendering is computed here
    for i in np.flatnonzero(is_complex & ok).tolist():
        start = int(starts[i])
        chunk = chunks[i].as_py()
        rendered = _parse_av(chunk[val_start[i] - start : val_end[i] - start])[2]
        str_idx[i] = add_extra((rendered or "").encode())
        str_valid[i] = True
    for i in np.flatnonzero(~ok).tolist():
        parse = _parse_kv if keyed else _parse_av
        key, kind, text, integer, double, flag, raw = parse(chunks[i].as_py())
        key_idx[i] = add_extra(key.encode())
        types[i] = kind
        if text is not None:
            str_idx[i] = add_extra(text.encode())
            str_valid[i] = True
        if raw is not None:
            bytes_idx[i] = add_extra(raw)
            bytes_valid[i] = True
        if integer is not None:
            ints[i] = integer
        if double is not None:
            doubles[i] = double
        if flag is not None:
            bools[i] = flag

    blob = data[:size]
    if extra:
        extra_ends = size + np.cumsum(np.fromiter(map(len, extra), np.int64, len(extra)))
        bounds = np.concatenate([bounds, extra_ends])
        blob = np.concatenate([blob, np.frombuffer(b"".join(extra), np.uint8)])
        if len(blob) > _I32_MAX:
            raise InvalidRequestError("attributes exceed 2 GiB")
    segments = pa.Array.from_buffers(
        pa.binary(),
        len(bounds) - 1,
        [None, pa.py_buffer(bounds.astype(np.int32)), pa.py_buffer(blob)],
    )
    try:
        keys = segments.take(pa.array(key_idx)).cast(pa.string())
        strs = (
            segments.take(pa.array(str_idx, mask=~str_valid)).cast(pa.string())
            if str_valid.any()
            else pa.nulls(n, pa.string())
        )
    except pa.ArrowInvalid as exc:
        raise InvalidRequestError(f"invalid UTF-8 in an attribute: {exc}") from exc
    raw_col = (
        segments.take(pa.array(bytes_idx, mask=~bytes_valid))
        if bytes_valid.any()
        else pa.nulls(n, pa.binary())
    )
    return [
        keys,
        pa.array(types, pa.int8()),
        strs,
        _valid_array(ints, types == V_INT, pa.int64(), n),
        _valid_array(doubles, types == V_DOUBLE, pa.float64(), n),
        _valid_array(bools, types == V_BOOL, pa.bool_(), n),
        raw_col,
    ]


def _binary(chunks: pa.Array | list[bytes]) -> pa.BinaryArray:
    return chunks if isinstance(chunks, pa.Array) else pa.array(chunks, pa.binary())


def keyvalues_to_arrow(chunks: pa.Array | list[bytes]) -> pa.StructArray:
    """Serialized KeyValue messages (binary array) -> ``ATTRIBUTE`` structs, one per KeyValue."""
    chunks = _binary(chunks)
    if len(chunks) < SMALL or not len(chunks):
        arrays = _rows_to_arrays(_parse_each(chunks.to_pylist(), _parse_kv))
    else:
        arrays = _parse_vectorised(chunks, keyed=True)
    return pa.StructArray.from_arrays(arrays, fields=list(ATTRIBUTE))


def anyvalues_to_arrow(
    chunks: pa.Array | list[bytes], present: np.ndarray | None = None
) -> pa.StructArray:
    """Serialized AnyValue messages -> a ``VALUE`` struct array; rows not ``present`` are null."""
    chunks = _binary(chunks)
    if len(chunks) < SMALL or not len(chunks):
        arrays = _rows_to_arrays(_parse_each(chunks.to_pylist(), _parse_av))
    else:
        arrays = _parse_vectorised(chunks, keyed=False)
    mask = None if present is None or present.all() else pa.array(~present)
    return pa.StructArray.from_arrays(arrays[1:], fields=list(VALUE), mask=mask)


# ---------------------------------------------------------------------------------------------
# encoding: Arrow -> KeyValue / AnyValue bytes

_SMALL_VARINTS: Final = [bytes([i]) for i in range(128)]
_DOUBLE: Final = struct.Struct("<d")


def varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL_VARINTS[value]
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def delimited(tag: bytes, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return tag + varint(len(payload)) + payload


def value_bytes(
    kind: int,
    text: str | None,
    integer: int | None,
    double: float | None,
    flag: bool | None,
    raw: bytes | None,
) -> bytes:
    """One VALUE row as a serialized AnyValue (canonical: fields as upb writes them)."""
    if kind == V_STRING:
        return delimited(b"\x0a", (text or "").encode())
    if kind == V_INT:
        return b"\x18" + varint(integer or 0)
    if kind == V_DOUBLE:
        return b"\x21" + _DOUBLE.pack(0.0 if double is None else double)
    if kind == V_BOOL:
        return b"\x10\x01" if flag else b"\x10\x00"
    if kind == V_BYTES:
        return delimited(b"\x3a", raw or b"")
    if kind == V_ARRAY or kind == V_KVLIST:
        return raw or b""
    return b""


def _py_values_to_bytes(values: pa.StructArray) -> list[bytes]:
    columns = [values.field(name).to_pylist() for name in _VALUE_NAMES]
    return [value_bytes(*row) for row in zip(*columns, strict=True)]


_VALUE_NAMES: Final = [f.name for f in VALUE]


def _varints(values: np.ndarray, tag: int, present: np.ndarray) -> pa.Array:
    """Per row ``tag`` + varint(value) where ``present``, else empty, as a binary array."""
    n = len(values)
    values = values.astype(np.uint64, copy=False)
    size = np.ones(n, np.int64)
    for k in range(1, 10):
        size += values >= (1 << (7 * k))
    size = np.where(present, size + 1, 0)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(size, out=offsets[1:])
    out = np.zeros(int(offsets[-1]), np.uint8)
    rows = np.flatnonzero(present)
    start = offsets[rows]
    out[start] = tag
    remaining = values[rows]
    length = size[rows] - 1
    for k in range(int(length.max(initial=0))):
        more = length > k
        byte = (remaining[more] & np.uint64(0x7F)).astype(np.uint8)
        byte[k < length[more] - 1] |= 0x80
        out[start[more] + 1 + k] = byte
        remaining = remaining >> np.uint64(7)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(out)]
    )


def _only(column: pa.Array, rows: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(rows), column.cast(pa.binary()), pa.scalar(None, pa.binary()))


def _join(*parts: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*parts, b"", null_handling="replace", null_replacement=b"")


def _anyvalue_binary(values: pa.StructArray) -> pa.Array:
    """VALUE rows -> serialized AnyValue per row (empty for V_EMPTY), vectorised."""
    n = len(values)
    types = pc.fill_null(values.field("type"), V_EMPTY).to_numpy(zero_copy_only=False)
    parts: list[pa.Array] = []
    texts = values.field("str")
    raw = values.field("bytes")
    rows = types == V_STRING
    if rows.any():
        lengths = pc.fill_null(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False)
        parts += [_varints(lengths, 0x0A, rows), _only(texts, rows)]
    rows = types == V_BYTES
    if rows.any():
        lengths = pc.fill_null(pc.binary_length(raw), 0).to_numpy(zero_copy_only=False)
        parts += [_varints(lengths, 0x3A, rows), _only(raw, rows)]
    rows = (types == V_ARRAY) | (types == V_KVLIST)
    if rows.any():
        parts.append(_only(raw, rows))
    rows = types == V_INT
    if rows.any():
        integers = pc.fill_null(values.field("int"), 0).to_numpy(zero_copy_only=False)
        parts.append(_varints(integers.view(np.uint64), 0x18, rows))
    rows = types == V_BOOL
    if rows.any():
        flags = pc.fill_null(values.field("bool"), False).to_numpy(zero_copy_only=False)
        parts.append(_varints(flags.astype(np.uint64), 0x10, rows))
    rows = types == V_DOUBLE
    if rows.any():
        doubles = pc.fill_null(values.field("double"), 0.0).to_numpy(zero_copy_only=False)
        fixed = np.zeros((n, 9), np.uint8)
        fixed[:, 0] = 0x21
        fixed[:, 1:] = np.ascontiguousarray(doubles, "<f8").view(np.uint8).reshape(n, 8)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.where(rows, 9, 0), out=offsets[1:])
        data = fixed[rows].reshape(-1)
        parts.append(
            pa.Array.from_buffers(
                pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
            )
        )
    if not parts:
        return pa.array([b""] * n, pa.binary())
    return _join(*parts) if len(parts) > 1 else pc.fill_null(parts[0], b"")


def values_to_bytes(values: pa.StructArray) -> list[bytes]:
    """A VALUE (or ATTRIBUTE) struct array -> serialized AnyValue per row (b"" for empty)."""
    if len(values) < SMALL:
        return _py_values_to_bytes(values)
    return _anyvalue_binary(values).to_pylist()


def keyvalues_to_bytes(attrs: pa.StructArray) -> list[bytes]:
    """An ATTRIBUTE struct array -> serialized KeyValue per row."""
    if len(attrs) < SMALL:
        return _py_keyvalues_to_bytes(attrs)
    keys = attrs.field("key").cast(pa.binary())
    key_lengths = pc.fill_null(pc.binary_length(keys), 0).to_numpy(zero_copy_only=False)
    value = _anyvalue_binary(attrs)
    value_lengths = pc.binary_length(value).to_numpy(zero_copy_only=False)
    # proto3 leaves an empty key out; an empty value is left unset (canonical form)
    return _join(
        _varints(key_lengths, 0x0A, key_lengths > 0),
        keys,
        _varints(value_lengths, 0x12, value_lengths > 0),
        value,
    ).to_pylist()


def _py_keyvalues_to_bytes(attrs: pa.StructArray) -> list[bytes]:
    if len(attrs) == 0:
        return []
    keys = attrs.field("key").to_pylist()
    cache: dict[tuple[str, bytes], bytes] = {}
    out = []
    for key, value in zip(keys, _py_values_to_bytes(attrs), strict=True):
        encoded = cache.get((key, value))
        if encoded is None:
            encoded = (delimited(b"\x0a", key.encode()) if key else b"") + (
                delimited(b"\x12", value) if value else b""
            )
            cache[(key, value)] = encoded
        out.append(encoded)
    return out
