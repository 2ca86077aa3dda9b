"""What the runtime puts in front of every exporter: a bounded sending queue (in memory, or
a write-ahead log on disk), consumer workers, retries with exponential backoff and jitter,
a timeout per export — the OTel Collector's exporterhelper (`sending_queue`,
`retry_on_failure`, `timeout`) — plus a circuit breaker and a bulkhead.

Each exporter (per signal) gets its own queue and workers, so a slow or dead backend only
fills its own queue; when full, `consume` refuses with a retryable BackpressureError and
the receiver tells the client to back off.

Acknowledgement rule: `consume` returns only once the batch is in the queue; for a
persistent queue (`sending_queue.storage` naming a `file_storage` extension), once it is
written to the queue's log (and fsynced, if the storage says so). From then on delivery is
at least once: a batch leaves the log only after the exporter succeeded, or after it was
dropped for good (a permanent error, or `retry_on_failure.max_elapsed_time` spent), which
is logged and counted in otelcol_exporter_send_failed_*.

Bulkhead: at most `num_consumers` exports of one queue are in flight. An export that times
out is cancelled, but its slot is only freed when it has actually stopped, so a backend that
hangs can hold `num_consumers` slots and no more; other exporters have their own.

Circuit breaker (`circuit_breaker`, see confmodels.CircuitBreakerSettings): after repeated
failures no export is tried for a while; batches wait in the queue.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from otlp.batch import Batch
from otlp.batch_ops import concat, context_key, split
from otlp.component import Exporter, Host
from otlp.confmodels import (
    CircuitBreakerSettings,
    ExporterConfig,
    QueueBatchSettings,
    RetrySettings,
)
from otlp.errors import BackpressureError, PermanentError, RetryableError
from otlp.telemetry import Telemetry

if TYPE_CHECKING:
    from storage.queue import PersistentQueue

log = logging.getLogger("airis.exporter")


class Clock:
    """Time source for backoff and the circuit breaker; tests inject a fake one."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Interrupted(RetryableError):
    """Shutdown stopped the delivery of a batch before it succeeded. A persistent queue
    keeps such a batch for the next start; an in-memory one drops and counts it."""


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


async def _first(stop: asyncio.Event | None, *waits: Awaitable[Any]) -> bool:
    """Wait for the first of `waits` or `stop`; True when it was `stop`."""
    if stop is not None and stop.is_set():
        for w in waits:
            if asyncio.iscoroutine(w):
                w.close()
        return True
    tasks = [asyncio.ensure_future(w) for w in waits]
    if stop is not None:
        tasks.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    return stop is not None and stop.is_set()


# --- circuit breaker -------------------------------------------------------------------------
CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    """Closed → (failure_threshold failures in a row) → open → (open_interval) → half-open
    → (half_open_probes successes) → closed, or (one failure) → open again.

    `admit` is called before each export attempt and `record` after it; `admit` returns a
    token that marks half-open probes.
    """

    def __init__(
        self,
        name: str,
        settings: CircuitBreakerSettings,
        clock: Clock,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.on_change = on_change
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._generation = 0  # of the current half-open period
        self._admitted = 0  # probes let through in this half-open period
        self._successes = 0
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _transition(self, state: str) -> None:
        self.state = state
        if state == OPEN:
            self.opened_at = self.clock.monotonic()
            log.warning(
                "Circuit breaker opened: the backend keeps failing; data waits in the queue",
                extra={
                    "exporter": self.name,
                    "consecutive_failures": self.failures,
                    "open_interval": f"{self.settings.open_interval:g}s",
                },
            )
        elif state == HALF_OPEN:
            self._generation += 1
            self._admitted = self._successes = 0
            log.info(
                "Circuit breaker half-open: probing the backend", extra={"exporter": self.name}
            )
        else:
            self.failures = 0
            log.info("Circuit breaker closed: the backend is back", extra={"exporter": self.name})
        if self.on_change is not None:
            self.on_change(state)
        self._notify()

    def _refresh(self) -> None:
        if self.state == OPEN and self.remaining() <= 0:
            self._transition(HALF_OPEN)

    def remaining(self) -> float:
        """Seconds until an open breaker lets probes through (0 when not open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.settings.open_interval - self.clock.monotonic())

    def allows_now(self) -> bool:
        self._refresh()
        return self.state == CLOSED or (
            self.state == HALF_OPEN and self._admitted < self.settings.half_open_probes
        )

    async def admit(self, stop: asyncio.Event | None = None) -> int | None:
        """Wait until an attempt may be made; returns a probe token (None: not a probe).
        Raises Interrupted when `stop` is set while waiting."""
        while True:
            self._refresh()
            if self.state == CLOSED:
                return None
            if self.state == HALF_OPEN and self._admitted < self.settings.half_open_probes:
                self._admitted += 1
                return self._generation
            changed = self._changed
            waits: list[Awaitable[Any]] = [changed.wait()]
            if self.state == OPEN:
                waits.append(self.clock.sleep(self.remaining()))
            if await _first(stop, *waits):
                raise Interrupted(f"circuit breaker of {self.name} is open; shutting down")

    def record(self, token: int | None, ok: bool) -> None:
        probe = token is not None and token == self._generation and self.state == HALF_OPEN
        if ok:
            if self.state == CLOSED:
                self.failures = 0
            elif probe:
                self._successes += 1
                if self._successes >= self.settings.half_open_probes:
                    self._transition(CLOSED)
            return
        if self.state == CLOSED:
            self.failures += 1
            if self.failures >= self.settings.failure_threshold:
                self._transition(OPEN)
        elif probe:
            self._transition(OPEN)
        # failures of attempts begun before the breaker opened change nothing


# --- bulkhead --------------------------------------------------------------------------------
# the exporter on whose behalf the current task runs (set for the task of each export)
_EXPORTING: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "airis_exporting", default=None
)


class PartitionedExecutor(ThreadPoolExecutor):
    """The event loop's default executor, installed by the first QueuedExporter to start.

    Blocking calls an export makes through it (`asyncio.to_thread`, `run_in_executor(None,
    ...)`) run on a pool of that exporter's own, one thread per consumer of its queues;
    everything else runs on the shared pool as before. Cancelling an export cannot stop a
    thread stuck in a call, so without this a hung backend would take a fresh thread from the
    shared pool on every retry until none is left for anyone; with it, it can only use up
    its own threads (further calls queue behind them).
    """

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="asyncio")
        self._partitions: dict[str, ThreadPoolExecutor] = {}
        self._sizes: dict[str, int] = {}
        self._partition_lock = threading.Lock()

    def reserve(self, key: str, threads: int) -> None:
        with self._partition_lock:
            self._sizes[key] = self._sizes.get(key, 0) + threads
            pool = self._partitions.get(key)
            if pool is not None:
                pool._max_workers = self._sizes[key]  # grows on the next submit

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        key = _EXPORTING.get()
        if key is None or key not in self._sizes:
            return super().submit(fn, *args, **kwargs)
        with self._partition_lock:
            pool = self._partitions.get(key)
            if pool is None:
                pool = self._partitions[key] = ThreadPoolExecutor(
                    self._sizes[key], thread_name_prefix=f"export-{key}"
                )
        return pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for pool in self._partitions.values():
            # a call a hung backend never returns from must not hold up the exit
            pool.shutdown(wait=False, cancel_futures=True)
        super().shutdown(wait, cancel_futures=cancel_futures)


_EXECUTORS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PartitionedExecutor] = (
    weakref.WeakKeyDictionary()
)


def partitioned_executor() -> PartitionedExecutor:
    """The running loop's PartitionedExecutor, installed as its default executor if needed."""
    loop = asyncio.get_running_loop()
    executor = _EXECUTORS.get(loop)
    if executor is None:
        executor = _EXECUTORS[loop] = PartitionedExecutor()
        loop.set_default_executor(executor)
    return executor


class Bulkhead:
    """At most `limit` exports in flight. A timed-out export is cancelled and keeps its slot
    until it has really stopped: a hung backend cannot make us start more. Each export runs
    as its own task marked with `key`, so the blocking calls it makes land on the exporter's
    own threads (PartitionedExecutor)."""

    def __init__(self, limit: int, gauge: Gauge | None = None, key: str | None = None) -> None:
        self.limit = limit
        self.key = key
        self.in_flight = 0
        self._sem = asyncio.Semaphore(limit)
        self._gauge = gauge
        self._tasks: set[asyncio.Task[None]] = set()

    async def _acquire(self, stop: asyncio.Event | None) -> None:
        if stop is None or not self._sem.locked():
            await self._sem.acquire()
            return
        acquire = asyncio.ensure_future(self._sem.acquire())
        if await _first(stop, asyncio.shield(acquire)):
            if acquire.done() and not acquire.cancelled():
                self._sem.release()
            else:
                acquire.cancel()
            raise Interrupted("every export slot is held by a hung export; shutting down")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.in_flight -= 1
        if self._gauge is not None:
            self._gauge.set(self.in_flight)
        self._sem.release()
        if not task.cancelled():
            task.exception()  # retrieved: the caller already saw it, or gave up on it

    async def run(
        self,
        send: Callable[[], Awaitable[None]],
        timeout: float,
        stop: asyncio.Event | None = None,
    ) -> None:
        await self._acquire(stop)
        self.in_flight += 1
        if self._gauge is not None:
            self._gauge.set(self.in_flight)
        context = contextvars.copy_context()
        if self.key is not None:
            context.run(_EXPORTING.set, self.key)
        task = asyncio.get_running_loop().create_task(send(), context=context)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout if timeout > 0 else None)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            raise TimeoutError
        task.result()


# --- retries ---------------------------------------------------------------------------------
async def send_with_retry(
    send: Callable[[], Awaitable[None]],
    settings: RetrySettings,
    timeout: float,
    clock: Clock,
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
    on_retry: Callable[[Exception, float], None] | None = None,
    breaker: CircuitBreaker | None = None,
    bulkhead: Bulkhead | None = None,
) -> None:
    """Call `send` until it succeeds. Raises PermanentError (never retried), Interrupted
    (shutdown came first) or the last RetryableError once retries are disabled or exhausted
    (max_elapsed_time, not counting time the circuit breaker held the attempt back)."""
    backoff = Backoff(settings, rng or random.Random())
    started = clock.monotonic()
    held = 0.0  # time spent waiting for the breaker
    while True:
        token = None
        if breaker is not None:
            waited_from = clock.monotonic()
            token = await breaker.admit(stop)
            held += clock.monotonic() - waited_from
        try:
            if bulkhead is not None:
                await bulkhead.run(send, timeout, stop)
            elif timeout > 0:
                await asyncio.wait_for(send(), timeout)
            else:
                await send()
        except Interrupted:
            if breaker is not None and token is not None:
                breaker.record(token, False)
            raise
        except PermanentError:
            if breaker is not None:
                breaker.record(token, True)  # the backend answered: it is up
            raise
        except (TimeoutError, RetryableError) as exc:
            if breaker is not None:
                breaker.record(token, False)
            error = exc if isinstance(exc, RetryableError) else RetryableError("export timed out")
            if stop is not None and stop.is_set():
                raise Interrupted(f"interrupted by shutdown: {error}") from None
            if not settings.enabled:
                raise error from None
            delay = backoff.next_delay()
            if error.retry_after is not None:
                # the backend's own Retry-After / RetryInfo wins over our schedule
                delay = error.retry_after
            elapsed = clock.monotonic() - started - held
            if settings.max_elapsed_time > 0 and elapsed + delay > settings.max_elapsed_time:
                raise RetryableError(
                    f"no more retries left after {elapsed:.1f}s: {error}",
                ) from None
            if on_retry:
                on_retry(error, delay)
            if breaker is not None and breaker.state == OPEN:
                continue  # the breaker's open interval takes the place of the backoff
            if await _first(stop, clock.sleep(delay)):
                raise Interrupted(f"interrupted by shutdown: {error}") from None
        else:
            if breaker is not None:
                breaker.record(token, True)
            return


# --- queues ----------------------------------------------------------------------------------
def sized(batch: Batch, sizer: str) -> int:
    """A batch's size in a queue sizer's units (`requests`, `items` or `bytes`)."""
    if sizer == "items":
        return batch.item_count()
    if sizer == "bytes":
        return batch.nbytes()
    return 1


class QueueDispatch:
    """The consumer side both sending queues share (this module's MemoryQueue and
    storage.queue.PersistentQueue): items waiting in `_ready`, `used` in the sizer's units,
    and events for waiting consumers (`_not_empty`) and producers (`_space`). After
    stop_dispatch a queue that `drains_after_stop` still hands out what it holds (the memory
    queue, drained into the exporter at shutdown); the other hands out nothing more (the
    persistent queue keeps it on disk)."""

    drains_after_stop = True
    # the producer side's refusal when full; subclasses set capacity, block_on_overflow, name
    full_message = "sending queue {} is full"
    capacity: int
    block_on_overflow: bool
    name: str

    def __init__(self) -> None:
        self.used = 0
        self._ready: deque[Any] = deque()
        self._not_empty = asyncio.Event()
        self._space = asyncio.Event()
        self._closed = False

    async def _room_for(self, size: int) -> None:
        """Until `size` more fits (a queue holding nothing takes anything); refused at once
        unless block_on_overflow, and once dispatch has stopped."""
        while self.used + size > self.capacity and self.used > 0:
            if not self.block_on_overflow or self._closed:
                raise BackpressureError(self.full_message.format(self.name), retry_after=1.0)
            self._space.clear()
            await self._space.wait()

    async def get(self) -> Any:
        """The oldest waiting item, or None once dispatch has stopped (and, for a draining
        queue, nothing is left)."""
        while not self._ready:
            if self._closed:
                return None
            self._not_empty.clear()
            await self._not_empty.wait()
        return self.get_nowait()

    def get_nowait(self) -> Any:
        """The oldest waiting item, or None when none is to be had now."""
        if not self._ready or (self._closed and not self.drains_after_stop):
            return None
        item = self._ready.popleft()
        # as in the Collector, the queue size counts waiting batches, not those in flight
        self.used -= item.size
        self._space.set()
        return item

    async def wait(self, timeout: float) -> None:
        """Until an item waits, dispatch stops or `timeout` seconds have passed."""
        if self._ready or self._closed or timeout <= 0:
            return
        self._not_empty.clear()
        try:
            await asyncio.wait_for(self._not_empty.wait(), timeout)
        except TimeoutError:
            pass

    def stop_dispatch(self) -> None:
        self._closed = True
        self._not_empty.set()
        self._space.set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def empty(self) -> bool:
        return not self._ready


@dataclass(eq=False, slots=True)
class _MemoryItem:
    size: int
    batch: Batch | None


class MemoryQueue(QueueDispatch):
    """The in-memory sending queue: bounded in the sizer's units, lost on a crash. Once
    dispatch stops (shutdown), consumers still get what is queued, then None."""

    full_message = "sending queue of exporter {} is full"

    def __init__(self, sizer: str, capacity: int, block_on_overflow: bool, name: str) -> None:
        super().__init__()
        self.sizer = sizer
        self.capacity = capacity
        self.block_on_overflow = block_on_overflow
        self.name = name

    async def put(self, batch: Batch) -> None:
        size = sized(batch, self.sizer)
        await self._room_for(size)
        self._ready.append(_MemoryItem(size, batch))
        self.used += size
        self._not_empty.set()

    async def load(self, item: _MemoryItem) -> Batch:
        assert item.batch is not None
        return item.batch

    def done(self, item: _MemoryItem, remove: bool) -> None:
        item.batch = None


# --- self-metrics ----------------------------------------------------------------------------
class _Metrics:
    """AIRIS's own series for queues, breakers and bulkheads (one set per Telemetry)."""

    def __init__(self, telemetry: Telemetry) -> None:
        r = telemetry.registry
        self.breaker_state = Gauge(
            "airis_exporter_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            ("exporter",),
            registry=r,
        )
        self.breaker_transitions = Counter(
            "airis_exporter_circuit_breaker_transitions",
            "Circuit breaker state changes, by the state entered",
            ("exporter", "state"),
            registry=r,
        )
        self.in_flight = Gauge(
            "airis_exporter_in_flight_exports",
            "Exports started and not yet stopped (timed-out ones included until they stop)",
            ("exporter", "data_type"),
            registry=r,
        )
        self.disk_bytes = Gauge(
            "airis_exporter_queue_disk_bytes",
            "Bytes of the persistent queue's write-ahead log segments",
            ("exporter", "data_type"),
            registry=r,
        )
        self.recovered = Counter(
            "airis_exporter_queue_recovered_batches",
            "Batches found in the persistent queue at start, to be delivered again",
            ("exporter", "data_type"),
            registry=r,
        )
        self.discarded = Counter(
            "airis_exporter_queue_discarded_bytes",
            "Bytes of torn or corrupt records truncated from the persistent queue at start",
            ("exporter", "data_type"),
            registry=r,
        )
        self.write_latency = Histogram(
            "airis_exporter_queue_write_duration_seconds",
            "Time to write a batch to the persistent queue (fsync included, if configured)",
            ("exporter", "data_type"),
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )


_METRICS: weakref.WeakKeyDictionary[Telemetry, _Metrics] = weakref.WeakKeyDictionary()
# one circuit breaker per exporter instance, shared by the queues of its signals
_BREAKERS: weakref.WeakKeyDictionary[Exporter, CircuitBreaker] = weakref.WeakKeyDictionary()


def _metrics(telemetry: Telemetry) -> _Metrics:
    found = _METRICS.get(telemetry)
    if found is None:
        found = _METRICS[telemetry] = _Metrics(telemetry)
    return found


def _breaker_for(
    exporter: Exporter,
    name: str,
    settings: CircuitBreakerSettings,
    clock: Clock,
    metrics: _Metrics,
) -> CircuitBreaker:
    try:
        found = _BREAKERS.get(exporter)
    except TypeError:  # not weak-referenceable: one breaker per queue then
        found = None
    if found is not None:
        return found

    def changed(state: str) -> None:
        metrics.breaker_state.labels(name).set(_STATE_VALUE[state])
        metrics.breaker_transitions.labels(name, state).inc()

    breaker = CircuitBreaker(name, settings, clock, changed)
    metrics.breaker_state.labels(name).set(0)
    try:
        _BREAKERS[exporter] = breaker
    except TypeError:
        pass
    return breaker


# --- the queued exporter ---------------------------------------------------------------------
_SENT, _DROPPED, _KEPT = "sent", "dropped", "kept"


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
        settings = config.sending_queue
        self._enabled = settings.enabled
        self._persistent = bool(settings.enabled and settings.storage)
        self._queue: MemoryQueue | PersistentQueue | None = None
        if self._enabled and not self._persistent:
            self._queue = MemoryQueue(
                settings.sizer, settings.queue_size, settings.block_on_overflow, exporter_id
            )
        self._metrics = _metrics(telemetry)
        breaker_settings: CircuitBreakerSettings | None = getattr(config, "circuit_breaker", None)
        self.breaker = (
            _breaker_for(exporter, exporter_id, breaker_settings, self.clock, self._metrics)
            if breaker_settings is not None and breaker_settings.enabled
            else None
        )
        self.bulkhead = Bulkhead(
            settings.num_consumers, self._metrics.in_flight.labels(exporter_id, signal), exporter_id
        )
        self._workers: list[asyncio.Task[None]] = []
        self._gathering = asyncio.Lock() if settings.batch is not None else None
        self._in_flight = 0  # items taken from the queue and not yet done with
        self._stopping = False
        self._stop = asyncio.Event()
        telemetry.queue_capacity.labels(exporter_id, signal).set(settings.queue_size)
        self._size_gauge = telemetry.queue_size.labels(exporter_id, signal)
        self._disk_gauge = self._metrics.disk_bytes.labels(exporter_id, signal)
        self._write_latency = self._metrics.write_latency.labels(exporter_id, signal)
        self._sent = telemetry.counter("exporter_sent", signal).labels(exporter_id)
        self._failed = telemetry.counter("exporter_send_failed", signal).labels(exporter_id)
        self._enqueue_failed = telemetry.counter("exporter_enqueue_failed", signal).labels(
            exporter_id
        )

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self, host: Host | None = None) -> None:
        """Open the queue (a persistent one recovers what a previous run left, which the
        workers then deliver before anything new) and start the workers."""
        partitioned_executor().reserve(self.id, self.config.sending_queue.num_consumers)
        if not self._enabled:
            return
        if self._persistent:
            self._queue = await self._open_persistent(host)
        self._update_gauges()
        self._workers = [
            asyncio.create_task(self._work(), name=f"{self.id}/{self.signal}#{i}")
            for i in range(self.config.sending_queue.num_consumers)
        ]

    async def _open_persistent(self, host: Host | None) -> PersistentQueue:
        from storage.queue import PersistentQueue

        settings = self.config.sending_queue
        name = settings.storage or ""
        storage = host.extension(name) if host is not None else None
        where = f"exporters.{self.id}.sending_queue.storage"
        if storage is None:
            raise RuntimeError(
                f"{where}: extension {name!r} is not configured or not in service.extensions"
            )
        if not hasattr(storage, "wal"):
            raise RuntimeError(f"{where}: extension {name!r} is not a storage extension")
        queue = PersistentQueue(
            storage.wal("exporter", self.id, self.signal),
            sizer=settings.sizer,
            capacity=settings.queue_size,
            block_on_overflow=settings.block_on_overflow,
            compression=getattr(storage, "compression", "none"),
            name=f"{self.id}/{self.signal}",
        )
        report = await queue.open()
        labels = (self.id, self.signal)
        if report.records:
            self._metrics.recovered.labels(*labels).inc(report.records)
            log.info(
                "Persistent queue recovered; replaying before new data",
                extra={
                    "exporter": self.id,
                    "data_type": self.signal,
                    "batches": report.records,
                    "bytes": report.bytes,
                },
            )
        if report.discarded_bytes:
            self._metrics.discarded.labels(*labels).inc(report.discarded_bytes)
        return queue

    async def shutdown(self) -> None:
        """In-memory queue: drain what is queued into the exporter, retrying as configured
        (bounded by `retry_on_failure.max_elapsed_time`), then stop: data acknowledged to a
        client is not given up on a clean shutdown just because the backend is slow.
        Persistent queue: finish the exports in flight and stop; what is queued stays on
        disk for the next start (as the Collector's persistent queue does).
        """
        self._stopping = True
        queue = self._queue
        if queue is None:
            self._stop.set()
            return
        queue.stop_dispatch()
        if self._persistent:
            self._stop.set()
        else:
            retry = self.config.retry_on_failure
            limit = retry.max_elapsed_time if retry.enabled and retry.max_elapsed_time else None
            drained = asyncio.gather(*self._workers, return_exceptions=True)
            try:
                await asyncio.wait_for(asyncio.shield(drained), limit)
            except TimeoutError:
                log.error(
                    "Shutdown: the exporter did not drain its queue in time; dropping the rest",
                    extra={"exporter": self.id, "data_type": self.signal},
                )
            self._stop.set()
        for task in self._workers:
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._persistent:
            waiting = queue.used
            await queue.close()  # type: ignore[union-attr]
            if waiting:
                log.info(
                    "Persistent queue kept for the next start",
                    extra={"exporter": self.id, "data_type": self.signal, "size": waiting},
                )
        self._update_gauges()

    # --- data ------------------------------------------------------------------------------
    async def consume(self, batch: Batch) -> None:
        if not batch.item_count():
            return
        queue = self._queue
        if queue is None:
            if not self._enabled:
                breaker = self.breaker
                if breaker is not None and not breaker.allows_now():
                    raise RetryableError(
                        f"circuit breaker of exporter {self.id} is open",
                        retry_after=max(1.0, breaker.remaining()),
                    )
                await self._send(batch)
                return
            raise RetryableError(f"exporter {self.id} is not started", retry_after=1.0)
        started = time.perf_counter()
        try:
            await queue.put(batch)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._enqueue_failed.inc(batch.item_count())
            raise
        finally:
            self._update_gauges()
        if self._persistent:
            self._write_latency.observe(time.perf_counter() - started)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being sent."""
        return self._in_flight == 0 and (self._queue is None or self._queue.used == 0)

    def _update_gauges(self) -> None:
        queue = self._queue
        if queue is None:
            return
        self._size_gauge.set(queue.used)
        if self._persistent:
            self._disk_gauge.set(queue.wal.disk_bytes)  # type: ignore[union-attr]

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            if self._gathering is not None:
                # one consumer gathers at a time (as the Collector's one batcher feeds its
                # consumers): concurrent gatherers would each wait for a share of the data
                async with self._gathering:
                    taken = await self._gather(queue, self.config.sending_queue.batch)
            else:
                item = await queue.get()
                taken = [] if item is None else [(item, await self._load(queue, item))]
            self._update_gauges()
            if not taken:  # dispatch stopped and nothing left for this worker
                return
            try:
                await self._deliver(queue, taken)
            except Exception:  # _send logs and counts; a worker never dies
                log.exception("exporting failed unexpectedly", extra={"exporter": self.id})

    async def _load(self, queue: Any, item: Any) -> Batch | None:
        """The queued item's batch; an unreadable one is dropped here, counted and logged."""
        self._in_flight += 1
        try:
            return await queue.load(item)
        except Exception as exc:
            lost = getattr(getattr(item, "record", None), "meta", 0)
            self._failed.inc(lost)
            log.error(
                "A queued batch could not be read back. Dropping it.",
                extra={"exporter": self.id, "error": str(exc), "dropped_items": lost},
            )
            return None

    async def _gather(self, queue: Any, settings: QueueBatchSettings) -> list[tuple[Any, Any]]:
        """Queued items up to `min_size` (or what came within `flush_timeout` of the first)."""
        item = await queue.get()
        if item is None:
            return []
        taken = [(item, await self._load(queue, item))]
        size = self._gathered(taken[0][1], settings.sizer)
        deadline = asyncio.get_running_loop().time() + settings.flush_timeout
        while size < settings.min_size:
            item = queue.get_nowait()
            if item is None:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or queue.closed:
                    break
                await queue.wait(remaining)
                continue
            batch = await self._load(queue, item)
            taken.append((item, batch))
            size += self._gathered(batch, settings.sizer)
        return taken

    @staticmethod
    def _gathered(batch: Batch | None, sizer: str) -> int:
        return 0 if batch is None else sized(batch, sizer)  # None: unreadable, dropped

    async def _deliver(self, queue: Any, taken: list[tuple[Any, Batch | None]]) -> None:
        """Export what was taken, merged per request context and split at `max_size`; each
        item leaves the queue once the exports carrying it are done with."""
        groups: dict[tuple[tuple[str, str], ...], list[tuple[Any, Batch]]] = {}
        for item, batch in taken:
            if batch is None:  # unreadable: dropped (counted in _load)
                self._in_flight -= 1
                queue.done(item, True)
            else:
                groups.setdefault(context_key(batch), []).append((item, batch))
        settings = self.config.sending_queue.batch
        max_size = settings.max_size if settings is not None and settings.sizer == "items" else 0
        for group in groups.values():
            outcome = _KEPT
            try:
                batches = [batch for _, batch in group]
                try:
                    merged = batches[0] if len(batches) == 1 else concat(batches)
                    too_big = max_size and merged.item_count() > max_size
                    pieces = split(merged, max_size) if too_big else [merged]
                except Exception as exc:
                    items = sum(batch.item_count() for batch in batches)
                    self._failed.inc(items)
                    log.error(
                        "Queued batches could not be merged. Dropping them.",
                        extra={"exporter": self.id, "error": str(exc), "dropped_items": items},
                    )
                    outcome = _DROPPED
                    continue
                outcomes = [await self._send(piece) for piece in pieces]
                # kept (shutdown): the whole group stays queued for the next start
                outcome = _KEPT if _KEPT in outcomes else _SENT
            finally:
                for item, _ in group:
                    self._in_flight -= 1
                    queue.done(item, outcome != _KEPT)
                self._update_gauges()

    async def _send(self, batch: Batch) -> str:
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
                breaker=self.breaker,
                bulkhead=self.bulkhead,
            )
            self._sent.inc(items)
            return _SENT
        except PermanentError as exc:
            outcome = "permanent_error"
            self._failed.inc(items)
            log.error(
                "Exporting failed. The error is not retryable. Dropping data.",
                extra={"exporter": self.id, "error": str(exc), "dropped_items": items},
            )
            if not self._enabled:
                raise
            return _DROPPED
        except RetryableError as exc:
            # Interrupted (shutdown) leaves a persistent queue's record for the next start
            outcome = "interrupted" if isinstance(exc, Interrupted) else "retries_exhausted"
            if isinstance(exc, Interrupted) and self._persistent:
                return _KEPT
            self._failed.inc(items)
            log.error(
                "Exporting failed. Rejecting data.",
                extra={"exporter": self.id, "error": str(exc), "dropped_items": items},
            )
            if not self._enabled:
                raise
            return _DROPPED
        finally:
            self.telemetry.export_latency.labels(self.id, self.signal, outcome).observe(
                time.perf_counter() - started
            )

    def _log_retry(self, error: Exception, delay: float) -> None:
        log.info(
            "Exporting failed. Will retry the request after interval.",
            extra={"exporter": self.id, "error": str(error), "interval": f"{delay:.3f}s"},
        )
