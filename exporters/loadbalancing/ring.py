"""Consistent hashing: each backend owns `points` pseudo-random positions on a 32-bit ring
and a key goes to the owner of the first position at or after the key's hash. Adding or
removing one backend only moves the keys of the arcs it gains or loses (about 1/N of them).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_POINTS = 160


def key_hash(key: bytes) -> int:
    return zlib.crc32(key)


class HashRing:
    def __init__(self, endpoints: Iterable[str], points: int = DEFAULT_POINTS) -> None:
        self.endpoints: tuple[str, ...] = tuple(sorted(set(endpoints)))
        positions: list[tuple[int, int]] = []
        for owner, endpoint in enumerate(self.endpoints):
            for i in range(points):
                positions.append((zlib.crc32(f"{endpoint}#{i}".encode()), owner))
        positions.sort()
        self._positions = np.array([p for p, _ in positions], dtype=np.uint64)
        self._owners = np.array([o for _, o in positions], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.endpoints)

    def locate(self, hashes: Sequence[int] | np.ndarray) -> np.ndarray:
        """Index into `endpoints` of the owner of each hash."""
        if not self.endpoints:
            raise LookupError("no backends")
        where = np.searchsorted(self._positions, np.asarray(hashes, dtype=np.uint64))
        where[where == len(self._positions)] = 0  # past the last position: wrap around
        return self._owners[where]

    def endpoint_for(self, key: bytes) -> str:
        return self.endpoints[int(self.locate([key_hash(key)])[0])]
