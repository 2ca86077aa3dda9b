"""What the gRPC and HTTP OTLP exporters share: partial_success accounting and responses."""

from __future__ import annotations

import logging
import weakref

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client import Counter

from otlp.telemetry import Telemetry

log = logging.getLogger("airis.exporter.otlp")

RESPONSES: dict[str, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
REJECTED_FIELD = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}
PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}

_COUNTERS: weakref.WeakKeyDictionary[Telemetry, Counter] = weakref.WeakKeyDictionary()


def partial_success_counter(telemetry: Telemetry) -> Counter:
    """airis_exporter_partial_success_rejected_items{exporter, data_type}: items the next
    hop accepted the request for but rejected (OTLP partial_success)."""
    found = _COUNTERS.get(telemetry)
    if found is None:
        found = _COUNTERS[telemetry] = Counter(
            "airis_exporter_partial_success_rejected_items",
            "Items the next hop rejected in a partial_success response",
            ("exporter", "data_type"),
            registry=telemetry.registry,
        )
    return found


class PartialSuccess:
    """Counts and logs what a next hop rejected in an otherwise successful response.

    As in the Collector, a partial success is not an error: the rejected items will never
    be accepted, so retrying would only duplicate the rest."""

    def __init__(self, exporter_id: str, telemetry: Telemetry) -> None:
        self.exporter_id = exporter_id
        self.counter = partial_success_counter(telemetry)

    def record(self, signal: str, response: Message) -> int:
        if not response.HasField("partial_success"):
            return 0
        partial = response.partial_success
        rejected = int(getattr(partial, REJECTED_FIELD[signal]))
        if rejected or partial.error_message:
            self.counter.labels(self.exporter_id, signal).inc(rejected)
            log.warning(
                "Partial success response",
                extra={
                    "exporter": self.exporter_id,
                    "data_type": signal,
                    "dropped_items": rejected,
                    "error": partial.error_message,
                },
            )
        return rejected
