"""Helpers for the fault tests (tests/test_durability_*.py): a client stream that remembers
which requests were acknowledged, a way to make the embedded store unwritable, readers for
the store and the collector's self-metrics.

Every request of a stream carries a request id (benchmarks.payloads stamps it into the first
8 bytes of each trace id), so the store tells exactly which acknowledged requests arrived and
how many times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.loadgen import LoadConfig, RequestFailed, make_sender
from benchmarks.payloads import make_templates
from tests.harness import base_config, query_store


def persistent_config(
    tmp: Path, fsync: bool = False, queue: dict[str, Any] | None = None, **exporter: Any
) -> dict[str, Any]:
    """base_config with the clickhouse exporter's queue in a file_storage write-ahead log,
    fast retries and a short circuit-breaker interval (so a test sees recovery quickly)."""
    config = base_config(tmp)
    config["extensions"]["file_storage"] = {
        "directory": str(tmp / "queue"),
        "create_directory": True,
        "fsync": fsync,
    }
    config["service"]["extensions"].append("file_storage")
    config["exporters"]["clickhouse"].update(
        {
            "sending_queue": {"storage": "file_storage", **(queue or {})},
            "retry_on_failure": {
                "initial_interval": "100ms",
                "max_interval": "500ms",
                "max_elapsed_time": 0,
            },
            "circuit_breaker": {"failure_threshold": 3, "open_interval": "1s"},
            **exporter,
        }
    )
    return config


class Stream:
    """Sends trace requests of `batch` spans from a thread until stopped; `acked` holds the
    request ids the collector acknowledged, `failed` those it did not (error kinds counted)."""

    def __init__(
        self,
        target: str,
        batch: int = 50,
        concurrency: int = 4,
        rate: float = 0.0,
        timeout: float = 5.0,
    ) -> None:
        self.cfg = LoadConfig(
            target=target,
            signal="traces",
            batch=batch,
            concurrency=concurrency,
            rate=rate,
            timeout=timeout,
            duration=None,
            requests=10**9,
        )
        self.batch = batch
        self.acked: set[int] = set()
        self.failed: set[int] = set()
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        # request ids of different streams never meet (as in benchmarks.loadgen)
        self._next = random.getrandbits(31) << 32

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        templates = make_templates("traces", self.batch, 4)
        sender = make_sender(self.cfg)
        interval = self.batch / self.cfg.rate * self.cfg.concurrency if self.cfg.rate else 0.0

        async def worker() -> None:
            while not self._stop.is_set():
                rid = self._next
                self._next += 1
                began = time.monotonic()
                try:
                    await sender.send(templates[rid % len(templates)].render(rid))
                    self.acked.add(rid)
                except RequestFailed as err:
                    self.failed.add(rid)
                    self.errors[err.kind] += 1
                    await asyncio.sleep(0.05)  # a client backs off a little
                except (OSError, TimeoutError) as err:
                    self.failed.add(rid)
                    self.errors[type(err).__name__] += 1
                    await asyncio.sleep(0.05)
                if interval:
                    await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))

        try:
            await asyncio.gather(*(worker() for _ in range(self.cfg.concurrency)))
        finally:
            await sender.close()

    def wait_acked(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.acked)} requests acknowledged: {self.errors}")
            time.sleep(0.05)


def stored_requests(store: Path, table: str = "otel_traces") -> Counter[int]:
    """Request id → rows stored for it (a stopped collector's store)."""
    rows = query_store(
        store,
        f"SELECT substring(TraceId, 1, 16) AS rid, count() AS n FROM otel.{table} GROUP BY rid",
    )
    return Counter({int(r["rid"], 16): int(r["n"]) for r in rows})


def delivery_report(acked: set[int], stored: Counter[int], batch: int) -> dict[str, Any]:
    """Missing acknowledged requests, and duplicates (requests stored more than once)."""
    missing = sorted(rid for rid in acked if stored.get(rid, 0) < batch)
    duplicated = {rid: n // batch for rid, n in stored.items() if n > batch}
    return {
        "acked": len(acked),
        "stored_requests": len(stored),
        "missing": missing,
        "duplicated_requests": len(duplicated),
        "extra_copies": sum(c - 1 for c in duplicated.values()),
        "partial": sorted(rid for rid, n in stored.items() if n % batch),
    }


def _store_dirs(path: Path) -> list[Path]:
    """The store's directories down to the tables' (store/store/xyz/<uuid>), where inserts
    create their parts; below that live parts, which come and go."""
    found = [path]
    level = [path]
    for _ in range(3):  # level by level: parts' temporary directories vanish while we look
        below = []
        for d in level:
            try:
                with os.scandir(d) as entries:
                    below += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                continue
        found += below
        level = below
    return found


def freeze(dirs: list[Path]) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", *map(str, dirs)], check=True, capture_output=True)
    else:
        for d in dirs:
            d.chmod(d.stat().st_mode & ~0o222)


def thaw(dirs: list[Path]) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", *map(str, dirs)], check=False, capture_output=True)
    else:
        for d in dirs:
            d.chmod(d.stat().st_mode | 0o200)


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make the store at `path` refuse writes while the collector keeps running: a backend
    whose disk turned read-only. As root (permission bits do not bind root) its directories
    are made immutable with chattr +i; otherwise write permission is removed. No new part can
    be created, so every insert fails (ClickHouse STD_EXCEPTION, which the exporter retries)."""
    dirs = _store_dirs(path)
    try:
        freeze(dirs)
        yield
    finally:
        thaw(dirs)


class Flapping:
    """A backend up half of the time: the store is unwritable for `period`/2 out of every
    `period` seconds, so the exporter drains at most half of what it could."""

    def __init__(self, path: Path, period: float = 1.0) -> None:
        self.dirs = _store_dirs(path)
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            freeze(self.dirs)
            try:
                self._stop.wait(self.period / 2)
            finally:
                thaw(self.dirs)
            self._stop.wait(self.period / 2)

    def __enter__(self) -> Flapping:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        thaw(self.dirs)


def metrics(url: str) -> dict[str, float]:
    """The collector's self-metrics: `name{labels}` → value."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in metrics(url).items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    """Poll `condition`; the timeout only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        time.sleep(0.1)


def process_status(pid: int) -> dict[str, str]:
    """/proc/PID/status: VmHWM is the peak resident set size the kernel saw."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def kib(value: str) -> int:
    return int(value.split()[0])
