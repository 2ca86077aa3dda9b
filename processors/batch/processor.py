"""The batch processor: merges small requests into larger batches for the exporters.

Unlike the Collector's, `consume` returns only once the batch holding the caller's data has
been handed to the next consumer (the exporter queues), so an acknowledged request is never
only in this processor's memory; the caller waits at most `timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from otlp.batch import Batch
from otlp.batch_ops import concat, split
from otlp.component import Processor
from otlp.errors import BackpressureError, ConsumeError
from otlp.telemetry import Telemetry
from processors.batch.config import BatchConfig

log = logging.getLogger("airis.processor.batch")


@dataclass(slots=True)
class _Pending:
    batches: list[Batch] = field(default_factory=list)
    items: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class BatchProcessor(Processor):
    def __init__(self, component_id: str, config: BatchConfig, telemetry: Telemetry) -> None:
        self.id = component_id
        self.config = config
        self.telemetry = telemetry
        self._pending: dict[tuple[tuple[str, str], ...], _Pending] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def _key(self, batch: Batch) -> tuple[tuple[str, str], ...]:
        keys = self.config.metadata_keys
        if not keys:
            return ()
        return tuple((k, batch.context.get(k, "")) for k in keys)

    async def consume(self, batch: Batch) -> None:
        items = batch.item_count()
        if not items:
            return
        key = self._key(batch)
        pending = self._pending.get(key)
        if pending is None:
            limit = self.config.metadata_cardinality_limit
            if key and limit and len(self._pending) >= limit:
                raise BackpressureError("too many distinct metadata combinations in the batcher")
            pending = self._pending[key] = _Pending()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.batches.append(batch)
        pending.items += items
        pending.waiters.append(done)
        if self.config.send_batch_size and pending.items >= self.config.send_batch_size:
            self.telemetry.batch_trigger_size.labels(self.id).inc()
            self._send(key)
        elif pending.timer is None:
            if self.config.timeout <= 0:
                self._send(key)
            else:
                pending.timer = asyncio.get_running_loop().call_later(
                    self.config.timeout, self._on_timeout, key
                )
        await done

    def _on_timeout(self, key: tuple[tuple[str, str], ...]) -> None:
        self.telemetry.batch_trigger_timeout.labels(self.id).inc()
        self._send(key)

    def _send(self, key: tuple[tuple[str, str], ...]) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        task = asyncio.create_task(self._deliver(pending))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, pending: _Pending) -> None:
        error: BaseException | None = None
        try:
            merged = pending.batches[0] if len(pending.batches) == 1 else concat(pending.batches)
            max_size = self.config.send_batch_max_size
            pieces = split(merged, max_size) if max_size and pending.items > max_size else [merged]
            for piece in pieces:
                self.telemetry.batch_send_size.labels(self.id).observe(piece.item_count())
                await self.next.consume(piece)
        except Exception as exc:  # every waiter gets the outcome of its batch
            error = exc
            if not isinstance(exc, ConsumeError):
                log.exception("batch delivery failed", extra={"processor": self.id})
        for waiter in pending.waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def flush(self) -> None:
        for key in list(self._pending):
            self._send(key)
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
