"""`sending_queue.batch`: queued batches merged into larger exports, as the Collector's
exporterhelper does (flush at min_size or flush_timeout, split at max_size, never across
request contexts), in memory and on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from otlp.confmodels import ExporterConfig
from otlp.errors import RetryableError
from otlp.exporterhelper import QueuedExporter
from otlp.telemetry import Telemetry
from tests.fakes import FakeClock
from tests.test_durability_queue import Recorder, persistent, until
from tests.test_exporterhelper import spans


def queued(backend: Recorder, **batch: object) -> tuple[QueuedExporter, Telemetry]:
    telemetry = Telemetry()
    config = ExporterConfig.model_validate({"sending_queue": {"num_consumers": 2, "batch": batch}})
    return QueuedExporter("ch", "traces", backend, config, telemetry), telemetry


async def test_queued_batches_merge_up_to_min_size() -> None:
    backend = Recorder()
    exporter, telemetry = queued(backend, min_size=1500, flush_timeout="1h")
    await exporter.start()
    # all five are queued before a worker runs: the gatherer takes them in one export
    await asyncio.gather(*(exporter.consume(spans(300)) for _ in range(5)))
    await until(lambda: sum(backend.received) == 1500)
    assert backend.received == [1500]
    await exporter.shutdown()
    assert telemetry.value("otelcol_exporter_sent_spans_total", exporter="ch") == 1500


async def test_flush_timeout_sends_what_was_gathered() -> None:
    backend = Recorder()
    exporter, _ = queued(backend, min_size=1000, flush_timeout="20ms")
    await exporter.start()
    await exporter.consume(spans(10))
    await until(lambda: backend.received == [10])  # below min_size: sent after the timeout
    await exporter.consume(spans(7))
    await until(lambda: backend.received == [10, 7])
    await exporter.shutdown()


async def test_max_size_splits_the_merged_batch() -> None:
    backend = Recorder()
    exporter, _ = queued(backend, min_size=250, max_size=250, flush_timeout="1h")
    await exporter.start()
    await asyncio.gather(*(exporter.consume(spans(200)) for _ in range(3)))
    await until(lambda: sum(backend.received) == 400)
    assert backend.received == [250, 150]  # 200 + 200 reached min_size; split at max_size
    await exporter.shutdown()  # the third waits for more until shutdown sends it
    assert backend.received == [250, 150, 200]


async def test_batches_of_different_contexts_are_not_merged() -> None:
    backend = Recorder()
    exporter, _ = queued(backend, min_size=1000, flush_timeout="1h")
    await exporter.start()
    tenants = []
    for tenant in ("a", "b", "a"):
        batch = spans(100)
        batch.context = {"tenant": tenant}
        tenants.append(exporter.consume(batch))
    await asyncio.gather(*tenants)
    await exporter.shutdown()  # shutdown flushes the gathered batches without waiting
    assert sorted(backend.received) == [100, 200]


async def test_shutdown_sends_a_partial_batch_at_once() -> None:
    backend = Recorder()
    exporter, _ = queued(backend, min_size=10_000, flush_timeout="1h")
    await exporter.start()
    await exporter.consume(spans(5))
    await asyncio.sleep(0)  # the gatherer holds it and waits for more
    await exporter.shutdown()
    assert backend.received == [5]


async def test_persistent_queue_removes_merged_items_only_after_success(tmp_path: Path) -> None:
    backend = Recorder()
    backend.failing = RetryableError("down")
    queue = {"num_consumers": 1, "batch": {"min_size": 100, "flush_timeout": "1h"}}
    exporter, telemetry = await persistent(
        tmp_path, backend, queue=queue, clock=FakeClock(), retry_on_failure={"max_elapsed_time": 0}
    )
    for n in (40, 50, 60):
        await exporter.consume(spans(n))
    await exporter.shutdown()  # the merged export failed: every part stays on disk
    assert telemetry.value("otelcol_exporter_send_failed_spans_total", exporter="clickhouse") == 0

    healthy = Recorder()
    exporter, _ = await persistent(tmp_path, healthy, queue=queue)
    await until(lambda: sum(healthy.received) == 150)
    assert healthy.received == [150]
    await exporter.shutdown()

    again = Recorder()
    exporter, _ = await persistent(tmp_path, again, queue={"num_consumers": 1})
    await exporter.shutdown()
    assert again.received == []  # delivered: nothing replayed


def test_batch_config_follows_the_collector() -> None:
    queue = ExporterConfig.model_validate({"sending_queue": {"batch": {}}}).sending_queue
    assert queue.batch is not None
    assert (queue.batch.flush_timeout, queue.batch.min_size, queue.batch.max_size) == (
        0.2,
        8192,
        0,
    )
    assert queue.batch.sizer == "items"
    assert ExporterConfig().sending_queue.batch is None  # off unless configured
    inherited = ExporterConfig.model_validate(
        {"sending_queue": {"sizer": "bytes", "queue_size": 10**9, "batch": {}}}
    )
    assert inherited.sending_queue.batch is not None
    assert inherited.sending_queue.batch.sizer == "bytes"
    for bad, needle in (
        ({"batch": {"flush_timeout": "0s"}}, "flush_timeout"),
        ({"batch": {"min_size": 10, "max_size": 5}}, "max_size"),
        ({"sizer": "requests", "batch": {}}, "sizer"),
        ({"sizer": "items", "queue_size": 100, "batch": {"min_size": 200}}, "min_size"),
        ({"batch": {"partition": {}}}, "partition"),
    ):
        with pytest.raises(ValidationError, match=needle):
            ExporterConfig.model_validate({"sending_queue": bad})
