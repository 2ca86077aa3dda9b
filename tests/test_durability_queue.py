"""The persistent sending queue behind QueuedExporter, and the bulkhead, in one process:
the acknowledgement rule, replay order after a crash, what shutdown keeps, what is dropped
for good, the size caps; and a hung backend holding no more than num_consumers exports.

The crash is real: a child process acknowledges batches into the queue and dies with
os._exit before any of them is exported.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_exporterhelper import spans

from extensions.file_storage import FileStorageConfig, FileStorageExtension, sanitize
from otlp.batch import Batch
from otlp.component import Exporter
from otlp.confmodels import ExporterConfig
from otlp.errors import BackpressureError, PermanentError, RetryableError
from otlp.exporterhelper import QueuedExporter
from otlp.telemetry import Telemetry
from tests.fakes import FakeClock

ROOT = Path(__file__).resolve().parent.parent


class Host:
    def __init__(self, telemetry: Telemetry, **extensions: Any) -> None:
        self.telemetry = telemetry
        self.extensions = extensions

    def extension(self, component_id: str) -> Any:
        return self.extensions.get(component_id)


class Recorder(Exporter):
    """Remembers the sizes of the batches it got, in order; fails while `failing`."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.failing: Exception | None = None

    async def export(self, batch: Batch) -> None:
        if self.failing is not None:
            raise self.failing
        self.received.append(batch.item_count())


async def until(condition: Callable[[], bool], patience: float = 30.0) -> None:
    """Let the loop (and threads) run until `condition` holds; `patience` only bounds a
    failing test, it is not part of what is tested."""
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.001)


def storage(directory: Path, **settings: Any) -> FileStorageExtension:
    config = FileStorageConfig.model_validate(
        {"directory": str(directory), "create_directory": True, **settings}
    )
    return FileStorageExtension("file_storage", config)


async def persistent(
    directory: Path,
    backend: Exporter,
    queue: dict[str, Any] | None = None,
    clock: FakeClock | None = None,
    **config: Any,
) -> tuple[QueuedExporter, Telemetry]:
    telemetry = Telemetry()
    ext = storage(directory, **config.pop("file_storage", {}))
    host = Host(telemetry, file_storage=ext)
    await ext.start(host)  # type: ignore[arg-type]
    cfg = ExporterConfig.model_validate(
        {"sending_queue": {"storage": "file_storage", **(queue or {})}, **config}
    )
    exporter = QueuedExporter("clickhouse", "traces", backend, cfg, telemetry, clock=clock)
    await exporter.start(host)  # type: ignore[arg-type]
    return exporter, telemetry


CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from tests.test_durability_queue import persistent, Recorder
    from tests.test_exporterhelper import spans
    from otlp.errors import RetryableError

    async def main():
        backend = Recorder()
        backend.failing = RetryableError("backend down")
        exporter, _ = await persistent(
            sys.argv[1], backend, queue={"num_consumers": 2},
            retry_on_failure={"initial_interval": "1h", "max_elapsed_time": 0},
        )
        for n in range(1, 11):
            await exporter.consume(spans(n))  # returns: acknowledged
            print(n, flush=True)
        os._exit(0)  # no shutdown, no close: a crash

    asyncio.run(main())
    """
)


async def test_acknowledged_batches_survive_a_crash_and_replay_first(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(n) for n in range(1, 11)]
    # the directory is named as the Collector names the storage client
    assert (tmp_path / "exporter_clickhouse__traces").is_dir()

    backend = Recorder()
    exporter, telemetry = await persistent(tmp_path, backend, queue={"num_consumers": 1})
    assert (
        telemetry.value(
            "airis_exporter_queue_recovered_batches_total",
            exporter="clickhouse",
            data_type="traces",
        )
        == 10
    )
    await exporter.consume(spans(100))  # new data goes behind the replay
    await until(lambda: len(backend.received) == 11)
    assert backend.received == [*range(1, 11), 100]
    await exporter.shutdown()

    # everything was delivered: nothing comes back
    again = Recorder()
    exporter, telemetry = await persistent(tmp_path, again)
    await exporter.shutdown()
    assert again.received == []


async def test_shutdown_keeps_undelivered_batches(tmp_path: Path) -> None:
    backend = Recorder()
    backend.failing = RetryableError("down")
    clock = FakeClock()
    exporter, telemetry = await persistent(
        tmp_path, backend, clock=clock, retry_on_failure={"max_elapsed_time": 0}
    )
    for n in (3, 4, 5):
        await exporter.consume(spans(n))
    await exporter.shutdown()
    # kept, not dropped: nothing counted as failed
    assert telemetry.value("otelcol_exporter_send_failed_spans_total", exporter="clickhouse") == 0

    healthy = Recorder()
    exporter, _ = await persistent(tmp_path, healthy, queue={"num_consumers": 1})
    await until(lambda: len(healthy.received) == 3)
    assert healthy.received == [3, 4, 5]
    await exporter.shutdown()


async def test_dropped_for_good_is_not_replayed(tmp_path: Path) -> None:
    class Picky(Exporter):
        async def export(self, batch: Batch) -> None:
            if batch.item_count() == 2:
                raise PermanentError("mapping conflict")
            raise RetryableError("down")

    clock = FakeClock()
    exporter, telemetry = await persistent(
        tmp_path,
        Picky(),
        clock=clock,
        retry_on_failure={"initial_interval": "1s", "max_elapsed_time": "10s"},
        circuit_breaker={"enabled": False},
    )
    await exporter.consume(spans(2))  # permanent error
    await exporter.consume(spans(3))  # retries exhausted
    failed = "otelcol_exporter_send_failed_spans_total"
    await until(lambda: telemetry.value(failed, exporter="clickhouse") == 5)
    await exporter.shutdown()
    healthy = Recorder()
    exporter, _ = await persistent(tmp_path, healthy)
    await exporter.shutdown()
    assert healthy.received == []


async def test_full_queue_refuses_with_backpressure(tmp_path: Path) -> None:
    backend = Recorder()
    backend.failing = RetryableError("down")
    exporter, telemetry = await persistent(
        tmp_path,
        backend,
        queue={"queue_size": 3, "num_consumers": 1},
        retry_on_failure={"initial_interval": "1h", "max_elapsed_time": 0},
    )
    for _ in range(4):  # one is taken by the worker, three wait
        await exporter.consume(spans(1))
        await asyncio.sleep(0.01)
    with pytest.raises(BackpressureError):
        await exporter.consume(spans(7))
    assert (
        telemetry.value("otelcol_exporter_enqueue_failed_spans_total", exporter="clickhouse") == 7
    )
    size = telemetry.value("otelcol_exporter_queue_size", exporter="clickhouse", data_type="traces")
    assert size == 3
    await exporter.shutdown()


async def test_disk_cap_refuses_with_backpressure(tmp_path: Path) -> None:
    backend = Recorder()
    backend.failing = RetryableError("down")
    exporter, telemetry = await persistent(
        tmp_path,
        backend,
        queue={"queue_size": 100000},
        retry_on_failure={"initial_interval": "1h", "max_elapsed_time": 0},
        file_storage={"wal": {"segment_size_mib": 1, "max_size_mib": 2}},
    )
    accepted = 0
    with pytest.raises(BackpressureError, match="full"):
        for _ in range(10_000):
            await exporter.consume(spans(500))
            accepted += 1
    disk = telemetry.value(
        "airis_exporter_queue_disk_bytes", exporter="clickhouse", data_type="traces"
    )
    assert 0 < disk <= 2 << 20 and accepted > 0
    await exporter.shutdown()
    # what was accepted is all there
    healthy = Recorder()
    exporter, _ = await persistent(tmp_path, healthy)
    await until(lambda: len(healthy.received) == accepted)
    await exporter.shutdown()


async def test_delivered_segments_are_reclaimed(tmp_path: Path) -> None:
    backend = Recorder()
    exporter, _ = await persistent(tmp_path, backend, file_storage={"wal": {"segment_size_mib": 1}})
    for _ in range(200):
        await exporter.consume(spans(300))
    await until(lambda: len(backend.received) == 200)
    segments = list((tmp_path / "exporter_clickhouse__traces").glob("*.wal"))
    assert len(segments) == 1  # only the active one is left
    await exporter.shutdown()


async def test_missing_storage_extension_fails_the_start(tmp_path: Path) -> None:
    cfg = ExporterConfig.model_validate({"sending_queue": {"storage": "file_storage/q"}})
    exporter = QueuedExporter("clickhouse", "traces", Recorder(), cfg, Telemetry())
    with pytest.raises(RuntimeError, match=r"sending_queue\.storage.*file_storage/q"):
        await exporter.start(Host(Telemetry()))  # type: ignore[arg-type]


def test_file_storage_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory must exist"):
        FileStorageConfig.model_validate({"directory": str(tmp_path / "missing")})
    config = FileStorageConfig.model_validate(
        {
            "directory": str(tmp_path),
            "timeout": "2s",
            "fsync": True,
            "compaction": {"on_start": True, "directory": "/tmp", "max_transaction_size": 65536},
            "wal": {"compression": "zstd", "fsync_interval": "100ms"},
        }
    )
    assert config.timeout == 2.0 and config.wal.compression == "zstd"
    with pytest.raises(ValueError):
        FileStorageConfig.model_validate({"directory": str(tmp_path), "wal": {"compression": "x"}})
    with pytest.raises(ValueError):
        FileStorageConfig.model_validate({"directory": str(tmp_path), "bogus": 1})
    assert sanitize("exporter_clickhouse_a/b") == "exporter_clickhouse_a~002Fb"


# --- bulkhead --------------------------------------------------------------------------------
class Hung(Exporter):
    """A backend that never answers and ignores cancellation until released (as a blocking
    call in a thread would)."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def export(self, batch: Batch) -> None:
        self.calls += 1
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                continue  # refuses to stop, like a thread stuck in a socket read


async def test_hung_exports_hold_their_slots_and_no_more() -> None:
    telemetry = Telemetry()
    backend = Hung()
    clock = FakeClock()  # backoff between attempts is instant; export timeouts are real
    config = ExporterConfig.model_validate(
        {
            "timeout": "20ms",
            "sending_queue": {"num_consumers": 2},
            "retry_on_failure": {"max_elapsed_time": 0},
            "circuit_breaker": {"enabled": False},
        }
    )
    exporter = QueuedExporter("stuck", "traces", backend, config, telemetry, clock=clock)
    await exporter.start()
    for _ in range(5):
        await exporter.consume(spans(1))
    in_flight = "airis_exporter_in_flight_exports"
    await until(lambda: backend.calls == 2)
    # both attempts time out and are retried at once, yet no third call starts while the
    # hung ones hold the slots
    for _ in range(20):
        await asyncio.sleep(0.02)
    assert backend.calls == 2
    assert telemetry.value(in_flight, exporter="stuck", data_type="traces") == 2
    backend.release.set()  # the hung calls end: the slots free, delivery goes on
    await until(lambda: telemetry.value("otelcol_exporter_sent_spans_total", exporter="stuck") == 5)
    await exporter.shutdown()
    assert telemetry.value(in_flight, exporter="stuck", data_type="traces") == 0


async def test_shutdown_does_not_wait_for_hung_exports() -> None:
    """An in-memory queue drains with retries on shutdown, but no longer than
    retry_on_failure.max_elapsed_time: a hung backend cannot hold the process forever."""
    backend = Hung()
    config = ExporterConfig.model_validate(
        {
            "timeout": "20ms",
            "sending_queue": {"num_consumers": 1},
            "retry_on_failure": {"initial_interval": "50ms", "max_elapsed_time": "1s"},
        }
    )
    exporter = QueuedExporter("stuck", "traces", backend, config, Telemetry())
    await exporter.start()
    await exporter.consume(spans(1))
    await until(lambda: backend.calls == 1)
    await asyncio.wait_for(exporter.shutdown(), 30)
    backend.release.set()


class BlockedInThread(Exporter):
    """Every export blocks a thread until released: a client stuck in a socket read."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls = 0

    async def export(self, batch: Batch) -> None:
        self.calls += 1
        await asyncio.to_thread(self.gate.wait)


class ThreadedHealthy(Exporter):
    def __init__(self) -> None:
        self.items = 0

    async def export(self, batch: Batch) -> None:
        n = await asyncio.to_thread(batch.item_count)
        self.items += n


async def test_a_hung_exporter_cannot_take_the_threads_of_another() -> None:
    """Timed-out exports are cancelled, but their threads stay stuck; retries must not take
    fresh threads from the pool the healthy exporter needs."""
    telemetry = Telemetry()
    clock = FakeClock()
    blocked, healthy = BlockedInThread(), ThreadedHealthy()
    base = {"retry_on_failure": {"max_elapsed_time": 0}, "circuit_breaker": {"enabled": False}}
    stuck = QueuedExporter(
        "stuck",
        "traces",
        blocked,
        ExporterConfig.model_validate(
            {**base, "timeout": "10ms", "sending_queue": {"num_consumers": 2}}
        ),
        telemetry,
        clock=clock,
    )
    good = QueuedExporter("good", "traces", healthy, ExporterConfig(), telemetry)
    for q in (stuck, good):
        await q.start()
    try:
        for _ in range(100):
            await stuck.consume(spans(1))
            await good.consume(spans(1))
        await until(lambda: healthy.items == 100 and blocked.calls >= 6)
        stuck_threads = [t for t in threading.enumerate() if t.name.startswith("export-stuck")]
        assert len(stuck_threads) == 2
    finally:
        blocked.gate.set()
        for q in (stuck, good):
            await q.shutdown()
