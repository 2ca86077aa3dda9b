"""Self-telemetry: Prometheus metrics with the OTel Collector's names, and structured logs.

Metric names and labels follow the Collector's internal telemetry (`otelcol_receiver_accepted_spans`
with `receiver` and `transport`, `otelcol_exporter_sent_spans` with `exporter`,
`otelcol_exporter_queue_size` with `exporter` and `data_type`), so existing dashboards work.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Final

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

# the Collector exposes no `*_created` series
disable_created_metrics()

# the Collector's item unit per signal in metric names
ITEM_UNIT: Final = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}


class Telemetry:
    """One registry per service; components get it through CreateSettings / Host."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._counters: dict[str, Counter] = {}
        for unit in ITEM_UNIT.values():
            for name, labels, doc in (
                ("receiver_accepted", ("receiver", "transport"), "pushed into the pipeline"),
                ("receiver_refused", ("receiver", "transport"), "could not be pushed"),
                ("exporter_sent", ("exporter",), "successfully sent to destination"),
                ("exporter_send_failed", ("exporter",), "failed to be sent to destination"),
                ("exporter_enqueue_failed", ("exporter",), "failed to be added to the queue"),
                ("processor_incoming", ("processor",), "entering the processor"),
                ("processor_outgoing", ("processor",), "leaving the processor"),
                ("processor_dropped", ("processor", "reason"), "dropped by the processor"),
            ):
                metric = f"otelcol_{name}_{unit}"
                self._counters[metric] = Counter(
                    metric, f"Number of {unit} {doc}.", labels, registry=r
                )
        self.queue_size = Gauge(
            "otelcol_exporter_queue_size",
            "Current size of the retry queue (in batches or items, as configured)",
            ("exporter", "data_type"),
            registry=r,
        )
        self.queue_capacity = Gauge(
            "otelcol_exporter_queue_capacity",
            "Fixed capacity of the retry queue (in batches or items, as configured)",
            ("exporter", "data_type"),
            registry=r,
        )
        self.batch_send_size = Histogram(
            "otelcol_processor_batch_batch_send_size",
            "Number of units in the batch",
            ("processor",),
            buckets=(10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 5000, 10000, 20000),
            registry=r,
        )
        self.batch_trigger_size = Counter(
            "otelcol_processor_batch_batch_size_trigger_send",
            "Number of times the batch was sent due to a size trigger",
            ("processor",),
            registry=r,
        )
        self.batch_trigger_timeout = Counter(
            "otelcol_processor_batch_timeout_trigger_send",
            "Number of times the batch was sent due to a timeout trigger",
            ("processor",),
            registry=r,
        )
        self.export_latency = Histogram(
            "airis_exporter_export_duration_seconds",
            "Time one export call took",
            ("exporter", "data_type", "outcome"),
            registry=r,
        )
        self.memory_limiter_refusing = Gauge(
            "airis_memory_limiter_refusing",
            "1 while the memory limiter refuses data",
            ("processor",),
            registry=r,
        )
        self.process_rss = Gauge(
            "otelcol_process_memory_rss", "Total physical memory (resident set size)", registry=r
        )
        self.process_uptime = Counter(
            "otelcol_process_uptime", "Uptime of the process in seconds", registry=r
        )
        self.process_cpu = Counter(
            "otelcol_process_cpu_seconds", "Total CPU user and system time in seconds", registry=r
        )
        self.started = time.monotonic()

    def counter(self, name: str, signal: str) -> Counter:
        """`counter("receiver_accepted", "traces")` → otelcol_receiver_accepted_spans."""
        return self._counters[f"otelcol_{name}_{ITEM_UNIT[signal]}"]

    def receiver_accepted(self, receiver: str, transport: str, signal: str, n: int) -> None:
        if n:
            self.counter("receiver_accepted", signal).labels(receiver, transport).inc(n)

    def receiver_refused(self, receiver: str, transport: str, signal: str, n: int) -> None:
        if n:
            self.counter("receiver_refused", signal).labels(receiver, transport).inc(n)

    def processor_dropped(self, processor: str, signal: str, n: int, reason: str) -> None:
        if n:
            self.counter("processor_dropped", signal).labels(processor, reason).inc(n)

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (tests and the benchmark read these)."""
        got = self.registry.get_sample_value(name, labels)
        return got or 0.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and any `extra` fields."""

    _STD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """Human-readable lines (`encoding: console`), extras appended as key=value."""

    _STD = JsonFormatter._STD

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in self._STD and not k.startswith("_")
        )
        line = (
            f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}\t{record.levelname.lower()}\t"
            f"{record.name}\t{record.getMessage()}"
        )
        if extras:
            line += "\t" + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info", encoding: str = "console") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if encoding == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "uvicorn.error", "chdb", "clickhouse_connect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
