"""The measurement of one variant: warm-up, saturation ramp, a fixed-rate window.

- Every load step is billed until what it got acknowledged has been delivered (exporter sent,
  batch processor output for the Collector's nop, or sink accepted): a queue may take in more
  than the exporter gets out, and that backlog's work belongs to the step that caused it.
- Saturation: concurrency doubles (1, 2, 4, ...) in steps of equal length until the
  sustained throughput (items acknowledged / (load time + the time their delivery took
  beyond a batch timeout)) has not grown by `growth` for `patience` steps (or requests
  fail, or the ramp's time budget is spent); the best step gives the saturation figure and
  the "saturated" CPU per item.
- Window: a fixed offered rate R (the runner picks half of the lowest saturation among the
  scenario's collectors, so every collector gets the same load) → CPU per item, export-call
  latency percentiles.
- CPU: utime + stime of the collector's whole process tree (benchmarks.procstat) from the
  start of a step until its items were delivered, divided by the items acknowledged in it.
- Items: every request of every phase is counted; what was stored is read at the end (see
  benchmarks.targets); lost = acknowledged - stored.
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
from benchmarks.procstat import TreeMeter, peak_rss_by_pid, reset_peak_rss
from benchmarks.scenarios import Variant
from benchmarks.targets import UNIT, metric_sum, scrape

MIB = 1024 * 1024
# the batch processor's default timeout plus a poll: the last batch of a step may wait this
# long before it is delivered, which is latency, not a lack of throughput
BATCH_WAIT_S = 0.25


@dataclass
class Settings:
    warmup_s: float = 1.0
    step_s: float = 3.0
    window_s: float = 6.0
    # windows at R per collector, taken in turns (A B C, B C A, ...): the machine's speed drifts
    # over minutes by more than the differences measured; the median window is reported
    window_repeats: int = 3
    levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    growth: float = 1.05
    patience: int = 2
    ramp_budget_s: float = 32.0
    # smoke runs: a fixed number of requests per step instead of a duration
    step_requests: int | None = None
    batch: int = 512
    # gRPC connections per run; None: one per request in flight, as HTTP does (many clients
    # with one connection each, as a gateway sees them). Fewer connections than requests in
    # flight cap the throughput of grpcio's client and of a server with several workers
    # (SO_REUSEPORT spreads connections, not requests).
    connections: int | None = None
    floor_s: float = 1.0
    # how long a step may wait for its backlog to be delivered
    drain_timeout_s: float = 60.0


QUICK = Settings(
    warmup_s=0.5,
    step_s=1.5,
    window_s=3.0,
    window_repeats=1,
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
        self.stuck = False
        self.cpu_at_start = self.tree.cpu()

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
            connections=s.connections or min(concurrency, 64),
        )
        delivered_before = self.delivered()
        cpu_before = self.tree.cpu()
        result = await run(cfg, self.templates)
        delivered_after = self.delivered()
        for key, value in result["items"].items():
            self.totals[key] += value
        self.errors.update(result["errors"])
        # the CPU bill runs until what was acknowledged has been delivered: work left in the
        # exporter queue (a store that lags behind) belongs to this step, not to the next
        drain_began = time.monotonic()
        drained = await self.drain()
        drain_s = time.monotonic() - drain_began
        cpu = self.tree.cpu() - cpu_before
        acked = result["items"]["acknowledged"]
        elapsed = result["elapsed_s"]
        delivered = None
        if delivered_before is not None and delivered_after is not None:
            delivered = delivered_after - delivered_before
        return {
            "concurrency": concurrency,
            "rate": rate,
            "elapsed_s": elapsed,
            # sustained: a queue can take in more than the exporter gets out, so the time
            # until the step's items were delivered counts (beyond a batch timeout's wait)
            "items_per_s": round(acked / (elapsed + max(0.0, drain_s - BATCH_WAIT_S)), 1)
            if elapsed
            else 0,
            "delivered_per_s_during_load": round(delivered / elapsed, 1)
            if delivered is not None and elapsed
            else None,
            "acknowledged_per_s": result["acknowledged_items_per_s"],
            "acknowledged": acked,
            "drain_s": round(drain_s, 2),
            "drained": drained,
            "failed_requests": result["requests"]["failed"],
            "collector_cpu_s": round(cpu, 3),
            "collector_cpu_share": round(cpu / (elapsed + drain_s), 3) if elapsed else 0,
            "cpu_us_per_item": round(cpu / acked * 1e6, 3) if acked else None,
            "latency_ms": result["latency_ms"],
            "loadgen_cpu_share": result["loadgen_cpu_share"],
        }

    async def drain(self) -> bool:
        """Wait until everything acknowledged so far was delivered; False on timeout (then
        later drains do not wait again: the final count will show what is missing)."""
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while not self.stuck:
            delivered = self.delivered()
            if delivered is None or delivered >= self.totals["acknowledged"]:
                return delivered is not None
            if time.monotonic() > deadline:
                self.stuck = True
                self.variant.results["drain_timed_out"] = True
            await asyncio.sleep(0.05)
        return False

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

    def window_concurrency(self) -> int:
        """Requests in flight this collector needs at half its saturation, even when each
        waits for a batch timeout."""
        best = self.variant.results["saturation"]["best"]
        return min(max(self.settings.levels), max(8, 2 * best["concurrency"]))

    async def window(self, rate: float, concurrency: int) -> dict[str, Any]:
        """One fixed-rate window; its peak RSS is read on its own (the ramp's is kept). The
        reported window is the one of median CPU per item; peak RSS at R is the highest."""
        self.peak_rss()
        pids = self.tree.pids()
        reset_peak_rss(pids)
        result = await self.load(concurrency, rate=rate, duration=self.settings.window_s)
        result["peak_rss_mib"] = round(sum(peak_rss_by_pid(pids).values()) / MIB, 1)
        await self.settle()
        runs = self.variant.results.setdefault("window_runs", [])
        runs.append(result)
        by_cpu = sorted(runs, key=lambda run: run["cpu_us_per_item"] or 0.0)
        median = dict(by_cpu[(len(by_cpu) - 1) // 2])
        median["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
        median["cpu_us_per_item_runs"] = [run["cpu_us_per_item"] for run in runs]
        self.variant.results["window"] = median
        return result

    def delivered(self) -> float | None:
        if self.variant.sink is not None:
            return self.variant.sink.accepted()
        return self.collector.delivered()

    async def settle(self) -> None:
        """Between phases: nothing acknowledged is still on its way."""
        await self.drain()

    def peak_rss(self) -> None:
        """Keep the highest peak RSS seen so far (the window resets the kernel's)."""
        by_pid = peak_rss_by_pid(self.tree.pids())
        results = self.variant.results
        kept = results.get("peak_rss_mib_by_process", {})
        merged = {
            str(pid): max(round(v / MIB, 1), kept.get(str(pid), 0)) for pid, v in by_pid.items()
        }
        results["peak_rss_mib_by_process"] = merged
        results["peak_rss_mib"] = round(sum(merged.values()), 1)

    def finish(self) -> None:
        """Stop the collector (and its sink) and account for every item."""
        delivered = self.delivered()
        # over the whole run, idle gaps included: background work (a store's merges) that
        # shifts between steps is all in here
        if self.totals["acknowledged"]:
            whole = (self.tree.cpu() - self.cpu_at_start) / self.totals["acknowledged"]
            self.variant.results["cpu_us_per_item_whole_run"] = round(whole * 1e6, 3)
        if self.collector.side == "airis":
            # what the exporters gave up on: explains a loss before anyone reads the logs
            try:
                text = scrape(self.collector.metrics_url)
            except OSError:
                text = ""
            unit = UNIT[self.variant.scenario.signal]
            self.variant.results["exporter_failures"] = {
                name: metric_sum(text, f"otelcol_exporter_{name}_{unit}")
                for name in ("send_failed", "enqueue_failed")
            }
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
