"""Per-item randomness on whole columns: the W3C trace-id randomness (its last 56 bits) and
the Collector's FNV-1a based hash_seed randomness, for fixed-size trace ids and for
variable-length attribute values."""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa

from otlp.columns import as_array

FNV_OFFSET: Final = 2166136261
FNV_PRIME: Final = 16777619
_MASK56: Final = np.uint64((1 << 56) - 1)
_HASH_BUCKETS: Final = 1 << 14
_HEX_LUT: Final = np.frombuffer(
    b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16
).copy()


def seed_state(seed: int) -> int:
    """FNV-1a state after the seed's 4 little-endian bytes (the hash's constant prefix)."""
    h = FNV_OFFSET
    for byte in seed.to_bytes(4, "little"):
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return h


def id_matrix(ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """fixed_size_binary(16) column -> (n, 16) uint8 matrix and an "empty id" mask (null or
    all zero bytes, which pdata treats alike)."""
    arr = as_array(ids)
    n = len(arr)
    width = arr.type.byte_width
    if n == 0:
        return np.zeros((0, width), np.uint8), np.zeros(0, np.bool_)
    raw = np.frombuffer(arr.buffers()[1], np.uint8, count=(arr.offset + n) * width)
    matrix = raw[arr.offset * width :].reshape(n, width)
    empty = ~matrix.any(axis=1)
    if arr.null_count:
        empty |= arr.is_null().to_numpy(zero_copy_only=False)
    return matrix, empty


def trace_id_randomness(matrix: np.ndarray) -> np.ndarray:
    """TraceIDToRandomness: bytes 9..15 of the id as a big-endian 56-bit number."""
    low = np.ascontiguousarray(matrix[:, 8:16]).view(">u8").reshape(-1).astype(np.uint64)
    return low & _MASK56


def _fnv_fixed(matrix: np.ndarray, state: int) -> np.ndarray:
    h = np.full(len(matrix), state, np.uint32)
    prime = np.uint32(FNV_PRIME)
    for j in range(matrix.shape[1]):
        h ^= matrix[:, j]
        h *= prime  # wraps modulo 2**32, like Go's uint32
    return h


def fnv_binary(values: pa.Array, state: int) -> np.ndarray:
    """FNV-1a (continuing from ``state``) of every value of a binary column."""
    arr = as_array(values).cast(pa.binary())
    n = len(arr)
    h = np.full(n, state, np.uint32)
    if n == 0:
        return h
    offsets = np.frombuffer(arr.buffers()[1], np.int32, count=arr.offset + n + 1)[arr.offset :]
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1].astype(np.int64)
    lengths = np.diff(offsets).astype(np.int64)
    # longest first, so the rows still being hashed at byte j are a prefix of `order`
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    prime = np.uint32(FNV_PRIME)
    for j in range(int(sorted_lengths[0]) if n else 0):
        active = order[: int(np.searchsorted(-sorted_lengths, -j, side="left"))]
        h[active] = (h[active] ^ data[starts[active] + j]) * prime
    return h


def hash_randomness(hashed32: np.ndarray) -> np.ndarray:
    """randomnessFromBytes: a 56-bit value whose top 14 bits make the hash_seed decision
    take the form threshold <= randomness of the consistent modes."""
    h = hashed32.astype(np.uint64)
    hashed = h & np.uint64(_HASH_BUCKETS - 1)
    rprime14 = np.uint64(_HASH_BUCKETS - 1) - hashed
    # (the Collector shifts by 32 - 14, so only the top 14 bits take part, despite the name)
    unused18 = h >> np.uint64(32 - 14)
    mixed28 = unused18 ^ (unused18 << np.uint64(10))
    return (rprime14 << np.uint64(42)) | (mixed28 << np.uint64(14)) | hashed


def hash_trace_ids(matrix: np.ndarray, state: int) -> np.ndarray:
    return hash_randomness(_fnv_fixed(matrix, state))


def rvalue_strings(randomness: np.ndarray) -> pa.StringArray:
    """56-bit values -> 14 lowercase hex digits each."""
    n = len(randomness)
    if n == 0:
        return pa.array([], pa.string())
    raw = randomness.astype(">u8").view(np.uint8).reshape(n, 8)[:, 1:]
    text = _HEX_LUT[raw].tobytes()
    offsets = np.arange(0, (n + 1) * 14, 14, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))
