"""The traces due a decision in one tick, as one columnar batch plus a trace number per span.

Policies reduce per-span masks to per-trace answers with ``any_span``/``all_span`` (bincounts
over the trace numbers) instead of walking spans in Python.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import V_BOOL, V_INT, V_STRING, Batch
from otlp.batch_ops import take_records
from otlp.columns import as_array
from otlp.ottl.attrs import Flat, key_mask


class Attr:
    """``attributes[key]`` per row with the Collector's accessor semantics: ``present`` says
    the key exists; ``Int()``/``Str()``/``Bool()`` of another type give the zero value."""

    def __init__(self, lists: pa.Array | pa.ChunkedArray, key: str) -> None:
        flat = Flat(lists)
        index = flat.first_index(key_mask(flat, key))
        self.present = index >= 0
        self.n = len(index)
        if self.present.any():
            taken = flat.items.take(pa.array(index, mask=~self.present))
            self._items: pa.StructArray | None = taken
            self.types = pc.fill_null(pc.struct_field(self._items, "type"), 0).to_numpy(
                zero_copy_only=False
            )
        else:
            self._items = None
            self.types = np.zeros(self.n, np.int8)

    def _field(self, name: str, kind: int, zero: object) -> pa.Array:
        if self._items is None:
            return pa.array([zero] * self.n) if self.n else pa.array([], type=pa.scalar(zero).type)
        column = pc.struct_field(self._items, name)
        return pc.if_else(pa.array(self.types == kind), pc.fill_null(column, zero), zero)

    def ints(self) -> np.ndarray:
        return self._field("int", V_INT, 0).to_numpy(zero_copy_only=False).astype(np.int64)

    def strs(self) -> pa.Array:
        return self._field("str", V_STRING, "")

    def bools(self) -> np.ndarray:
        return self._field("bool", V_BOOL, False).to_numpy(zero_copy_only=False).astype(np.bool_)


class TraceSet:
    def __init__(self, batch: Batch, group: np.ndarray, trace_ids: list[bytes], now: float) -> None:
        self.batch = batch
        self.spans = batch.tables["spans"]
        self.group = group.astype(np.int64, copy=False)
        self.trace_ids = trace_ids
        self.n = len(trace_ids)
        self.now = now
        self.span_count = np.bincount(self.group, minlength=self.n).astype(np.int64)
        self._attrs: dict[tuple[str, str], Attr] = {}
        self._order: np.ndarray | None = None

    # --- reductions

    def any_span(self, mask: np.ndarray) -> np.ndarray:
        if not len(mask):
            return np.zeros(self.n, np.bool_)
        return np.bincount(self.group[mask], minlength=self.n) > 0

    def all_span(self, mask: np.ndarray) -> np.ndarray:
        return ~self.any_span(~mask)

    # --- columns

    def span_resource(self) -> np.ndarray:
        scopes = self.spans.column("scope_index").to_numpy().astype(np.int64)
        resources = self.batch.scopes.column("resource_index").to_numpy().astype(np.int64)
        return resources[scopes] if len(scopes) else scopes

    def attr(self, level: str, key: str) -> Attr:
        cached = self._attrs.get((level, key))
        if cached is None:
            table = self.spans if level == "span" else self.batch.resources
            cached = self._attrs[(level, key)] = Attr(table.column("attributes"), key)
        return cached

    def column(self, name: str, fill: object) -> np.ndarray:
        return pc.fill_null(as_array(self.spans.column(name)), fill).to_numpy(zero_copy_only=False)

    def arrival_order(self) -> np.ndarray:
        """Span rows ordered by trace, each trace's spans in arrival order."""
        if self._order is None:
            self._order = np.argsort(self.group, kind="stable")
        return self._order

    def trace_rows(self, trace: int) -> np.ndarray:
        order = self.arrival_order()
        starts = np.searchsorted(self.group[order], [trace, trace + 1])
        return order[starts[0] : starts[1]]

    def trace_batch(self, trace: int) -> Batch:
        """One trace's spans as their own batch (for the few per-trace evaluations)."""
        return take_records(self.batch, self.trace_rows(trace))
