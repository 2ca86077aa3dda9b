"""The measurement of one variant: warm-up, saturation ramp, a fixed-rate window, drain.

- Saturation: concurrency doubles (1, 2, 4, ...) in steps of equal length until the acknowledged
  throughput has not grown by `growth` for `patience` steps (or requests fail, or the ramp's
  time budget is spent); the best step's acknowledged items/s is the saturation figure and its
  CPU per item the "at saturation" cost.
- Window: a fixed offered rate R (the runner picks half of the lowest saturation among the
  scenario's collectors, so every collector gets the same load) → CPU per item, export-call
  latency percentiles.
- CPU: utime + stime of the collector's whole process tree over each step (benchmarks.procstat).
- Items: every request of every phase is counted; delivered items are read after the load
  stopped (see benchmarks.targets); lost = acknowledged - delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.loadgen import LoadConfig, run
from benchmarks.payloads import Template
from benchmarks.procstat import TreeMeter, peak_rss_by_pid
from benchmarks.scenarios import Variant
from benchmarks.targets import metric_sum, scrape

MIB = 1024 * 1024


@dataclass
class Settings:
    warmup_s: float = 1.0
    step_s: float = 3.0
    window_s: float = 6.0
    levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    growth: float = 1.05
    patience: int = 2
    ramp_budget_s: float = 32.0
    # smoke runs: a fixed number of requests per step instead of a duration
    step_requests: int | None = None
    batch: int = 512
    # gRPC connections per run: several, so workers sharing a port all get some
    connections: int = 8
    floor_s: float = 1.0
    drain_timeout_s: float = 20.0


QUICK = Settings(
    warmup_s=0.5,
    step_s=1.5,
    window_s=3.0,
    levels=(1, 2, 4, 8, 16, 32, 64),
    ramp_budget_s=12.0,
    floor_s=0.3,
)


class Meter:
    """Runs load against one variant and keeps its running totals."""

    def __init__(self, variant: Variant, templates: Sequence[Template], settings: Settings):
        assert variant.collector is not None
        self.variant = variant
        self.collector = variant.collector
        self.templates = templates
        self.settings = settings
        self.tree = TreeMeter(self.collector.pid)
        self.totals: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    async def load(
        self, concurrency: int, rate: float = 0.0, duration: float | None = None
    ) -> dict[str, Any]:
        s = self.settings
        cfg = LoadConfig(
            target=self.collector.target(self.variant.scenario.protocol),
            signal=self.variant.scenario.signal,
            batch=s.batch,
            concurrency=concurrency,
            rate=rate,
            duration=None if s.step_requests else duration,
            requests=s.step_requests,
            distinct=len(self.templates),
            connections=s.connections,
        )
        cpu_before = self.tree.cpu()
        result = await run(cfg, self.templates)
        cpu = self.tree.cpu() - cpu_before
        for key, value in result["items"].items():
            self.totals[key] += value
        self.errors.update(result["errors"])
        acked = result["items"]["acknowledged"]
        return {
            "concurrency": concurrency,
            "rate": rate,
            "elapsed_s": result["elapsed_s"],
            "items_per_s": result["acknowledged_items_per_s"],
            "acknowledged": acked,
            "failed_requests": result["requests"]["failed"],
            "collector_cpu_s": round(cpu, 3),
            "collector_cpu_share": round(cpu / result["elapsed_s"], 3)
            if result["elapsed_s"]
            else 0,
            "cpu_us_per_item": round(cpu / acked * 1e6, 3) if acked else None,
            "latency_ms": result["latency_ms"],
            "loadgen_cpu_share": result["loadgen_cpu_share"],
        }

    async def warmup(self) -> None:
        await self.load(4, duration=self.settings.warmup_s)
        await self.settle()

    async def ramp(self) -> dict[str, Any]:
        s = self.settings
        steps: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        misses = 0
        began = time.monotonic()
        for concurrency in s.levels:
            step = await self.load(concurrency, duration=s.step_s)
            steps.append(step)
            if best is None or step["items_per_s"] > best["items_per_s"] * s.growth:
                misses = 0
            else:
                misses += 1
            if best is None or step["items_per_s"] > best["items_per_s"]:
                best = step
            if step["failed_requests"] or misses >= s.patience:
                break
            if time.monotonic() - began > s.ramp_budget_s:
                break
        await self.settle()
        assert best is not None
        result = {"steps": steps, "best": best}
        self.variant.results["saturation"] = result
        return result

    async def window(self, rate: float) -> dict[str, Any]:
        best = self.variant.results["saturation"]["best"]
        # enough requests in flight for the rate even when each waits for a batch timeout
        concurrency = min(max(self.settings.levels), max(8, 2 * best["concurrency"]))
        result = await self.load(concurrency, rate=rate, duration=self.settings.window_s)
        self.variant.results["window"] = result
        await self.settle()
        return result

    def delivered(self) -> float | None:
        if self.variant.sink is not None:
            return self.variant.sink.accepted()
        return self.collector.delivered()

    async def settle(self) -> None:
        """Wait until what was acknowledged has left the pipeline (or stopped moving), so one
        phase's backlog is not billed to the next."""
        deadline = time.monotonic() + self.settings.drain_timeout_s
        last: tuple[float | None, float] | None = None
        stable = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            delivered = self.delivered()
            queued = self._queued()
            if delivered is not None and delivered >= self.totals["acknowledged"] and not queued:
                return
            state = (delivered, queued)
            stable = stable + 1 if state == last else 0
            last = state
            if stable >= 4 and not queued:
                return

    def _queued(self) -> float:
        if self.collector.side != "airis":
            return 0.0
        try:
            return metric_sum(scrape(self.collector.metrics_url), "otelcol_exporter_queue_size")
        except OSError:
            return 0.0

    def peak_rss(self) -> None:
        by_pid = peak_rss_by_pid(self.tree.pids())
        self.variant.results["peak_rss_mib"] = round(sum(by_pid.values()) / MIB, 1)
        self.variant.results["peak_rss_mib_by_process"] = {
            str(pid): round(v / MIB, 1) for pid, v in by_pid.items()
        }

    def finish(self) -> None:
        """Stop the collector (and its sink) and account for every item."""
        delivered = self.delivered()
        code = self.collector.stop()
        if self.variant.sink is not None:
            self.variant.sink.stop()
        stored = self.collector.stored_after_stop()
        if stored is None:
            stored = int(delivered) if delivered is not None else None
        acked = self.totals["acknowledged"]
        self.variant.results["items"] = {
            "sent": self.totals["sent"],
            "acknowledged": acked,
            "rejected": self.totals["rejected"],
            "failed": self.totals["failed"],
            "stored": stored,
            "lost": max(0, acked - stored) if stored is not None else None,
        }
        self.variant.results["errors"] = dict(self.errors)
        self.variant.results["exit_code"] = code
