"""What the runtime puts in front of every exporter: a bounded sending queue, consumer
workers, retries with exponential backoff and jitter, and a timeout per export — the OTel
Collector's exporterhelper (`sending_queue`, `retry_on_failure`, `timeout`).

Each exporter (per signal) gets its own queue and workers, so a slow or dead backend only
fills its own queue; when full, `consume` refuses with a retryable BackpressureError and
the receiver tells the client to back off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from otlp.batch import Batch
from otlp.component import Exporter
from otlp.confmodels import ExporterConfig, RetrySettings
from otlp.errors import BackpressureError, PermanentError, RetryableError
from otlp.telemetry import Telemetry

log = logging.getLogger("airis.exporter")


class Clock:
    """Time source for backoff; tests inject a fake one instead of sleeping."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter, as cenkalti/backoff (used by the Collector) computes it."""

    settings: RetrySettings
    rng: random.Random
    current: float = 0.0

    def __post_init__(self) -> None:
        self.current = self.settings.initial_interval

    def next_delay(self) -> float:
        s = self.settings
        delta = s.randomization_factor * self.current
        delay = self.rng.uniform(self.current - delta, self.current + delta)
        self.current = min(self.current * s.multiplier, s.max_interval)
        return delay


async def send_with_retry(
    send: Callable[[], Awaitable[None]],
    settings: RetrySettings,
    timeout: float,
    clock: Clock,
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
    on_retry: Callable[[Exception, float], None] | None = None,
) -> None:
    """Call `send` until it succeeds. Raises PermanentError (never retried) or the last
    RetryableError once retries are disabled, exhausted (max_elapsed_time) or shutting down."""
    backoff = Backoff(settings, rng or random.Random())
    started = clock.monotonic()
    while True:
        try:
            if timeout > 0:
                await asyncio.wait_for(send(), timeout)
            else:
                await send()
            return
        except PermanentError:
            raise
        except (TimeoutError, RetryableError) as exc:
            error = exc if isinstance(exc, RetryableError) else RetryableError("export timed out")
            if not settings.enabled or (stop is not None and stop.is_set()):
                raise error from None
            delay = backoff.next_delay()
            if error.retry_after is not None:
                # the backend's own Retry-After / RetryInfo wins over our schedule
                delay = error.retry_after
            elapsed = clock.monotonic() - started
            if settings.max_elapsed_time > 0 and elapsed + delay > settings.max_elapsed_time:
                raise RetryableError(
                    f"no more retries left after {elapsed:.1f}s: {error}",
                ) from None
            if on_retry:
                on_retry(error, delay)
            if stop is None:
                await clock.sleep(delay)
                continue
            # shutdown interrupts the wait: the data is then dropped (and counted) by the caller
            sleeper = asyncio.ensure_future(clock.sleep(delay))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stopper.cancel()
            if stop.is_set():
                raise RetryableError(f"interrupted by shutdown: {error}") from None


class QueuedExporter:
    """Consumer in front of one exporter for one signal."""

    def __init__(
        self,
        exporter_id: str,
        signal: str,
        exporter: Exporter,
        config: ExporterConfig,
        telemetry: Telemetry,
        clock: Clock | None = None,
    ) -> None:
        self.id = exporter_id
        self.signal = signal
        self.exporter = exporter
        self.config = config
        self.telemetry = telemetry
        self.clock = clock or Clock()
        queue = config.sending_queue
        self._enabled = queue.enabled
        self._capacity = queue.queue_size
        self._sizer = queue.sizer
        self._items: deque[Batch] = deque()
        self._used = 0
        self._not_empty = asyncio.Event()
        self._space = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop = asyncio.Event()
        telemetry.queue_capacity.labels(exporter_id, signal).set(self._capacity)
        self._size_gauge = telemetry.queue_size.labels(exporter_id, signal)
        self._sent = telemetry.counter("exporter_sent", signal).labels(exporter_id)
        self._failed = telemetry.counter("exporter_send_failed", signal).labels(exporter_id)
        self._enqueue_failed = telemetry.counter("exporter_enqueue_failed", signal).labels(
            exporter_id
        )

    def _size_of(self, batch: Batch) -> int:
        if self._sizer == "items":
            return batch.item_count()
        if self._sizer == "bytes":
            return batch.nbytes()
        return 1

    async def start(self) -> None:
        if self._enabled:
            self._workers = [
                asyncio.create_task(self._work(), name=f"{self.id}/{self.signal}#{i}")
                for i in range(self.config.sending_queue.num_consumers)
            ]

    async def consume(self, batch: Batch) -> None:
        if not batch.item_count():
            return
        if not self._enabled:
            await self._send(batch)
            return
        size = self._size_of(batch)
        while self._used + size > self._capacity and self._used > 0:
            if not self.config.sending_queue.block_on_overflow or self._stopping:
                self._enqueue_failed.inc(batch.item_count())
                raise BackpressureError(
                    f"sending queue of exporter {self.id} is full", retry_after=1.0
                )
            self._space.clear()
            await self._space.wait()
        self._items.append(batch)
        self._idle.clear()
        self._used += size
        self._size_gauge.set(self._used)
        self._not_empty.set()

    async def _work(self) -> None:
        while True:
            while not self._items:
                if self._stopping and self._idle.is_set():
                    return
                self._not_empty.clear()
                await self._not_empty.wait()
            batch = self._items.popleft()
            # as in the Collector, the queue size counts waiting batches, not those in flight
            self._used -= self._size_of(batch)
            self._size_gauge.set(self._used)
            self._space.set()
            self._in_flight += 1
            self._idle.clear()
            try:
                await self._send(batch)
            except Exception:  # _send logs and counts; a worker never dies
                pass
            finally:
                self._in_flight -= 1
                if not self._items and not self._in_flight:
                    self._idle.set()

    async def _send(self, batch: Batch) -> None:
        items = batch.item_count()
        started = time.perf_counter()
        outcome = "success"
        try:
            await send_with_retry(
                lambda: self.exporter.export(batch),
                self.config.retry_on_failure,
                self.config.timeout,
                self.clock,
                stop=self._stop,
                on_retry=self._log_retry,
            )
            self._sent.inc(items)
        except PermanentError as exc:
            outcome = "permanent_error"
            self._failed.inc(items)
            log.error(
                "Exporting failed. The error is not retryable. Dropping data.",
                extra={"exporter": self.id, "error": str(exc), "dropped_items": items},
            )
            if not self._enabled:
                raise
        except RetryableError as exc:
            outcome = "retries_exhausted"
            self._failed.inc(items)
            log.error(
                "Exporting failed. Rejecting data.",
                extra={"exporter": self.id, "error": str(exc), "dropped_items": items},
            )
            if not self._enabled:
                raise
        finally:
            self.telemetry.export_latency.labels(self.id, self.signal, outcome).observe(
                time.perf_counter() - started
            )

    def _log_retry(self, error: Exception, delay: float) -> None:
        log.info(
            "Exporting failed. Will retry the request after interval.",
            extra={"exporter": self.id, "error": str(error), "interval": f"{delay:.3f}s"},
        )

    async def shutdown(self) -> None:
        """Drain what is queued into the exporter, then stop the workers.

        As in the Collector, a failing export is not retried once shutdown has begun: it is
        dropped, counted and logged (a persistent queue keeps such data for the next start).
        """
        self._stopping = True
        self._stop.set()
        await self._idle.wait()
        self._not_empty.set()
        for task in self._workers:
            try:
                await task
            except asyncio.CancelledError:
                pass
