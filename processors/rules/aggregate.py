"""Partial aggregates per group and their merge over a window, with pyarrow group_by.

Each batch a condition sees is reduced at once to a small table with one row per group
(or per group and bucket); a window keeps those partials and merges them when evaluated.
Three shapes:

* stats: group, n, sum, min, max (count, sum, avg, min, max; error counts for error rates);
* rate: group, series, cumulative, first, last, sum (increase per second of counters);
* buckets: group, lower, upper, n (percentiles, from histogram buckets or from values put
  in log-scale buckets of about 2 % relative width).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STATS = pa.schema(
    [
        ("group", pa.string()),
        ("n", pa.float64()),
        ("sum", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
    ]
)
RATE = pa.schema(
    [
        ("group", pa.string()),
        ("series", pa.string()),
        ("cumulative", pa.bool_()),
        ("first", pa.float64()),
        ("last", pa.float64()),
        ("sum", pa.float64()),
    ]
)
BUCKETS = pa.schema(
    [
        ("group", pa.string()),
        ("lower", pa.float64()),
        ("upper", pa.float64()),
        ("n", pa.float64()),
    ]
)
_GAMMA = 1.02
_LOG_GAMMA = math.log(_GAMMA)


def _named(out: pa.Table, schema: pa.Schema) -> pa.Table:
    """group_by output (`n_sum`, keys, ...) back to the partial's own column names."""
    columns = []
    for name in schema.names:
        found = [c for c in out.column_names if c == name or c.rsplit("_", 1)[0] == name]
        columns.append(out.column(found[0]))
    return pa.table(columns, schema=schema)


def _codes(group: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dense group codes per row and the distinct groups (a batch has few groups)."""
    encoded = pc.dictionary_encode(group)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary


def _floats(values: pa.Array | pa.ChunkedArray, fill: float) -> np.ndarray:
    return pc.fill_null(values, fill).to_numpy(zero_copy_only=False).astype(np.float64)


def stats(group: pa.Array, n: pa.Array, values: pa.Array, lo: pa.Array, hi: pa.Array) -> pa.Table:
    """One batch's stats per group. Acero's group_by costs about a millisecond per call, so
    a batch is reduced with dictionary codes and numpy instead (group_by merges windows)."""
    codes, groups = _codes(group)
    size = len(groups)
    lows = np.full(size, np.inf)
    highs = np.full(size, -np.inf)
    np.minimum.at(lows, codes, _floats(lo, np.inf))
    np.maximum.at(highs, codes, _floats(hi, -np.inf))
    return pa.table(
        {
            "group": groups,
            "n": np.bincount(codes, _floats(n, 0.0), size),
            "sum": np.bincount(codes, _floats(values, 0.0), size),
            # a group whose points carried no min/max (histograms without them) has none
            "min": pa.array(lows, mask=np.isinf(lows) & (lows > 0)),
            "max": pa.array(highs, mask=np.isinf(highs) & (highs < 0)),
        },
        schema=STATS,
    )


def merge_stats(table: pa.Table) -> pa.Table:
    out = table.group_by("group").aggregate(
        [("n", "sum"), ("sum", "sum"), ("min", "min"), ("max", "max")]
    )
    return _named(out, STATS)


def rate_partial(
    group: pa.Array, series: pa.Array, cumulative: pa.Array, values: pa.Array
) -> pa.Table:
    table = pa.table(
        {
            "group": group,
            "series": series,
            "cumulative": cumulative,
            "first": values,
            "last": values,
            "sum": values,
        }
    )
    return merge_rate(table)


def merge_rate(table: pa.Table) -> pa.Table:
    # first/last follow the input order, which is arrival order: no threads
    out = table.group_by(["group", "series", "cumulative"], use_threads=False).aggregate(
        [("first", "first"), ("last", "last"), ("sum", "sum")]
    )
    return _named(out, RATE)


def value_buckets(group: pa.Array, values: pa.Array) -> pa.Table:
    """Values into log-scale buckets (exact for 0), counted per group."""
    v = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
    magnitude = np.abs(v)
    positive = magnitude > 0
    index = np.zeros(len(v))
    index[positive] = np.floor(np.log(magnitude[positive]) / _LOG_GAMMA)
    low = np.where(positive, np.exp(index * _LOG_GAMMA), 0.0)
    high = np.where(positive, np.exp((index + 1) * _LOG_GAMMA), 0.0)
    negative = v < 0
    lower = np.where(negative, -high, low)
    upper = np.where(negative, -low, high)
    codes, groups = _codes(group)
    sign = np.sign(v).astype(np.int64)
    bucket = index.astype(np.int64)
    # one row per distinct (group, sign, bucket index), counted
    keys = np.stack([codes.astype(np.int64), sign, bucket], axis=1)
    distinct, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
    return pa.table(
        {
            "group": groups.take(pa.array(distinct[:, 0])),
            "lower": lower[first],
            "upper": upper[first],
            "n": counts.astype(np.float64),
        },
        schema=BUCKETS,
    )


def merge_buckets(table: pa.Table) -> pa.Table:
    out = table.group_by(["group", "lower", "upper"]).aggregate([("n", "sum")])
    return _named(out, BUCKETS)


def quantiles(table: pa.Table, q: float) -> dict[str, float]:
    """The q-quantile (0..1) per group, interpolated linearly inside the bucket holding it
    (as Prometheus' histogram_quantile; an open-ended bucket yields its finite bound)."""
    if table.num_rows == 0:
        return {}
    ordered = table.sort_by(
        [("group", "ascending"), ("upper", "ascending"), ("lower", "ascending")]
    )
    groups = ordered.column("group").to_pylist()
    lower = ordered.column("lower").to_numpy()
    upper = ordered.column("upper").to_numpy()
    counts = ordered.column("n").to_numpy()
    out: dict[str, float] = {}
    start = 0
    # one pass per group (groups are few); buckets within a group are numpy slices
    while start < len(groups):
        end = start
        while end < len(groups) and groups[end] == groups[start]:
            end += 1
        c = counts[start:end]
        total = c.sum()
        if total > 0:
            rank = q * total
            cum = np.cumsum(c)
            i = int(np.searchsorted(cum, rank, side="left"))
            i = min(i, len(c) - 1)
            lo, hi = lower[start + i], upper[start + i]
            before = cum[i] - c[i]
            if math.isinf(hi):
                value = lo
            elif math.isinf(lo):
                value = hi
            else:
                frac = (rank - before) / c[i] if c[i] else 1.0
                value = lo + (hi - lo) * min(max(frac, 0.0), 1.0)
            out[groups[start]] = float(value)
        start = end
    return out


@dataclass(slots=True)
class _Slot:
    start: float
    last: float
    tables: list[pa.Table] = field(default_factory=list)


class Window:
    """Partials of the last `span` seconds (arrival time), in slots of span/20 so that a
    busy stream keeps a bounded number of tables. A slot leaves the window once its newest
    data is older than the span (data may count up to span/20 longer, never shorter)."""

    def __init__(self, span: float, schema: pa.Schema) -> None:
        self.span = span
        self.schema = schema
        self.resolution = span / 20
        self._slots: deque[_Slot] = deque()
        self._merge = {STATS: merge_stats, RATE: merge_rate, BUCKETS: merge_buckets}

    def _merger(self):  # type: ignore[no-untyped-def]
        for schema, fn in self._merge.items():
            if schema.equals(self.schema):
                return fn
        raise ValueError("unknown partial shape")

    def add(self, now: float, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._slots and now - self._slots[-1].start < self.resolution:
            slot = self._slots[-1]
            slot.last = now
            slot.tables.append(table)
            if len(slot.tables) > 16:
                slot.tables = [self._merger()(pa.concat_tables(slot.tables))]
            return
        self._slots.append(_Slot(now, now, [table]))

    def collect(self, now: float) -> pa.Table:
        """Everything that arrived in (now - span, now], merged per group."""
        while self._slots and self._slots[0].last <= now - self.span:
            self._slots.popleft()
        tables = [t for slot in self._slots for t in slot.tables]
        if not tables:
            return self.schema.empty_table()
        return self._merger()(pa.concat_tables(tables))

    def clear(self) -> None:
        self._slots.clear()
