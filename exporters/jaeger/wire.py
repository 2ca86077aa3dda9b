"""Protobuf encoding on whole columns, so that a message per row (a Jaeger span, tag or log)
is built by a handful of numpy and Arrow calls instead of a Python loop over rows: `Rows`
assembles the numeric and constant parts of every row (field tags, varints, fixed-width ids)
in numpy, `concat` joins them with the variable-length parts (strings, nested messages) row
by row, and `join_rows` concatenates the items of each list row without copying.

Binary arrays here have no nulls: an absent optional field is an empty value, which
concatenates to nothing.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BINARY: Final = pa.binary()
EMPTY: Final = pa.scalar(b"", BINARY)
_ONE_BYTE: Final = np.uint64(0x80)


def _binary(n: int, offsets: np.ndarray, data: np.ndarray | bytes) -> pa.BinaryArray:
    return pa.BinaryArray.from_buffers(
        BINARY, n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    )


# a value needs k + 1 bytes when it is at least _THRESHOLDS[k - 1]
_THRESHOLDS: Final = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
_SHIFTS: Final = np.arange(0, 70, 7, dtype=np.uint64)


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes each uint64 value's varint takes (1 to 10)."""
    v = np.asarray(values).astype(np.uint64, copy=False)
    return np.searchsorted(_THRESHOLDS, v, side="right").astype(np.int64) + 1


def _varint_matrix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, widest) uint8 varint bytes (row-major, left-aligned) and each row's size."""
    v = np.ascontiguousarray(values).astype(np.uint64, copy=False)
    if len(v) == 0 or int(v.max()) < 0x80:
        return v.astype(np.uint8).reshape(-1, 1), np.ones(len(v), dtype=np.int64)
    sizes = varint_sizes(v)
    widest = int(sizes.max())
    groups = (v[:, None] >> _SHIFTS[:widest]) & np.uint64(0x7F)
    groups |= np.where(np.arange(widest) < (sizes - 1)[:, None], _ONE_BYTE, np.uint64(0))
    return groups.astype(np.uint8), sizes


class Rows:
    """Builds a short byte string per row out of pieces that are numbers or constants
    (field tags, varints, fixed-width ids), entirely in numpy: each piece is a (rows, width)
    byte matrix with a length per row, and `build` keeps the first `length` bytes of each
    piece, row by row. Pieces given `rows` are left out on the other rows."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pieces: list[tuple[np.ndarray, np.ndarray]] = []

    def _add(self, matrix: np.ndarray, sizes: np.ndarray, rows: np.ndarray | None) -> Rows:
        if rows is not None:
            sizes = np.where(rows, sizes, 0)
        self.pieces.append((matrix, sizes))
        return self

    def const(self, value: bytes, rows: np.ndarray | None = None) -> Rows:
        matrix = np.broadcast_to(np.frombuffer(value, dtype=np.uint8), (self.n, len(value)))
        return self._add(matrix, np.full(self.n, len(value), dtype=np.int64), rows)

    def choose(self, table: list[bytes], codes: np.ndarray, rows: np.ndarray | None = None) -> Rows:
        """table[code] on each row."""
        width = max([1, *(len(entry) for entry in table)])
        padded = np.zeros((len(table), width), dtype=np.uint8)
        for i, entry in enumerate(table):
            padded[i, : len(entry)] = np.frombuffer(entry, dtype=np.uint8)
        sizes = np.array([len(entry) for entry in table], dtype=np.int64)
        return self._add(padded[codes], sizes[codes], rows)

    def varint(self, values: np.ndarray, rows: np.ndarray | None = None) -> Rows:
        matrix, sizes = _varint_matrix(values)
        return self._add(matrix, sizes, rows)

    def fixed(self, matrix: np.ndarray, rows: np.ndarray | None = None) -> Rows:
        return self._add(matrix, np.full(self.n, matrix.shape[1], dtype=np.int64), rows)

    def extend(self, other: Rows) -> Rows:
        """Append another builder's pieces (of the same rows)."""
        self.pieces.extend(other.pieces)
        return self

    def size(self) -> np.ndarray:
        total = np.zeros(self.n, dtype=np.int64)
        for _, sizes in self.pieces:
            total += sizes
        return total

    def build(self) -> pa.BinaryArray:
        n = self.n
        if not self.pieces or n == 0:
            return _binary(n, np.zeros(n + 1, dtype=np.int64), b"")
        matrix = np.concatenate([m for m, _ in self.pieces], axis=1)
        keep = np.concatenate(
            [np.arange(m.shape[1]) < sizes[:, None] for m, sizes in self.pieces], axis=1
        )
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(self.size(), out=offsets[1:])
        return _binary(n, offsets, matrix[keep].tobytes())


def lengths(values: pa.Array) -> np.ndarray:
    return pc.binary_length(values).to_numpy(zero_copy_only=False).astype(np.uint64)


def concat(*parts: pa.Array | pa.Scalar) -> pa.BinaryArray:
    """Row-wise concatenation (scalars repeat on every row)."""
    return pc.binary_join_element_wise(*parts, EMPTY, null_handling="replace", null_replacement="")


def where(mask: np.ndarray | pa.Array, values: pa.Array | pa.Scalar) -> pa.BinaryArray:
    """values where mask, empty elsewhere."""
    return pc.if_else(pa.array(mask, pa.bool_()), values, EMPTY)


def value_offsets(values: pa.BinaryArray) -> np.ndarray:
    """The n + 1 offsets of a binary array's values into its data buffer."""
    n = len(values)
    raw = np.frombuffer(values.buffers()[1], dtype=np.int32, count=values.offset + n + 1)
    return raw[values.offset :]


def join_rows(row_offsets: np.ndarray, values: pa.BinaryArray) -> pa.BinaryArray:
    """Per row r, values[row_offsets[r]:row_offsets[r + 1]] concatenated. The values of
    consecutive rows are adjacent in the data buffer, so this only picks new offsets."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    n = len(row_offsets) - 1
    if len(values) == 0:
        return _binary(n, np.zeros(n + 1, dtype=np.int32), b"")
    offsets = value_offsets(values)[np.asarray(row_offsets)]
    return pa.BinaryArray.from_buffers(
        BINARY, n, [None, pa.py_buffer(offsets.astype(np.int32)), values.buffers()[2]]
    )


def to_binary(column: pa.Array) -> pa.BinaryArray:
    """string or binary column → binary, null as empty."""
    if column.null_count:
        column = pc.fill_null(column, "" if pa.types.is_string(column.type) else b"")
    return column.cast(BINARY)


def doubles_le(values: np.ndarray) -> pa.BinaryArray:
    """float64 values → their 8 little-endian bytes (protobuf's fixed64 double)."""
    raw = np.ascontiguousarray(values, dtype="<f8").tobytes()
    n = len(values)
    return _binary(n, np.arange(0, 8 * (n + 1), 8), raw)
