"""What the OTTL-driven processors share: ``error_mode`` and the item counters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from otlp.batch import Batch
from otlp.component import Processor
from otlp.errors import PermanentError
from otlp.ottl.compiler import OttlRuntimeError
from otlp.telemetry import Telemetry

ErrorMode = Literal["ignore", "silent", "propagate"]
T = TypeVar("T")


class CountingProcessor(Processor):
    """Counts items in and out (otelcol_processor_incoming_* / _outgoing_*) and forwards
    non-empty batches; subclasses implement ``process``."""

    def __init__(self, component_id: str, telemetry: Telemetry, logger: logging.Logger) -> None:
        self.id = component_id
        self.telemetry = telemetry
        self.log = logger

    def process(self, batch: Batch) -> Batch:
        raise NotImplementedError

    async def consume(self, batch: Batch) -> None:
        signal = batch.signal
        self.telemetry.counter("processor_incoming", signal).labels(self.id).inc(batch.item_count())
        out = self.process(batch)
        items = out.item_count()
        self.telemetry.counter("processor_outgoing", signal).labels(self.id).inc(items)
        # like the Collector's ErrSkipProcessingData: nothing left, nothing to forward
        if items == 0 and batch.item_count() > 0:
            return
        await self.next.consume(out)

    def guarded(self, error_mode: ErrorMode, what: str, fn: Callable[[], T], fallback: T) -> T:
        """Run ``fn``; on an OTTL runtime error follow ``error_mode``: ``propagate`` refuses
        the data, ``ignore`` logs and uses ``fallback``, ``silent`` uses it quietly."""
        try:
            return fn()
        except (OttlRuntimeError, ArithmeticError) as exc:
            if error_mode == "propagate":
                raise PermanentError(f"{self.id}: failed to evaluate {what}: {exc}") from exc
            if error_mode == "ignore":
                self.log.warning("failed to evaluate %s, ignoring: %s", what, exc)
            return fallback
