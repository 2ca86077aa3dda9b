"""Sending queue, retries with backoff and jitter, timeouts: on a fake clock, no sleeps."""

from __future__ import annotations

import asyncio
import random

import pyarrow as pa
import pytest

from otlp.batch import RESOURCES, SCOPES, SPANS, Batch, empty_batch
from otlp.component import Exporter
from otlp.confmodels import ExporterConfig, RetrySettings
from otlp.errors import BackpressureError, PermanentError, RetryableError
from otlp.exporterhelper import Backoff, QueuedExporter, send_with_retry
from otlp.telemetry import Telemetry
from tests.fakes import FakeClock


def spans(n: int) -> Batch:
    """n spans (fields null) under one resource and one scope."""
    batch = empty_batch("traces")
    batch.resources = pa.table({f.name: pa.nulls(1, f.type) for f in RESOURCES}, schema=RESOURCES)
    scopes = {f.name: pa.nulls(1, f.type) for f in SCOPES}
    scopes["resource_index"] = pa.array([0], pa.int32())
    batch.scopes = pa.table(scopes, schema=SCOPES)
    columns = {
        f.name: pa.nulls(n, f.type) if f.name != "scope_index" else pa.array([0] * n, pa.int32())
        for f in SPANS
    }
    batch.tables["spans"] = pa.table(columns, schema=SPANS)
    return batch


class Backend(Exporter):
    """A downstream that fails a scripted number of times, then accepts."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures = list(failures or [])
        self.received: list[int] = []
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def export(self, batch: Batch) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.received.append(batch.item_count())


def test_backoff_grows_with_jitter_and_caps() -> None:
    settings = RetrySettings(initial_interval="1s", multiplier=2, max_interval="5s")
    backoff = Backoff(settings, random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    bases = [1, 2, 4, 5, 5, 5]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= delay <= base * 1.5


async def test_retries_until_success_on_fake_clock() -> None:
    clock = FakeClock()
    backend = Backend([RetryableError("down"), RetryableError("down")])
    await send_with_retry(
        lambda: backend.export(spans(3)), RetrySettings(), 5.0, clock, rng=random.Random(0)
    )
    assert backend.received == [3]
    assert len(clock.sleeps) == 2


async def test_retry_after_from_backend_wins() -> None:
    clock = FakeClock()
    backend = Backend([RetryableError("slow down", retry_after=7.0)])
    await send_with_retry(lambda: backend.export(spans(1)), RetrySettings(), 5.0, clock)
    assert clock.sleeps == [7.0]


async def test_gives_up_after_max_elapsed_time() -> None:
    clock = FakeClock()
    backend = Backend([RetryableError("down")] * 1000)
    settings = RetrySettings(initial_interval="1s", max_interval="10s", max_elapsed_time="60s")
    with pytest.raises(RetryableError, match="no more retries"):
        await send_with_retry(lambda: backend.export(spans(1)), settings, 5.0, clock)
    assert clock.now <= 60


async def test_permanent_error_is_not_retried() -> None:
    clock = FakeClock()
    backend = Backend([PermanentError("bad data")])
    with pytest.raises(PermanentError):
        await send_with_retry(lambda: backend.export(spans(1)), RetrySettings(), 5.0, clock)
    assert backend.calls == 1 and clock.sleeps == []


async def test_queue_full_refuses_with_backpressure_and_counts() -> None:
    telemetry = Telemetry()
    backend = Backend()
    backend.gate = asyncio.Event()  # the backend is stuck
    config = ExporterConfig.model_validate({"sending_queue": {"queue_size": 2, "num_consumers": 1}})
    queue = QueuedExporter("stuck", "traces", backend, config, telemetry)
    await queue.start()
    await queue.consume(spans(1))
    await asyncio.sleep(0)  # the worker takes the first batch and hangs on the gate
    await queue.consume(spans(1))
    await queue.consume(spans(1))
    with pytest.raises(BackpressureError):
        await queue.consume(spans(5))
    assert telemetry.value("otelcol_exporter_enqueue_failed_spans_total", exporter="stuck") == 5
    assert telemetry.value("otelcol_exporter_queue_size", exporter="stuck", data_type="traces") == 2
    backend.gate.set()
    await queue.shutdown()
    assert backend.received == [1, 1, 1]
    assert telemetry.value("otelcol_exporter_sent_spans_total", exporter="stuck") == 3


async def test_permanent_failure_dropped_and_counted() -> None:
    telemetry = Telemetry()
    backend = Backend([PermanentError("mapping conflict")])
    queue = QueuedExporter("es", "traces", backend, ExporterConfig(), telemetry)
    await queue.start()
    await queue.consume(spans(4))
    await queue.shutdown()
    assert telemetry.value("otelcol_exporter_send_failed_spans_total", exporter="es") == 4
    assert backend.received == []


async def test_shutdown_drains_queue() -> None:
    telemetry = Telemetry()
    backend = Backend()
    queue = QueuedExporter("ok", "traces", backend, ExporterConfig(), telemetry)
    await queue.start()
    for _ in range(50):
        await queue.consume(spans(2))
    await queue.shutdown()
    assert sum(backend.received) == 100


async def test_one_stuck_exporter_does_not_stall_another() -> None:
    from otlp.service import Fanout

    telemetry = Telemetry()
    stuck, healthy = Backend(), Backend()
    stuck.gate = asyncio.Event()
    config = ExporterConfig.model_validate({"sending_queue": {"queue_size": 1000}})
    queues = [
        QueuedExporter("stuck", "traces", stuck, config, telemetry),
        QueuedExporter("healthy", "traces", healthy, config, telemetry),
    ]
    for q in queues:
        await q.start()
    fanout = Fanout(queues)
    for _ in range(100):
        await fanout.consume(spans(1))
    for _ in range(20):
        await asyncio.sleep(0)
    assert sum(healthy.received) == 100
    assert stuck.received == []
    stuck.gate.set()
    for q in queues:
        await q.shutdown()
    assert sum(stuck.received) == 100


async def test_shutdown_drain_retries_through_an_open_breaker() -> None:
    """Acknowledged data in the in-memory queue is not dropped on SIGTERM just because the
    backend was failing: the drain keeps retrying (bounded by max_elapsed_time)."""
    telemetry = Telemetry()
    backend = Backend([RetryableError("slow insert")] * 6)
    config = ExporterConfig.model_validate(
        {
            "retry_on_failure": {"initial_interval": "5ms", "max_interval": "10ms"},
            "circuit_breaker": {"failure_threshold": 3, "open_interval": "20ms"},
        }
    )
    queue = QueuedExporter("flaky", "traces", backend, config, telemetry)
    await queue.start()
    await queue.consume(spans(4))
    await queue.shutdown()
    assert backend.received == [4]
    assert telemetry.value("otelcol_exporter_send_failed_spans_total", exporter="flaky") == 0
