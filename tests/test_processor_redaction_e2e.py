"""redaction end to end: the OTel Python SDK sends traces, metrics and logs full of secrets
(in resource, scope, span, event, link, log and data point attributes and in string and
structured log bodies) to a collector process with the redaction processor; the embedded
ClickHouse is then read back whole, and nothing matching a blocked pattern may be in it."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link

from tests.harness import Collector, base_config, ports, query_store
from tests.sdk_clients import exporters

CARD = "4111 1111 1111 1111"
SECRETS = {
    "card": CARD,
    "card_plain": "5500000000000004",
    "email": "jane.doe@example.com",
    "ipv4": "203.0.113.77",
    "ipv6": "2001:db8::8a2e:370:7334",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
    "bearer": "Bearer s3cr3t-T0ken.value",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "phone": "+82 10-1234-5678",
    "rrn": "900101-1234567",
}
PASSWORD = "hunter2-very-secret"
# what must not appear anywhere in the store (the card also without its spaces)
FORBIDDEN = [*SECRETS.values(), CARD.replace(" ", ""), PASSWORD, "s3cr3t-T0ken"]
SETS = ["credit_card", "email", "ipv4", "ipv6", "jwt", "bearer_token", "aws_access_key",
        "phone", "kr_rrn"]  # fmt: skip
# a look-alike that must survive: not Luhn-valid, so not a card
ORDER_NUMBER = "4111111111111112"


def text(label: str) -> str:
    return f"{label}: " + " | ".join(SECRETS.values())


def _send(grpc: str) -> None:
    span_exporter, metric_exporter, log_exporter = exporters("grpc", grpc, "")
    resource = Resource.create(
        {"service.name": "redaction-e2e", "host.ip": SECRETS["ipv4"], "owner": SECRETS["email"]}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    tracer = provider.get_tracer("scope", "1.0", attributes={"scope.contact": SECRETS["phone"]})
    with tracer.start_as_current_span("first") as first:
        first.set_attribute("order.number", ORDER_NUMBER)
    for i in range(5):
        with tracer.start_as_current_span(
            "checkout",
            links=[Link(first.get_span_context(), {"link.note": text("link")})],
            attributes={
                "payment.card": CARD,
                "user.password": PASSWORD,
                "http.request.header.authorization": SECRETS["bearer"],
                "note": text("span"),
                "i": i,
            },
        ) as span:
            span.add_event("audit", {"detail": text("event"), "rrn": SECRETS["rrn"]})
    provider.shutdown()

    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    counter = meters.get_meter("m").create_counter("requests")
    counter.add(1, {"client.address": SECRETS["ipv6"], "user": SECRETS["email"]})
    histogram = meters.get_meter("m").create_histogram("latency")
    histogram.record(3.5, {"token": SECRETS["jwt"]})
    meters.shutdown()

    loggers = LoggerProvider(resource=resource)
    loggers.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = loggers.get_logger("logs", "1.0", attributes={"scope.contact": SECRETS["phone"]})
    logger.emit(body=text("body"), severity_number=SeverityNumber.WARN, attributes={"a": CARD})
    logger.emit(
        body={
            "user": {"email": SECRETS["email"], "password": PASSWORD, "cards": [CARD, "none"]},
            "message": text("structured"),
            "order": ORDER_NUMBER,
        },
        severity_number=SeverityNumber.ERROR,
        attributes={"aws.key": SECRETS["aws"]},
    )
    loggers.shutdown()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("redaction")
    config = base_config(tmp)
    config["processors"]["redaction"] = {
        "allow_all_keys": True,
        "blocked_key_patterns": [".*password.*"],
        "blocked_value_sets": SETS,
        "summary": "info",
    }
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["redaction", "batch"]
    endpoints = ports(config)
    collector = Collector(tmp, config).start()
    try:
        _send(endpoints["grpc"])
        with urllib.request.urlopen(endpoints["metrics"], timeout=5) as resp:
            self_metrics = resp.read().decode()
        code = collector.stop(signal.SIGTERM)
    finally:
        collector.__exit__()
    store = tmp / "store"
    tables = [
        row["name"]
        for row in query_store(store, "SELECT name FROM system.tables WHERE database = 'otel'")
    ]
    dump = {t: query_store(store, f"SELECT * FROM otel.`{t}`") for t in tables}
    return {"code": code, "logs": collector.logs(), "dump": dump, "self_metrics": self_metrics}


def test_clean_run(run: dict[str, Any]) -> None:
    assert run["code"] == 0, run["logs"]
    dump = run["dump"]
    assert len(dump["otel_traces"]) == 6
    assert len(dump["otel_logs"]) == 2
    assert any(dump[t] for t in dump if t.startswith("otel_metrics"))


def test_nothing_matching_a_blocked_pattern_is_stored(run: dict[str, Any]) -> None:
    everything = json.dumps(run["dump"], ensure_ascii=False)
    for secret in FORBIDDEN:
        assert secret not in everything, secret
    # and the patterns themselves find nothing either (beyond the order-number look-alike)
    from processors.redaction.builtin import BUILTIN_SETS

    for name in ("email", "ipv4", "jwt", "aws_access_key", "kr_rrn"):
        pattern = BUILTIN_SETS[name].regex.replace("(?i)", "")
        found = re.findall(pattern, everything)
        assert not found, (name, found)


def test_redacted_in_every_place(run: dict[str, Any]) -> None:
    spans = {row["SpanName"]: row for row in run["dump"]["otel_traces"]}
    span = spans["checkout"]
    assert span["SpanAttributes"]["payment.card"] == "****"
    assert span["SpanAttributes"]["user.password"] == "****"
    assert span["SpanAttributes"]["http.request.header.authorization"] == "****"
    assert span["SpanAttributes"]["note"].startswith("span: **** | ****")
    assert int(span["SpanAttributes"]["redaction.masked.count"]) == 4
    assert span["ResourceAttributes"]["host.ip"] == "****"
    assert span["Events.Attributes"][0]["rrn"] == "****"
    assert span["Links.Attributes"][0]["link.note"].startswith("link: ****")
    # a Luhn-invalid number is not a card
    assert spans["first"]["SpanAttributes"]["order.number"] == ORDER_NUMBER
    logs = sorted(run["dump"]["otel_logs"], key=lambda r: r["SeverityNumber"])
    assert logs[0]["Body"].startswith("body: **** | ****")
    assert logs[0]["LogAttributes"]["redaction.body.masked.count"] == "1"
    structured = json.loads(logs[1]["Body"])
    assert structured["user"]["password"] == "****"
    assert structured["user"]["cards"] == ["****", "none"]
    assert structured["order"] == ORDER_NUMBER
    assert logs[1]["LogAttributes"]["aws.key"] == "****"
    assert logs[0]["ResourceAttributes"]["owner"] == "****"
    assert logs[0]["ScopeAttributes"]["scope.contact"] == "****"


def test_items_counted_through_the_processor(run: dict[str, Any]) -> None:
    metrics = run["self_metrics"]
    incoming = re.search(
        r'otelcol_processor_incoming_spans(?:_total)?\{processor="redaction"\} (\S+)', metrics
    )
    outgoing = re.search(
        r'otelcol_processor_outgoing_spans(?:_total)?\{processor="redaction"\} (\S+)', metrics
    )
    assert incoming and outgoing
    assert float(incoming.group(1)) == float(outgoing.group(1)) == 6
