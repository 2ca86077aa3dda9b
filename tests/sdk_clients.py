"""Telemetry sent with the real OpenTelemetry Python SDK through each of its OTLP exporters."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

TRANSPORTS = ("grpc", "http-protobuf", "http-json")


def exporters(transport: str, grpc_endpoint: str, http_base: str):
    """(span, metric, log) exporters of the SDK for one transport."""
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        kw = {"endpoint": grpc_endpoint, "insecure": True}
        return OTLPSpanExporter(**kw), OTLPMetricExporter(**kw), OTLPLogExporter(**kw)
    if transport == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    return (
        OTLPSpanExporter(endpoint=f"{http_base}/v1/traces"),
        OTLPMetricExporter(endpoint=f"{http_base}/v1/metrics"),
        OTLPLogExporter(endpoint=f"{http_base}/v1/logs"),
    )


@dataclass
class Sent:
    """What one transport's run sent, to compare with what was stored."""

    service: str
    trace_ids: set[str] = field(default_factory=set)
    span_count: int = 0
    root_span_id: str = ""
    child_span_id: str = ""
    link_trace_id: str = ""
    log_count: int = 0
    log_trace_id: str = ""


SPANS_PER_TRACE = 3
TRACES = 20
LOGS = 15


def send_all(transport: str, grpc_endpoint: str, http_base: str) -> Sent:
    service = f"svc-{transport}"
    sent = Sent(service=service)
    resource = Resource.create(
        {
            "service.name": service,
            "service.version": "1.2.3",
            "deployment.environment": "test",
            "host.cores": 8,
            "transport": transport,
        }
    )
    span_exporter, metric_exporter, log_exporter = exporters(transport, grpc_endpoint, http_base)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, max_export_batch_size=16))
    tracer = tracer_provider.get_tracer("e2e.scope", "0.9.1")
    link_ctx = None
    for i in range(TRACES):
        links = [Link(link_ctx, {"link.kind": "previous"})] if link_ctx else []
        with tracer.start_as_current_span(
            "GET /orders",
            kind=SpanKind.SERVER,
            links=links,
            attributes={
                "http.request.method": "GET",
                "http.response.status_code": 200,
                "ratio": 0.25,
                "cached": True,
                "tags": ["a", "b"],
                "iteration": i,
            },
        ) as root:
            root.add_event("cache.miss", {"key": f"order-{i}", "size": 12})
            with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as child:
                child.set_attribute("db.system", "postgresql")
                with tracer.start_as_current_span("parse") as leaf:
                    leaf.set_status(Status(StatusCode.ERROR, "bad row"))
            ctx = root.get_span_context()
            sent.trace_ids.add(format(ctx.trace_id, "032x"))
            if i == 0:
                sent.root_span_id = format(ctx.span_id, "016x")
                sent.child_span_id = format(child.get_span_context().span_id, "016x")
            if i == 1:
                sent.link_trace_id = format(link_ctx.trace_id, "032x")
            link_ctx = ctx
    sent.span_count = TRACES * SPANS_PER_TRACE
    tracer_provider.shutdown()

    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(
                instrument_name="latency.exp", aggregation=ExponentialBucketHistogramAggregation()
            ),
            View(instrument_name="*"),
        ],
    )
    meter = meter_provider.get_meter("e2e.meter", "2.0")
    counter = meter.create_counter("requests", unit="1", description="requests served")
    updown = meter.create_up_down_counter("inflight")
    histogram = meter.create_histogram("latency", unit="ms")
    exp_histogram = meter.create_histogram("latency.exp", unit="ms")
    meter.create_observable_gauge(
        "temperature", callbacks=[lambda _options: [_observation(21.5, {"room": "a"})]]
    )
    for value in (5, 15, 25, 250):
        counter.add(1, {"route": "/orders"})
        updown.add(-1 if value > 100 else 1)
        histogram.record(value, {"route": "/orders"})
        exp_histogram.record(value)
    meter_provider.shutdown()

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = logging.getLogger(f"e2e.{transport}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    logger.addHandler(handler)
    with tracer_provider.get_tracer("logs").start_as_current_span("with-logs") as span:
        sent.log_trace_id = format(span.get_span_context().trace_id, "032x")
        for i in range(LOGS):
            logger.warning("order %d failed", i, extra={"order.id": i, "customer": "c-1"})
    otel_logger = logger_provider.get_logger("e2e.structured", "1.0")
    _emit_structured(otel_logger)
    sent.log_count = LOGS + 1
    logger_provider.shutdown()
    logger.removeHandler(handler)
    return sent


def _observation(value: float, attributes: dict[str, str]):
    from opentelemetry.metrics import Observation

    return Observation(value, attributes)


def _emit_structured(otel_logger) -> None:
    """A log record whose body is a map (AnyValue kvlist), emitted through the Logs API."""
    otel_logger.emit(
        body={"event": "checkout", "amount": 12.5, "items": [1, 2]},
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        attributes={"structured": True},
        event_name="checkout.completed",
    )


__all__ = ["TRANSPORTS", "Sent", "send_all", "trace"]
