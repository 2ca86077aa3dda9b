"""memory_limiter: refuse data with a retryable error while the process is over its soft
limit (limit - spike), and force a garbage collection above the hard limit. Refusing is
what keeps memory bounded: the receivers turn the refusal into UNAVAILABLE / 503, and the
clients back off and retry."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time

import pyarrow as pa

from otlp.batch import Batch
from otlp.component import Host, Processor
from otlp.errors import BackpressureError
from otlp.telemetry import Telemetry
from processors.memory_limiter.config import MemoryLimiterConfig

log = logging.getLogger("airis.processor.memory_limiter")
_MIB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


def total_memory_bytes() -> int:
    """The cgroup limit when there is one (containers), else physical memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return os.sysconf("SC_PHYS_PAGES") * _PAGE


class MemoryLimiter(Processor):
    def __init__(self, component_id: str, config: MemoryLimiterConfig, telemetry: Telemetry):
        self.id = component_id
        self.config = config
        self.telemetry = telemetry
        if config.limit_mib:
            self.hard_limit = config.limit_mib * _MIB
            spike = config.spike_limit_mib * _MIB or self.hard_limit // 5
        else:
            total = total_memory_bytes()
            self.hard_limit = total * config.limit_percentage // 100
            spike = total * config.spike_limit_percentage // 100 or self.hard_limit // 5
        self.soft_limit = self.hard_limit - spike
        self.refusing = False
        self._task: asyncio.Task[None] | None = None
        self._last_gc = 0.0
        self._gauge = telemetry.memory_limiter_refusing.labels(component_id)

    async def start(self, host: Host) -> None:
        self.check()
        self._task = asyncio.create_task(self._loop())

    async def shutdown(self) -> None:
        if self._task:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval)
            self.check()

    def check(self) -> None:
        rss = resident_bytes()
        now = time.monotonic()
        if rss > self.hard_limit:
            min_interval = self.config.min_gc_interval_when_hard_limited
        elif rss > self.soft_limit:
            min_interval = self.config.min_gc_interval_when_soft_limited
        else:
            min_interval = None
        if min_interval is not None and now - self._last_gc >= min_interval:
            gc.collect()
            pa.default_memory_pool().release_unused()
            self._last_gc = now
            rss = resident_bytes()
        refusing = rss > self.soft_limit
        if refusing != self.refusing:
            self.refusing = refusing
            self._gauge.set(int(refusing))
            if refusing:
                log.warning(
                    "Memory usage is above soft limit. Refusing data.",
                    extra={"processor": self.id, "cur_mem_mib": rss // _MIB},
                )
            else:
                log.info(
                    "Memory usage back within limits. Resuming normal operation.",
                    extra={"processor": self.id, "cur_mem_mib": rss // _MIB},
                )

    async def consume(self, batch: Batch) -> None:
        if self.refusing:
            # not a drop: the receiver counts it as refused and the client retries
            raise BackpressureError(
                "data refused due to high memory usage", retry_after=self.config.check_interval
            )
        await self.next.consume(batch)
