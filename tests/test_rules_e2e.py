"""The rules processor end to end: telemetry sent with the OTel Python SDK into the collector
(a real process), alerts delivered to real peers started here: an HTTP server receiving the
webhook, Slack and SMS requests, an SMTP server (aiosmtpd, STARTTLS and AUTH required)
receiving the e-mail, Prometheus Alertmanager (built from the Go module proxy) receiving the
alert through its v2 API. Then a restart in the middle of a firing alert: no duplicate
notification, no lost resolution. Waits poll with deadlines; nothing asserts on timing."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import json
import logging
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.alertmanager_peer import Alertmanager
from tests.harness import Collector, base_config, free_port, ports, query_store

pytestmark = pytest.mark.timeout(240)


# --- peers -------------------------------------------------------------------------------
class HttpSink:
    """A real HTTP server recording every request body by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    doc: Any = json.loads(body)
                except ValueError:
                    doc = body.decode()
                sink.received.append((self.path, doc))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[Any]:
        return [doc for p, doc in list(self.received) if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "smtp.crt", tmp / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class MailSink:
    """aiosmtpd requiring STARTTLS, then AUTH (alerts / s3cret), recording each message."""

    def __init__(self, tmp: Path) -> None:
        self.cert, key = _self_signed(tmp)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.cert, key)
        self.messages: list[email.message.Message] = []
        self.logins: list[bytes] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(email.message_from_bytes(envelope.content))
                return "250 Message accepted"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):  # type: ignore[no-untyped-def]
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                b"alerts",
                b"s3cret",
            )
            if ok:
                sink.logins.append(data.login)
            return AuthResult(success=ok)

        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            authenticator=authenticator,
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()
    yield sink
    sink.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- telemetry through the SDK ------------------------------------------------------------
def send_error_spans(endpoint: str, service: str, n: int = 6) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    tracer = provider.get_tracer("rules.e2e")
    for i in range(n):
        with tracer.start_as_current_span(f"charge {i % 2}") as span:
            span.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()


def send_gauge(endpoint: str, service: str, value: float) -> None:
    from opentelemetry.metrics import Observation

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=3_600_000
    )
    provider = MeterProvider(
        resource=Resource.create({"service.name": service}), metric_readers=[reader]
    )
    meter = provider.get_meter("rules.e2e")
    meter.create_observable_gauge(
        "queue.depth", callbacks=[lambda _o: [Observation(value, {"queue": "orders"})]]
    )
    provider.shutdown()


def send_logs(endpoint: str, service: str, messages: list[str]) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
    )
    logger = logging.getLogger(f"rules.e2e.{service}")
    logger.propagate = False
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    logger.addHandler(handler)
    for message in messages:
        logger.error(message)
    provider.shutdown()
    logger.removeHandler(handler)


# --- tests -----------------------------------------------------------------------------------
def test_alerts_reach_every_channel(tmp_path: Path, http_sink: HttpSink) -> None:
    mail = MailSink(tmp_path)
    am = Alertmanager(tmp_path).start()
    try:
        config = base_config(tmp_path)
        config["processors"]["rules"] = {
            "evaluation_interval": "200ms",
            "state_file": str(tmp_path / "alerts.json"),
            "channels": {
                "hook": {"type": "webhook", "url": f"{http_sink.url}/hook"},
                "slack": {
                    "type": "slack",
                    "webhook_url": f"{http_sink.url}/slack",
                    "channel": "#ops",
                },
                "sms": {
                    "type": "sms",
                    "url": f"{http_sink.url}/sms?to=$to",
                    "to": ["+15550100"],
                },
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": mail.port,
                    "from": "airis@example.com",
                    "to": ["oncall@example.com"],
                    "username": "alerts",
                    "password": "s3cret",
                    "ca_file": str(mail.cert),
                },
                "am": {"type": "alertmanager", "url": am.url},
            },
            "rules": [
                {
                    "id": "payment-errors",
                    "name": "Payment errors",
                    "description": "More than half of the payment spans fail",
                    "severity": "critical",
                    "labels": {"team": "payments"},
                    "channels": ["hook", "slack", "sms", "mail", "am"],
                    "group_by": ["service.name"],
                    "resolve_after": "0s",
                    "conditions": [
                        {
                            "signal": "traces",
                            "measure": "error_rate",
                            "window": "4s",
                            "operator": "gt",
                            "threshold": 0.5,
                        }
                    ],
                },
                {
                    "id": "queue-depth",
                    "severity": "medium",
                    "channels": ["hook"],
                    "group_by": ["queue"],
                    "conditions": [
                        {
                            "signal": "metrics",
                            "metric": "queue.depth",
                            "aggregation": "max",
                            "window": "30s",
                            "operator": "gte",
                            "threshold": 100,
                        }
                    ],
                },
                {
                    "id": "db-timeouts",
                    "severity": "high",
                    "channels": ["hook"],
                    "conditions": [
                        {
                            "signal": "logs",
                            "condition": 'IsMatch(body, "db timeout")',
                            "window": "30s",
                            "operator": "gte",
                            "threshold": 2,
                        }
                    ],
                },
            ],
        }
        for name in ("traces", "metrics", "logs"):
            config["service"]["pipelines"][name]["processors"] = ["rules", "batch"]
        p = ports(config)
        with Collector(tmp_path, config) as collector:
            send_error_spans(p["grpc"], "payments")
            send_gauge(p["grpc"], "worker", 250.0)
            send_logs(p["grpc"], "api", ["db timeout after 5s", "db timeout after 5s", "ok"])

            def firing(rule: str) -> list[dict[str, Any]]:
                return [
                    b
                    for b in http_sink.bodies("/hook")
                    if b["rule"]["id"] == rule and b["status"] == "firing"
                ]

            (hook,) = wait_for("webhook", lambda: firing("payment-errors"))
            assert hook["receiver"] == "hook" and hook["version"] == "1"
            (alert,) = hook["alerts"]
            assert alert["labels"]["service.name"] == "payments"
            assert alert["labels"]["team"] == "payments"
            assert alert["value"] == 1.0
            (queue,) = wait_for("metric alert", lambda: firing("queue-depth"))
            assert queue["alerts"][0]["labels"]["queue"] == "orders"
            assert queue["alerts"][0]["value"] == 250.0
            (logs_alert,) = wait_for("log alert", lambda: firing("db-timeouts"))
            assert logs_alert["alerts"][0]["value"] == 2.0

            slack = wait_for("slack", lambda: http_sink.bodies("/slack"))[0]
            assert slack["channel"] == "#ops"
            assert slack["text"] == "[FIRING:1] Payment errors (critical)"
            sms = wait_for("sms", lambda: http_sink.bodies("/sms?to=+15550100"))[0]
            assert sms["to"] == "+15550100" and "Payment errors" in sms["message"]
            msg = wait_for("e-mail", lambda: mail.messages)[0]
            assert msg["Subject"] == "[FIRING:1] Payment errors (critical)"
            assert msg["To"] == "oncall@example.com"
            assert "service.name=payments" in msg.get_payload(decode=True).decode()
            assert mail.logins == [b"alerts"]

            def in_alertmanager() -> list[dict[str, Any]]:
                return [a for a in am.alerts() if a["labels"].get("rule_id") == "payment-errors"]

            (am_alert,) = wait_for("alertmanager", in_alertmanager)
            assert am_alert["labels"]["alertname"] == "Payment errors"
            assert am_alert["labels"]["service_name"] == "payments"
            assert am_alert["labels"]["severity"] == "critical"
            assert (
                am_alert["annotations"]["description"] == "More than half of the payment spans fail"
            )
            assert am_alert["status"]["state"] == "active"

            # the spans leave the 4 s window: resolved everywhere
            resolved = wait_for(
                "resolution",
                lambda: [
                    b
                    for b in http_sink.bodies("/hook")
                    if b["rule"]["id"] == "payment-errors" and b["status"] == "resolved"
                ],
            )
            assert resolved[0]["alerts"][0]["endsAt"]
            wait_for("alertmanager resolution", lambda: not in_alertmanager())
            wait_for("resolved e-mail", lambda: len(mail.messages) >= 2)
            assert mail.messages[1]["Subject"].startswith("[RESOLVED:1] Payment errors")
            assert len(firing("payment-errors")) == 1
            collector.stop()
        # the transitions are log records in the logs pipeline, stored like any other log
        rows = query_store(
            tmp_path / "store",
            "SELECT Body, LogAttributes['alert.state'] AS state FROM otel.otel_logs "
            "WHERE ServiceName = 'airis-rules' AND LogAttributes['alert.rule_id'] = "
            "'payment-errors' ORDER BY Timestamp",
        )
        assert [r["state"] for r in rows] == ["pending", "firing", "resolved"]
    finally:
        am.stop()
        mail.close()


def test_restart_while_firing(tmp_path: Path, http_sink: HttpSink) -> None:
    storage = tmp_path / "state"
    storage.mkdir()
    config = base_config(tmp_path)
    config["exporters"] = {"nop": {}}
    config["extensions"]["file_storage"] = {"directory": str(storage)}
    config["service"]["extensions"].append("file_storage")
    config["processors"]["rules"] = {
        "evaluation_interval": "200ms",
        "storage": "file_storage",
        "channels": {"hook": {"type": "webhook", "url": f"{http_sink.url}/hook"}},
        "rules": [
            {
                "id": "crashes",
                "channels": ["hook"],
                "group_by": ["service.name"],
                "conditions": [
                    {"signal": "logs", "window": "8s", "operator": "gt", "threshold": 0}
                ],
            }
        ],
    }
    for name in ("traces", "metrics", "logs"):
        config["service"]["pipelines"][name] = {
            "receivers": ["otlp"],
            "processors": ["rules"],
            "exporters": ["nop"],
        }
    p = ports(config)

    def bodies(status: str) -> list[dict[str, Any]]:
        return [b for b in http_sink.bodies("/hook") if b["status"] == status]

    with Collector(tmp_path, config) as collector:
        send_logs(p["grpc"], "billing", ["crash"])
        wait_for("firing", lambda: bodies("firing"))
        collector.stop()
    state_files = list(storage.glob("*.json"))
    assert [f.name for f in state_files] == ["processor_rules_alerts.json"]
    assert json.loads(state_files[0].read_text())["instances"][0]["state"] == "firing"

    with Collector(tmp_path, config, name="restarted"):
        # still crashing after the deploy: the alert stays firing, nobody is told twice
        send_logs(p["grpc"], "billing", ["crash again"])
        # then quiet: the window empties and the resolution arrives
        wait_for("resolution", lambda: bodies("resolved"), timeout=60)
    assert len(bodies("firing")) == 1
    assert len(bodies("resolved")) == 1
    assert bodies("resolved")[0]["alerts"][0]["labels"]["service.name"] == "billing"


def test_sighup_reloads_the_rules_file_without_losing_data(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    rules_file = tmp_path / "rules.yaml"

    def write_rules(threshold: int) -> None:
        rule = {
            "id": "errors",
            "channels": ["hook"],
            "conditions": [
                {"signal": "logs", "window": "10m", "operator": "gte", "threshold": threshold}
            ],
        }
        rules_file.write_text(yaml.safe_dump({"rules": [rule]}))

    write_rules(100)
    config = base_config(tmp_path)
    config["exporters"] = {"nop": {}}
    config["processors"]["rules"] = {
        "evaluation_interval": "200ms",
        "rules_file": str(rules_file),
        "channels": {"hook": {"type": "webhook", "url": f"{http_sink.url}/hook"}},
    }
    config["service"]["pipelines"] = {
        "logs": {"receivers": ["otlp"], "processors": ["rules"], "exporters": ["nop"]}
    }
    p = ports(config)
    with Collector(tmp_path, config) as collector:
        send_logs(p["grpc"], "api", ["boom"] * 3)
        # the data is in (the receiver answered); below 100 nothing fires
        write_rules(3)
        assert collector.proc is not None
        collector.proc.send_signal(signal.SIGHUP)
        (note,) = wait_for("alert after reload", lambda: http_sink.bodies("/hook"))
        assert note["alerts"][0]["value"] == 3.0
        assert collector.proc.poll() is None
