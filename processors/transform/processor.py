"""transform: run OTTL statements over whole columns. Statements run in order, each on the
rows its group's ``conditions`` and its own ``where`` select; groups see the edits of the
groups before them (a resource edit is visible to a later span group)."""

from __future__ import annotations

import logging

import numpy as np

from otlp.batch import METRICS_SIGNAL, POINT_TABLES, TRACES, Batch
from otlp.ottl import Rows
from otlp.ottl.runtime import CountingProcessor
from otlp.telemetry import Telemetry
from processors.transform.config import CompiledGroup, TransformConfig

log = logging.getLogger("airis.processor.transform")


class TransformProcessor(CountingProcessor):
    def __init__(self, component_id: str, config: TransformConfig, telemetry: Telemetry) -> None:
        super().__init__(component_id, telemetry, log)
        self.config = config
        self.groups = {
            TRACES: config.groups("trace_statements"),
            METRICS_SIGNAL: config.groups("metric_statements"),
            "logs": config.groups("log_statements"),
        }

    def process(self, batch: Batch) -> Batch:
        for group in self.groups[batch.signal]:
            if group.context == "datapoint":
                for name in POINT_TABLES:
                    if batch.tables[name].num_rows:
                        batch = self._run(group, Rows(batch, "datapoint", name))
            else:
                batch = self._run(group, Rows(batch, group.context))
        return batch

    def _run(self, group: CompiledGroup, rows: Rows) -> Batch:
        if rows.n == 0:
            return rows.batch
        original = rows.table
        selected = None
        if group.conditions:
            selected = self.guarded(
                group.error_mode,
                f"{group.context} conditions",
                lambda: group.conditions.evaluate(rows),
                np.zeros(rows.n, np.bool_),
            )
            if not selected.any():
                return rows.batch
        for statement in group.statements:
            before = rows.table

            def run(statement=statement) -> bool:
                statement.execute(rows, selected)
                return True

            owners = dict(rows.tables)
            if not self.guarded(group.error_mode, f'statement "{statement.text}"', run, False):
                # an ignored error skips this statement for the whole batch
                rows.table = before
                rows.tables = owners
        if rows.table is original and not rows.dirty:
            return rows.batch
        return rows.result()
