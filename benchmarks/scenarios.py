"""The benchmark scenarios and the collectors each one runs (its variants)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.targets import Airis, Collector, OtelCol, airis_otlp_exporter


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    signal: str
    protocol: str  # grpc | http
    sink: str  # nop | clickhouse | otlp


SCENARIOS = (
    Scenario("a", "traces OTLP/gRPC → batch → nop", "traces", "grpc", "nop"),
    Scenario("b", "traces OTLP/HTTP → batch → nop", "traces", "http", "nop"),
    Scenario("c", "traces OTLP/gRPC → batch → embedded ClickHouse", "traces", "grpc", "clickhouse"),
    Scenario("d", "logs OTLP/gRPC → batch → embedded ClickHouse", "logs", "grpc", "clickhouse"),
    Scenario(
        "e", "metrics OTLP/gRPC → batch → embedded ClickHouse", "metrics", "grpc", "clickhouse"
    ),
    Scenario("f", "traces OTLP/gRPC → batch → OTLP/gRPC → sink", "traces", "grpc", "otlp"),
)
BY_KEY = {s.key: s for s in SCENARIOS}

NO_CLICKHOUSE = "n/a (no ClickHouse server here; the Collector has no embedded store)"
NO_OTLP_EXPORTER = "n/a (no otlp exporter yet)"


@dataclass
class Variant:
    """One collector running one scenario; `reason` says why it cannot run (then no
    collector). The measurements are filled in by benchmarks.measure."""

    scenario: Scenario
    side: str  # airis | otelcol
    workers: int = 1
    collector: Collector | None = None
    sink: OtelCol | None = None  # the OTLP sink of a forwarding scenario
    reason: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.side == "otelcol":
            return f"otelcol {_otelcol_version()}"
        return "airis" if self.workers == 1 else f"airis, {self.workers} workers"

    @property
    def available(self) -> bool:
        # a variant read back from latest.json has results but no collector
        return self.collector is not None or "saturation" in self.results


# exporter-side batching for the embedded store, the same as config/collector.yaml's
EMBEDDED_STORE_QUEUE_BATCH = {"min_size": 65536, "max_size": 262144, "flush_timeout": "500ms"}


def _otelcol_version() -> str:
    from benchmarks.targets import OTELCOL_VERSION

    return OTELCOL_VERSION


def _sink(binary: Path, tmp: Path, name: str, signal_: str) -> OtelCol:
    """A Go Collector that accepts OTLP/gRPC and drops it (its count is the delivered one)."""
    return OtelCol(binary, tmp, name, signal_, {"nop": {}}, processors={})


def variants(
    scenario: Scenario, tmp: Path, otelcol: Path | None, worker_counts: tuple[int, ...] = (1,)
) -> list[Variant]:
    """AIRIS with each worker count, then the OTel Collector (when `otelcol` is given)."""
    out: list[Variant] = []
    signal_ = scenario.signal
    for workers in worker_counts:
        variant = Variant(scenario, "airis", workers)
        name = f"{scenario.key}-airis-w{workers}"
        exporter: dict[str, Any] | None
        if scenario.sink == "nop":
            exporter = {"nop": {}}
        elif scenario.sink == "clickhouse":
            store = tmp / f"{name}-store"
            exporter = {
                "clickhouse": {
                    "endpoint": f"chdb://{store}",
                    "create_schema": True,
                    # as config/collector.yaml ships it: large inserts, fewer parts to merge
                    "sending_queue": {"batch": EMBEDDED_STORE_QUEUE_BATCH},
                }
            }
        else:
            exporter_type = airis_otlp_exporter()
            exporter = None
            if exporter_type is None:
                variant.reason = NO_OTLP_EXPORTER
            elif otelcol is None:
                variant.reason = "n/a (needs the OTel Collector as the sink)"
            else:
                variant.sink = _sink(otelcol, tmp, f"{name}-sink", signal_)
                exporter = {
                    exporter_type: {"endpoint": variant.sink.grpc, "tls": {"insecure": True}}
                }
        if exporter is not None:
            variant.collector = Airis(tmp, name, signal_, exporter, workers)
        out.append(variant)
    if otelcol is not None:
        variant = Variant(scenario, "otelcol")
        name = f"{scenario.key}-otelcol"
        if scenario.sink == "nop":
            variant.collector = OtelCol(otelcol, tmp, name, signal_, {"nop": {}})
        elif scenario.sink == "clickhouse":
            variant.reason = NO_CLICKHOUSE
        else:
            variant.sink = _sink(otelcol, tmp, f"{name}-sink", signal_)
            exporter = {"otlp_grpc": {"endpoint": variant.sink.grpc, "tls": {"insecure": True}}}
            variant.collector = OtelCol(otelcol, tmp, name, signal_, exporter)
        out.append(variant)
    return out
