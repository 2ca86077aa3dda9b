"""filter: drop resources, scopes, spans, span events, metrics, data points and log records
that match OTTL conditions (any of a list), with whole-column masks. Dropped items are
counted with reason "filtered"; resources and scopes left empty are removed, as the
Collector does, and a batch left with nothing is not forwarded."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from otlp.batch import METRICS_SIGNAL, POINT_TABLES, TRACES, Batch
from otlp.batch_ops import take_records
from otlp.ottl import Rows
from otlp.ottl.runtime import CountingProcessor
from otlp.telemetry import Telemetry
from processors.filter.config import CompiledConditions, FilterConfig

log = logging.getLogger("airis.processor.filter")
_RECORDS = {TRACES: "span", METRICS_SIGNAL: "metric", "logs": "log"}


class FilterProcessor(CountingProcessor):
    def __init__(self, component_id: str, config: FilterConfig, telemetry: Telemetry) -> None:
        super().__init__(component_id, telemetry, log)
        self.config = config
        self.groups = {signal: config.compiled(signal) for signal in _RECORDS}

    def _matches(self, group: CompiledConditions, rows: Rows) -> np.ndarray:
        # on an ignored error nothing matches, so nothing is dropped
        return self.guarded(
            group.error_mode,
            f"{group.context} conditions",
            lambda: group.condition.evaluate(rows),
            np.zeros(rows.n, np.bool_),
        )

    def process(self, batch: Batch) -> Batch:
        before = batch.item_count()
        for group in self.groups[batch.signal]:
            if batch.item_count() == 0:
                break
            batch = self._apply(group, batch)
        self.telemetry.processor_dropped(
            self.id, batch.signal, before - batch.item_count(), "filtered"
        )
        return batch

    def _apply(self, group: CompiledConditions, batch: Batch) -> Batch:
        context = group.context
        if context == "spanevent":
            return self._span_events(group, batch)
        if context == "datapoint":
            selection = {}
            for name in POINT_TABLES:
                if batch.tables[name].num_rows:
                    drop = self._matches(group, Rows(batch, "datapoint", name))
                    if drop.any():
                        selection[name] = ~drop
            return take_records(batch, selection) if selection else batch
        records = Rows(batch, _RECORDS[batch.signal])
        if context in ("resource", "scope"):
            # dropping a resource or scope drops everything under it
            owner = self._matches(group, Rows(batch, context))
            drop = owner[records.index[context]] if records.n else np.zeros(0, np.bool_)
        else:
            drop = self._matches(group, records)
        if not drop.any():
            return batch
        if batch.signal == METRICS_SIGNAL:
            return take_records(batch, {"metrics": ~drop})
        return take_records(batch, ~drop)

    def _span_events(self, group: CompiledConditions, batch: Batch) -> Batch:
        rows = Rows(batch, "spanevent")
        if not rows.n:
            return batch
        drop = self._matches(group, rows)
        if not drop.any():
            return batch
        rows.table = rows.table.filter(pa.array(~drop))
        parents = rows.index["span"][~drop]
        counts = np.bincount(parents, minlength=batch.tables["spans"].num_rows)
        offsets = np.zeros(len(counts) + 1, np.int32)
        np.cumsum(counts, out=offsets[1:])
        rows.event_offsets = pa.array(offsets)
        return rows.result()
