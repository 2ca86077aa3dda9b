"""attributes: insert/update/upsert/delete/hash/extract/convert attributes of spans, log
records and metric data points, optionally only on items matching include/exclude."""

from __future__ import annotations

import logging

from otlp.batch import METRICS_SIGNAL, POINT_TABLES, TRACES, Batch
from otlp.ottl import Rows
from otlp.ottl.runtime import CountingProcessor
from otlp.telemetry import Telemetry
from processors.attributes.actions import Actions
from processors.attributes.config import AttributesConfig
from processors.attributes.matching import selection

log = logging.getLogger("airis.processor.attributes")


class AttributesProcessor(CountingProcessor):
    def __init__(
        self, component_id: str, config: AttributesConfig, telemetry: Telemetry, signals: set[str]
    ) -> None:
        super().__init__(component_id, telemetry, log)
        self.config = config
        for props in (config.include, config.exclude):
            if props is not None:
                for signal in signals:
                    props.check_signal(signal)
        self.actions = Actions(config.actions)

    def _apply(self, rows: Rows) -> Batch:
        if rows.n == 0:
            return rows.batch
        selected = selection(self.config.include, self.config.exclude, rows)
        if not selected.any():
            return rows.batch
        lists = rows.table.column("attributes")
        rows.set_attributes(self.actions.apply(lists, selected, rows.batch.context))
        return rows.result()

    def process(self, batch: Batch) -> Batch:
        if batch.signal == TRACES:
            return self._apply(Rows(batch, "span"))
        if batch.signal == METRICS_SIGNAL:
            for name in POINT_TABLES:
                if batch.tables[name].num_rows:
                    batch = self._apply(Rows(batch, "datapoint", name))
            return batch
        return self._apply(Rows(batch, "log"))
