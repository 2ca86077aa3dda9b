"""Conditions compiled against batches: each reduces a batch to partial aggregates per
group (whole-column pyarrow/numpy work, no per-record Python) and, at evaluation, its
window to one value per group, compared to the threshold."""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import (
    M_SUM,
    METRICS_SIGNAL,
    TRACES,
    Batch,
)
from otlp.columns import as_array, list_offsets, value_to_string
from otlp.ottl import Condition
from processors.rules import aggregate as agg
from processors.rules.config import LogCondition, MetricCondition, RuleCondition, TraceCondition
from processors.rules.labels import Memo, group_column, label_values, match_mask

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "lt": operator.lt,
    "eq": operator.eq,
    "ne": operator.ne,
    "gte": operator.ge,
    "lte": operator.le,
}
_CUMULATIVE = 2


def _resource_rows(batch: Batch, scope_rows: np.ndarray) -> np.ndarray:
    scopes = as_array(batch.scopes.column("resource_index")).to_numpy(zero_copy_only=False)
    return scopes[scope_rows] if len(scope_rows) else np.zeros(0, np.int64)


class Compiled:
    """One condition of one rule, with its window."""

    signal: str
    shape: pa.Schema

    def __init__(self, spec: RuleCondition, group_by: list[str]) -> None:
        self.spec = spec
        self.group_by = list(group_by)
        self.window = agg.Window(spec.window, self.shape)
        self.compare = COMPARE[spec.operator]

    def retarget(self, spec: RuleCondition) -> None:
        """A reloaded condition that aggregates the same data: new comparison, same window."""
        self.spec = spec
        self.compare = COMPARE[spec.operator]

    def observe(self, memo: Memo, now: float) -> None:
        partial = self.partial(memo)
        if partial is not None:
            self.window.add(now, partial)

    def partial(self, memo: Memo) -> pa.Table | None:
        raise NotImplementedError

    def values(self, now: float) -> dict[str, float]:
        raise NotImplementedError

    def verdicts(self, now: float) -> dict[str, tuple[bool, float]]:
        """group key → (condition holds, value)."""
        threshold = self.spec.threshold
        return {k: (self.compare(v, threshold), v) for k, v in self.values(now).items()}


class _StatsValues:
    """value per group from a stats window."""

    @staticmethod
    def pick(table: pa.Table, aggregation: str, span: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for row in table.to_pylist():
            n, total = row["n"], row["sum"]
            if aggregation == "count":
                out[row["group"]] = n
            elif aggregation == "rate":
                out[row["group"]] = n / span
            elif aggregation == "sum":
                out[row["group"]] = total
            elif aggregation == "avg":
                if n:
                    out[row["group"]] = total / n
            elif row[aggregation] is not None:
                out[row["group"]] = row[aggregation]
        return out


class MetricCompiled(Compiled):
    signal = METRICS_SIGNAL

    def __init__(self, spec: MetricCondition, group_by: list[str]) -> None:
        kind = spec.aggregation
        self.shape = (
            agg.BUCKETS if kind == "percentile" else agg.RATE if kind == "rate" else agg.STATS
        )
        super().__init__(spec, group_by)
        self.mspec = spec

    def partial(self, memo: Memo) -> pa.Table | None:
        batch = memo.batch
        if batch.signal != METRICS_SIGNAL:
            return None
        metrics = batch.tables["metrics"]
        hit = pc.fill_null(pc.equal(metrics.column("name"), self.mspec.metric), False)
        wanted = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
        if not len(wanted):
            return None
        metric_scope = as_array(metrics.column("scope_index")).to_numpy(zero_copy_only=False)
        temporality = pc.fill_null(metrics.column("aggregation_temporality"), 0).to_numpy()
        monotonic = pc.fill_null(metrics.column("is_monotonic"), False).to_numpy(
            zero_copy_only=False
        )
        types = as_array(metrics.column("type")).to_numpy(zero_copy_only=False)
        parts = []
        for name in ("gauge", "sum", "histogram", "exponential_histogram"):
            table = batch.tables[name]
            if not table.num_rows:
                continue
            metric_rows = as_array(table.column("metric_index")).to_numpy(zero_copy_only=False)
            keep = np.isin(metric_rows, wanted)
            if not keep.any():
                continue
            if not keep.all():
                table = table.filter(pa.array(keep))
                metric_rows = metric_rows[keep]
            resource_rows = _resource_rows(batch, metric_scope[metric_rows])
            attributes = table.column("attributes")

            def value_of(key: str, attributes=attributes, resource_rows=resource_rows) -> pa.Array:
                return label_values(key, attributes, batch.resources, resource_rows)

            mask = np.ones(table.num_rows, np.bool_)
            for m in self.mspec.match:
                mask &= match_mask(value_of(m.key), m.op, m.value)
            if not mask.any():
                continue
            group = group_column([value_of(k) for k in self.group_by], table.num_rows)
            if not mask.all():
                sel = pa.array(mask)
                table, group = table.filter(sel), group.filter(sel)
                metric_rows, resource_rows = metric_rows[mask], resource_rows[mask]
            series = None
            if self.mspec.aggregation == "rate":
                series = _series(group, table.column("attributes"), batch.resources, resource_rows)
            part = self._points(
                name, table, group, series, metric_rows, temporality, monotonic, types
            )
            if part is not None and part.num_rows:
                parts.append(part)
        if not parts:
            return None
        return pa.concat_tables(parts)

    def _points(
        self,
        name: str,
        table: pa.Table,
        group: pa.Array,
        series: pa.Array | None,
        metric_rows: np.ndarray,
        temporality: np.ndarray,
        monotonic: np.ndarray,
        types: np.ndarray,
    ) -> pa.Table | None:
        kind = self.mspec.aggregation
        if name in ("gauge", "sum"):
            values = pc.if_else(
                pc.equal(table.column("value_type"), 2),
                pc.cast(table.column("as_int"), pa.float64()),
                table.column("as_double"),
            )
            values = as_array(values)
            if kind == "percentile":
                return agg.value_buckets(group, values)
            if kind == "rate":
                cumulative = (
                    (types[metric_rows] == M_SUM)
                    & (temporality[metric_rows] == _CUMULATIVE)
                    & monotonic[metric_rows]
                )
                assert series is not None
                return agg.rate_partial(group, series, pa.array(cumulative), values)
            ones = pa.array(np.ones(len(values)), pa.float64())
            return agg.stats(group, ones, values, values, values)
        # histograms
        if kind == "rate":
            return None
        if kind == "percentile":
            if name == "histogram":
                return _explicit_buckets(table, group)
            return _exponential_buckets(table, group)
        count = pc.cast(table.column("count"), pa.float64())
        return agg.stats(
            group, count, table.column("sum"), table.column("min"), table.column("max")
        )

    def values(self, now: float) -> dict[str, float]:
        table = self.window.collect(now)
        kind = self.mspec.aggregation
        if kind == "percentile":
            return agg.quantiles(table, self.mspec.percentile / 100)
        if kind == "rate":
            return _rates(table, self.spec.window)
        return _StatsValues.pick(table, kind, self.spec.window)


def _joined_attributes(attributes: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each row's attributes as one "k=v,k=v" string."""
    arr = as_array(attributes)
    offsets = list_offsets(arr)
    items = pc.list_flatten(arr)
    pairs = pc.binary_join_element_wise(
        pc.fill_null(pc.struct_field(items, "key"), ""), value_to_string(items), "="
    )
    return pc.fill_null(pc.binary_join(pa.ListArray.from_arrays(offsets, pairs), ","), "")


def _series(
    group: pa.Array, attributes: pa.ChunkedArray, resources: pa.Table, resource_rows: np.ndarray
) -> pa.Array:
    """A key per data point's series: its resource's and its own attributes."""
    resource = _joined_attributes(resources.column("attributes")).take(pa.array(resource_rows))
    return pc.binary_join_element_wise(group, resource, _joined_attributes(attributes), "|")


def _rates(table: pa.Table, span: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in table.to_pylist():
        if row["cumulative"]:
            increase = row["last"] - row["first"]
            # a counter reset: what was counted since the reset
            if increase < 0:
                increase = row["last"]
        else:
            increase = row["sum"]
        out[row["group"]] = out.get(row["group"], 0.0) + increase
    return {k: v / span for k, v in out.items()}


def _explicit_buckets(table: pa.Table, group: pa.Array) -> pa.Table:
    counts = as_array(table.column("bucket_counts"))
    bounds = as_array(table.column("explicit_bounds"))
    c_off = list_offsets(counts).to_numpy(zero_copy_only=False)
    b_off = list_offsets(bounds).to_numpy(zero_copy_only=False)
    flat_counts = pc.list_flatten(counts).to_numpy(zero_copy_only=False).astype(np.float64)
    flat_bounds = pc.list_flatten(bounds).to_numpy(zero_copy_only=False).astype(np.float64)
    n_buckets = np.diff(c_off)
    n_bounds = np.diff(b_off)
    # a point with bucket_counts holds len(bounds)+1 buckets; others carry no distribution
    valid = (n_buckets == n_bounds + 1) & (n_buckets > 0)
    point = np.repeat(np.arange(len(n_buckets)), n_buckets)
    position = np.arange(len(flat_counts)) - c_off[:-1][point]
    ok = valid[point]
    # bucket i is (bounds[i-1], bounds[i]]; the first starts at 0 (or its bound if
    # negative), the last is open-ended
    bound_at = b_off[:-1][point] + position
    last = position == n_bounds[point]
    upper = np.where(
        last,
        np.inf,
        flat_bounds[np.minimum(bound_at, len(flat_bounds) - 1)] if len(flat_bounds) else np.inf,
    )
    first = position == 0
    prev = flat_bounds[np.maximum(bound_at - 1, 0)] if len(flat_bounds) else np.zeros(len(position))
    lower = np.where(first, np.minimum(0.0, upper), prev)
    keep = ok & (flat_counts > 0)
    rows = pa.table(
        {
            "group": group.take(pa.array(point[keep])),
            "lower": lower[keep],
            "upper": upper[keep],
            "n": flat_counts[keep],
        }
    )
    return agg.merge_buckets(rows)


def _exponential_buckets(table: pa.Table, group: pa.Array) -> pa.Table:
    scale = pc.fill_null(table.column("scale"), 0).to_numpy().astype(np.float64)
    base = np.power(2.0, np.power(2.0, -scale))
    pieces = []
    for side, sign in (("positive", 1.0), ("negative", -1.0)):
        counts = as_array(table.column(f"{side}_bucket_counts"))
        offsets = list_offsets(counts).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(counts).to_numpy(zero_copy_only=False).astype(np.float64)
        point = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        index = np.arange(len(flat)) - offsets[:-1][point]
        index = index + pc.fill_null(table.column(f"{side}_offset"), 0).to_numpy()[point]
        low = np.power(base[point], index)
        high = np.power(base[point], index + 1)
        lower, upper = (low, high) if sign > 0 else (-high, -low)
        keep = flat > 0
        pieces.append((point[keep], lower[keep], upper[keep], flat[keep]))
    zero = pc.fill_null(table.column("zero_count"), 0).to_numpy().astype(np.float64)
    zp = np.flatnonzero(zero > 0)
    pieces.append((zp, np.zeros(len(zp)), np.zeros(len(zp)), zero[zp]))
    point = np.concatenate([p[0] for p in pieces]).astype(np.int64)
    rows = pa.table(
        {
            "group": group.take(pa.array(point)),
            "lower": np.concatenate([p[1] for p in pieces]),
            "upper": np.concatenate([p[2] for p in pieces]),
            "n": np.concatenate([p[3] for p in pieces]),
        }
    )
    return agg.merge_buckets(rows)


def _record_groups(
    memo: Memo, context: str, group_by: list[str], special: dict[str, str]
) -> pa.Array:
    """Each log record's or span's group label (attributes, then resource attributes; the
    `special` labels name columns of the record itself), computed once per batch."""
    rows = memo.rows(context)

    def compute() -> pa.Array:
        table = rows.table
        columns = {label: table.column(name) for label, name in special.items()}
        resource = rows.index["resource"]
        attributes = table.column("attributes")
        return group_column(
            [
                label_values(k, attributes, memo.batch.resources, resource, columns)
                for k in group_by
            ],
            rows.n,
        )

    return memo.group(context, group_by, compute)


class LogCompiled(Compiled):
    signal = "logs"
    shape = agg.STATS

    def __init__(self, spec: LogCondition, group_by: list[str]) -> None:
        super().__init__(spec, group_by)
        self.lspec = spec
        self.condition = Condition(spec.condition, "log") if spec.condition else None

    def partial(self, memo: Memo) -> pa.Table | None:
        batch = memo.batch
        if batch.signal != "logs" or not batch.tables["logs"].num_rows:
            return None
        rows = memo.rows("log")
        group = _record_groups(memo, "log", self.group_by, {"severity_text": "severity_text"})
        if self.condition is not None:
            mask = self.condition.evaluate(rows)
            if not mask.any():
                return None
            group = group.filter(pa.array(mask))
        ones = pa.array(np.ones(len(group)), pa.float64())
        return agg.stats(group, ones, ones, ones, ones)

    def values(self, now: float) -> dict[str, float]:
        return _StatsValues.pick(self.window.collect(now), self.lspec.aggregation, self.spec.window)


class TraceCompiled(Compiled):
    signal = TRACES

    def __init__(self, spec: TraceCondition, group_by: list[str]) -> None:
        self.shape = agg.STATS if spec.measure == "error_rate" else agg.BUCKETS
        super().__init__(spec, group_by)
        self.tspec = spec
        self.condition = Condition(spec.condition, "span") if spec.condition else None

    def partial(self, memo: Memo) -> pa.Table | None:
        batch = memo.batch
        if batch.signal != TRACES or not batch.tables["spans"].num_rows:
            return None
        rows = memo.rows("span")
        table = rows.table

        group = _record_groups(
            memo, "span", self.group_by, {"span.name": "name", "operation": "name"}
        )
        if self.condition is not None:
            mask = self.condition.evaluate(rows)
            if not mask.any():
                return None
            sel = pa.array(mask)
            table, group = table.filter(sel), group.filter(sel)
        if self.tspec.measure == "error_rate":
            errors = pc.cast(
                pc.fill_null(pc.equal(table.column("status_code"), 2), False), pa.float64()
            )
            ones = pa.array(np.ones(len(group)), pa.float64())
            return agg.stats(group, ones, as_array(errors), ones, ones)
        start = pc.cast(pc.fill_null(table.column("start_time_unix_nano"), 0), pa.float64())
        end = pc.cast(pc.fill_null(table.column("end_time_unix_nano"), 0), pa.float64())
        millis = pc.divide(pc.max_element_wise(pc.subtract(end, start), 0.0), 1e6)
        return agg.value_buckets(group, as_array(millis))

    def values(self, now: float) -> dict[str, float]:
        table = self.window.collect(now)
        if self.tspec.measure == "latency":
            return agg.quantiles(table, self.tspec.percentile / 100)
        out = {}
        for row in table.to_pylist():
            if row["n"] >= self.tspec.min_spans:
                out[row["group"]] = row["sum"] / row["n"]
        return out


def compile_condition(spec: RuleCondition, group_by: list[str]) -> Compiled:
    if isinstance(spec, MetricCondition):
        return MetricCompiled(spec, group_by)
    if isinstance(spec, LogCondition):
        return LogCompiled(spec, group_by)
    return TraceCompiled(spec, group_by)
