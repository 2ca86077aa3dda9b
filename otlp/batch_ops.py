"""Whole-batch operations: concatenate, split by item count, keep a subset of records.

All three keep the index invariants of ``otlp.batch``: every ``resource_index``,
``scope_index`` and ``metric_index`` points at a row of the batch it is in. Splitting and
filtering prune resources, scopes and metrics that no remaining record references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import METRICS_SIGNAL, POINT_TABLES, RECORD_TABLES, Batch

Selection = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[bool] | Sequence[int]


def context_key(batch: Batch) -> tuple[tuple[str, str], ...]:
    """A hashable key of the batch's request context: only batches with equal keys may merge."""
    return tuple(sorted(batch.context.items()))


def _main_table(signal: str) -> str:
    return next(iter(RECORD_TABLES[signal]))


def _index(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy().astype(np.int64, copy=False)


def _set_index(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    position = table.schema.get_field_index(name)
    return table.set_column(
        position, table.schema.field(name), pa.array(values.astype(np.int32, copy=False))
    )


def concat(batches: Sequence[Batch]) -> Batch:
    """One batch holding the records of all ``batches`` (same signal, same context)."""
    if not batches:
        raise ValueError("concat() needs at least one batch")
    first = batches[0]
    if len(batches) == 1:
        return first
    key = context_key(first)
    for batch in batches[1:]:
        if batch.signal != first.signal:
            raise ValueError(f"cannot concat {batch.signal} with {first.signal} batches")
        if context_key(batch) != key:
            raise ValueError("cannot concat batches with different contexts (see context_key)")
    # where each batch's resources, scopes and metrics start in the result
    starts = {"resource_index": [0], "scope_index": [0], "metric_index": [0]}
    for batch in batches[:-1]:
        starts["resource_index"].append(starts["resource_index"][-1] + batch.resources.num_rows)
        starts["scope_index"].append(starts["scope_index"][-1] + batch.scopes.num_rows)
        metrics = batch.tables["metrics"].num_rows if first.signal == METRICS_SIGNAL else 0
        starts["metric_index"].append(starts["metric_index"][-1] + metrics)
    tables = {
        name: _concat_shifted(
            [b.tables[name] for b in batches],
            "metric_index" if name in POINT_TABLES else "scope_index",
            starts,
        )
        for name in first.tables
    }
    return Batch(
        signal=first.signal,
        resources=pa.concat_tables([b.resources for b in batches]),
        scopes=_concat_shifted([b.scopes for b in batches], "resource_index", starts),
        tables=tables,
        context=dict(first.context),
    )


def _concat_shifted(parts: list[pa.Table], name: str, starts: dict[str, list[int]]) -> pa.Table:
    """The parts one after the other, their index column `name` shifted by where the rows it
    points to start in the result: one numpy add over the whole column, not one per part."""
    table = pa.concat_tables(parts)
    offsets = np.repeat(np.asarray(starts[name], np.int64), [p.num_rows for p in parts])
    if not offsets.any():
        return table
    return _set_index(table, name, _index(table, name) + offsets)


def _remap(table: pa.Table, name: str, kept: np.ndarray) -> pa.Table:
    """Rewrite an index column into ``kept`` (sorted old indices) as positions in ``kept``."""
    return _set_index(table, name, np.searchsorted(kept, _index(table, name)))


def _unique(*parts: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate([np.asarray(p, np.int64) for p in parts]))


_NONE = np.empty(0, np.int64)


def _restrict(
    batch: Batch,
    records: dict[str, pa.Table],
    extra_metrics: np.ndarray = _NONE,
    extra_scopes: np.ndarray = _NONE,
    extra_resources: np.ndarray = _NONE,
) -> Batch:
    """A batch of ``records`` (indices still pointing into ``batch``), keeping only the
    metrics, scopes and resources they reference plus the ``extra_*`` ones."""
    tables: dict[str, pa.Table] = {}
    if batch.signal == METRICS_SIGNAL:
        used_metrics = _unique(
            *(_index(records[name], "metric_index") for name in POINT_TABLES), extra_metrics
        )
        for name in POINT_TABLES:
            tables[name] = _remap(records[name], "metric_index", used_metrics)
        owner = "metrics"
        owners = batch.tables["metrics"].take(pa.array(used_metrics))
    else:
        owner = _main_table(batch.signal)
        owners = records[owner]
    used_scopes = _unique(_index(owners, "scope_index"), extra_scopes)
    tables[owner] = _remap(owners, "scope_index", used_scopes)
    scopes = batch.scopes.take(pa.array(used_scopes))
    used_resources = _unique(_index(scopes, "resource_index"), extra_resources)
    return Batch(
        signal=batch.signal,
        resources=batch.resources.take(pa.array(used_resources)),
        scopes=_remap(scopes, "resource_index", used_resources),
        tables={name: tables[name] for name in batch.tables},
        context=dict(batch.context),
    )


def _unreferenced(count: int, referenced: np.ndarray) -> np.ndarray:
    seen = np.zeros(count, np.bool_)
    seen[referenced] = True
    return np.flatnonzero(~seen)


def _point_pieces(batch: Batch, max_items: int) -> dict[str, np.ndarray]:
    """Piece number of every data point, filling pieces in metric order like the Collector:
    the points of metric 0, then of metric 1, ...; a metric's points may straddle pieces."""
    n_metrics = batch.tables["metrics"].num_rows
    indices = {name: _index(batch.tables[name], "metric_index") for name in POINT_TABLES}
    per_metric = sum(np.bincount(idx, minlength=n_metrics) for idx in indices.values())
    first_point = np.concatenate([[0], np.cumsum(per_metric)[:-1]]).astype(np.int64)
    pieces = {}
    for name, idx in indices.items():
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        rank = np.empty(len(idx), np.int64)
        rank[order] = np.arange(len(idx)) - np.searchsorted(ordered, ordered, side="left")
        pieces[name] = (first_point[idx] + rank) // max_items if len(idx) else idx
    return pieces


def split(batch: Batch, max_items: int) -> list[Batch]:
    """Pieces of at most ``max_items`` items (spans, log records or metric data points).

    Records keep their order. Each piece holds only the resources, scopes and metrics its
    records reference; those that no record references at all (empty scopes, metrics without
    points) go into the first piece, so that no data is lost.
    """
    if max_items <= 0:
        raise ValueError("max_items must be positive")
    total = batch.item_count()
    if total <= max_items:
        return [batch]
    n_pieces = -(-total // max_items)
    n_scopes = batch.scopes.num_rows
    if batch.signal == METRICS_SIGNAL:
        metrics = batch.tables["metrics"]
        point_pieces = _point_pieces(batch, max_items)
        referenced = _unique(*(_index(batch.tables[name], "metric_index") for name in POINT_TABLES))
        extra_metrics = _unreferenced(metrics.num_rows, referenced)
        scope_refs = _index(metrics, "scope_index")
    else:
        main = _main_table(batch.signal)
        extra_metrics = _NONE
        scope_refs = _index(batch.tables[main], "scope_index")
    extra_scopes = _unreferenced(n_scopes, scope_refs)
    extra_resources = _unreferenced(
        batch.resources.num_rows, _index(batch.scopes, "resource_index")
    )
    pieces = []
    for piece in range(n_pieces):
        if batch.signal == METRICS_SIGNAL:
            records = {
                name: batch.tables[name].take(pa.array(np.flatnonzero(point_pieces[name] == piece)))
                for name in POINT_TABLES
            }
        else:
            records = {main: batch.tables[main].slice(piece * max_items, max_items)}
        first = piece == 0
        pieces.append(
            _restrict(
                batch,
                records,
                extra_metrics if first else _NONE,
                extra_scopes if first else _NONE,
                extra_resources if first else _NONE,
            )
        )
    return pieces


def _select(table: pa.Table, selection: Any) -> pa.Table:
    if isinstance(selection, pa.ChunkedArray):
        selection = selection.combine_chunks()
    if not isinstance(selection, pa.Array):
        selection = pa.array(np.asarray(selection))
    if pa.types.is_boolean(selection.type):
        if len(selection) != table.num_rows:
            raise ValueError(f"mask has {len(selection)} entries for {table.num_rows} records")
        return table.filter(pc.fill_null(selection, False))
    if len(selection) == 0:
        return table.slice(0, 0)
    return table.take(selection)


def take_records(batch: Batch, selection: Selection | dict[str, Selection]) -> Batch:
    """Keep the selected records (a boolean mask or row indices) and prune what they no
    longer reference.

    For traces and logs ``selection`` applies to the spans / log records. For metrics it is a
    dict from table name ("metrics" or a point table) to a selection; tables not named keep all
    rows, points of metrics not selected are dropped, and metrics left without data points are
    removed (as the Collector's filter processor does).
    """
    if batch.signal != METRICS_SIGNAL:
        if isinstance(selection, dict):
            raise TypeError(f"{batch.signal}: pass a mask or indices, not a dict")
        main = _main_table(batch.signal)
        return _restrict(batch, {main: _select(batch.tables[main], selection)})
    if not isinstance(selection, dict):
        raise TypeError("metrics: pass a dict of table name -> mask or indices")
    unknown = set(selection) - set(RECORD_TABLES[METRICS_SIGNAL])
    if unknown:
        raise ValueError(f"unknown metrics tables: {sorted(unknown)}")
    points = {name: batch.tables[name] for name in POINT_TABLES}
    for name in POINT_TABLES:
        if name in selection:
            points[name] = _select(points[name], selection[name])
    if "metrics" in selection:
        kept = pa.array(np.arange(batch.tables["metrics"].num_rows, dtype=np.int32))
        kept = _select(pa.table({"i": kept}), selection["metrics"]).column("i")
        for name in POINT_TABLES:
            points[name] = points[name].filter(pc.is_in(points[name].column("metric_index"), kept))
    return _restrict(batch, points)
