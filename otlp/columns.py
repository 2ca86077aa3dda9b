"""Vectorised column helpers shared by exporters: ids as hex, attributes as string maps,
AnyValues as strings, OTLP nanosecond times as Arrow timestamps.

Strings follow the OTel Collector's pdata rendering (``pcommon.Value.AsString``), so a
column written here holds what the Collector's exporters write: ints in decimal, doubles
as ES6 numbers ("1.5", "1e-7", "NaN", "Infinity"), bools "true"/"false", bytes in base64,
arrays and maps as the JSON the decoder stored in ``VALUE.str``.

Everything works on whole columns (numpy lookups, ``pyarrow.compute`` kernels); only
values Arrow cannot format the Go way (bytes, very large doubles, NaN/Inf) go through
Python, one value at a time, and those are rare in telemetry.
"""

from __future__ import annotations

import base64
import math
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import V_BOOL, V_BYTES, V_DOUBLE, V_INT

ArrayLike = pa.Array | pa.ChunkedArray

# byte value -> its two lowercase hex digits, as one uint16 in native byte order, so a
# fancy-indexing lookup over an (n, width) byte matrix yields the hex text directly
_HEX_LUT: Final = np.frombuffer(
    b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16
).copy()
_INT64_MAX: Final = 2**63 - 1
_UINT32_MAX: Final = 2**32 - 1
# Arrow's float->string cast switches to exponent notation from 1e10 on, where Go's
# AsString keeps positional digits up to 1e21; values at or above this go through Python.
_ARROW_POSITIONAL_LIMIT: Final = 1e9


def as_array(column: ArrayLike) -> pa.Array:
    """One contiguous Array (record batches hand out ChunkedArrays)."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            return column.chunk(0)
        return column.combine_chunks()
    return column


def fill_null(column: ArrayLike, value: object) -> pa.Array:
    """``pc.fill_null`` that skips the kernel call (tens of µs) when nothing is null."""
    arr = as_array(column)
    if not arr.null_count:
        return arr
    return pc.fill_null(arr, value)


def hex_ids(ids: ArrayLike, *, empty_as_zeros: bool = False) -> pa.StringArray:
    """fixed_size_binary ids (trace ids, span ids) -> lowercase hex strings.

    Null and all-zero ids become "" (pdata's TraceIDToHexOrEmptyString), or with
    ``empty_as_zeros`` a string of zeros (what hex.EncodeToString gives for an empty id,
    e.g. the clickhouseexporter's exemplar ids).
    """
    arr = as_array(ids)
    n = len(arr)
    width = arr.type.byte_width
    if n == 0:
        return pa.array([], pa.string())
    data = arr.buffers()[1]
    raw = np.frombuffer(data, dtype=np.uint8, count=(arr.offset + n) * width)
    raw = raw[arr.offset * width :].reshape(n, width)
    hexed = _HEX_LUT[raw]
    nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    if empty_as_zeros:
        if nulls is not None:
            hexed[nulls] = _HEX_LUT[0]
        offsets = np.arange(0, (n + 1) * 2 * width, 2 * width, dtype=np.int32)
        text = hexed.tobytes()
    else:
        empty = ~raw.any(axis=1)
        if nulls is not None:
            empty |= nulls
        if empty.any():
            keep = ~empty
            text = hexed[keep].tobytes()
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(np.where(keep, 2 * width, 0), out=offsets[1:])
        else:
            text = hexed.tobytes()
            offsets = np.arange(0, (n + 1) * 2 * width, 2 * width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def go_float_string(value: float) -> str:
    """One double as pcommon's float64AsString (ES6 number to string) renders it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = np.format_float_scientific(value, unique=True, trim="-", exp_digits=2)
        mantissa, _, exponent = text.partition("e")
        # Go pads the exponent to two digits, then AsString trims "e-07" to "e-7"
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{mantissa}e{exponent}"
    return np.format_float_positional(value, unique=True, trim="-")


def double_strings(values: ArrayLike) -> pa.StringArray:
    """float64 column -> strings as Go's AsString renders doubles (nulls stay null)."""
    arr = as_array(values)
    out = pc.cast(arr, pa.string())
    finite_small = pc.less(pc.abs(arr), _ARROW_POSITIONAL_LIMIT)
    # NaN compares false, so it lands in the Python path with the large values
    slow = pc.invert(pc.fill_null(finite_small, True))
    if not pc.any(slow).as_py():
        return out
    mask = slow.to_numpy(zero_copy_only=False)
    texts = out.to_pylist()
    for i in np.flatnonzero(mask):
        texts[i] = go_float_string(arr[i].as_py())
    return pa.array(texts, pa.string())


def _bytes_strings(values: pa.Array, rows: np.ndarray, size: int) -> pa.StringArray:
    """base64 of values[rows] placed at rows, null elsewhere."""
    texts: list[str | None] = [None] * size
    for i in rows:
        raw = values[i].as_py()
        texts[i] = base64.b64encode(raw).decode("ascii") if raw is not None else ""
    return pa.array(texts, pa.string())


def value_to_string(values: ArrayLike) -> pa.StringArray:
    """VALUE (or ATTRIBUTE) structs -> AsString() text; an empty or null value is ""."""
    arr = as_array(values)
    n = len(arr)
    if n == 0:
        return pa.array([], pa.string())
    types = fill_null(pc.struct_field(arr, "type"), 0).to_numpy(zero_copy_only=False)
    # str holds strings and the JSON of arrays and maps; the other kinds are formatted, only
    # on their own rows (most values are strings), and put in place with one mask
    text = fill_null(pc.struct_field(arr, "str"), "")

    def field(name: str, rows: np.ndarray) -> pa.Array:
        return pc.filter(pc.struct_field(arr, name), pa.array(rows))

    kinds = (
        (V_INT, lambda rows: pc.cast(field("int", rows), pa.string())),
        (V_DOUBLE, lambda rows: double_strings(field("double", rows))),
        (V_BOOL, lambda rows: pc.cast(field("bool", rows), pa.string())),
        (
            V_BYTES,
            lambda rows: _bytes_strings(
                field("bytes", rows), np.arange(int(rows.sum())), int(rows.sum())
            ),
        ),
    )
    positions: list[np.ndarray] = []
    rendered: list[pa.Array] = []
    for kind, render in kinds:
        rows = types == kind
        if rows.any():
            positions.append(np.flatnonzero(rows))
            rendered.append(fill_null(render(rows), ""))
    if not rendered:
        return text
    where = np.concatenate(positions)
    mask = np.zeros(n, dtype=bool)
    mask[where] = True
    in_row_order = pa.concat_arrays(rendered).take(pa.array(np.argsort(where, kind="stable")))
    return pc.replace_with_mask(text, pa.array(mask), in_row_order)


def list_offsets(lists: ArrayLike) -> pa.Int32Array:
    """Offsets of a list column with null lists counted as empty, starting at 0, so they
    fit ``pc.list_flatten(lists)`` (which skips nulls) whatever the input's slicing."""
    arr = as_array(lists)
    if not arr.null_count:
        offsets = arr.offsets
        if offsets[0].as_py() == 0:
            return offsets
        return pc.subtract(offsets, offsets[0])
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(arr) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.array(offsets, pa.int32())


def relist(offsets: pa.Int32Array, values: pa.Array) -> pa.ListArray:
    """Wrap per-element values back into the list shape given by ``list_offsets``."""
    return pa.ListArray.from_arrays(offsets, values)


def attributes_to_string_map(attributes: ArrayLike) -> pa.MapArray:
    """list<ATTRIBUTE> -> map<string, string> with AsString() values; null lists -> {}."""
    arr = as_array(attributes)
    offsets = list_offsets(arr)
    items = pc.list_flatten(arr)
    keys = fill_null(pc.struct_field(items, "key"), "")
    return pa.MapArray.from_arrays(offsets, keys, value_to_string(items))


def timestamps_ns(nanos: ArrayLike) -> pa.TimestampArray:
    """uint64 Unix nanoseconds -> timestamp('ns'); null -> epoch. Values past 2262 (beyond
    int64 nanoseconds) are clamped to the largest representable instant."""
    arr = fill_null(nanos, 0)
    if pa.types.is_unsigned_integer(arr.type):
        arr = pc.min_element_wise(arr, pa.scalar(_INT64_MAX, arr.type))
    return pc.cast(pc.cast(arr, pa.int64()), pa.timestamp("ns"))


def timestamps_s(nanos: ArrayLike) -> pa.TimestampArray:
    """uint64 Unix nanoseconds -> timestamp('s') truncated to whole seconds and clamped
    to what a ClickHouse DateTime (UInt32 seconds) holds; null -> epoch."""
    arr = fill_null(nanos, 0)
    seconds = pc.divide(pc.cast(arr, pa.uint64()), pa.scalar(1_000_000_000, pa.uint64()))
    seconds = pc.min_element_wise(seconds, pa.scalar(_UINT32_MAX, pa.uint64()))
    return pc.cast(pc.cast(seconds, pa.int64()), pa.timestamp("s"))


def lookup_strings(codes: ArrayLike, names: list[str], default: str = "") -> pa.StringArray:
    """Small-integer enum column -> names[code]; null -> names[0]; out of range -> default."""
    arr = fill_null(codes, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    table = pa.array([*names, default], pa.string())
    index = np.where((arr >= 0) & (arr < len(names)), arr, len(names))
    return table.take(pa.array(index))
