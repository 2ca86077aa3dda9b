"""The `elasticsearch` exporter against a real OpenSearch 2.19.6 node (Maven Central jars,
tests/opensearch_peer.py): the OTel Python SDK sends through the collector, the tests read
the node over its REST API.

Two nodes run for the session: one with the analysis-nori plugin (Korean analyzer), one
without, so the exporter's template analyzer is detected both ways.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource

from exporters.elasticsearch.config import ElasticsearchConfig
from exporters.elasticsearch.exporter import ElasticsearchExporter
from otlp.component import EXPORTER, ComponentID, CreateSettings
from otlp.decode import decode_logs
from otlp.telemetry import Telemetry
from tests.harness import Collector, base_config, free_port, ports, query_store
from tests.opensearch_peer import OpenSearchNode, opensearch_nodes  # noqa: F401
from tests.otlp_samples import av, kv

KOREAN = "한국어 형태소 분석기 테스트"
N_TRACES = 10
N_LOGS = 12


# --- helpers -------------------------------------------------------------------------------
def _exporter(
    config: dict[str, Any], signals: set[str] | None = None
) -> tuple[ElasticsearchExporter, Telemetry]:
    telemetry = Telemetry()
    cfg = ElasticsearchConfig.model_validate(config)
    settings = CreateSettings(
        ComponentID("elasticsearch"), EXPORTER, telemetry, signals or {"logs"}
    )
    return ElasticsearchExporter(settings, cfg), telemetry


def _logs_batch(records: list[tuple[str, dict[str, Any]]], namespace: str = "") -> Any:
    """(body, attributes) pairs -> a decoded logs Batch."""
    resource_attrs = [kv("service.name", "es-unit")]
    if namespace:
        resource_attrs.append(kv("data_stream.namespace", namespace))
    logs = [
        LogRecord(
            time_unix_nano=1_700_000_000_123_456_789 + i,
            body=av(body),
            attributes=[kv(k, v) for k, v in attrs.items()],
            severity_text="INFO",
            severity_number=9,
        )
        for i, (body, attrs) in enumerate(records)
    ]
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=PbResource(attributes=resource_attrs),
                scope_logs=[ScopeLogs(log_records=logs)],
            )
        ]
    )
    return decode_logs(req)


def _metric(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


# --- SDK -> collector -> OpenSearch ----------------------------------------------------------
def _send_with_sdk(grpc_endpoint: str) -> dict[str, Any]:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    resource = Resource.create(
        {"service.name": "es-e2e", "data_stream.namespace": "e2e", "host.cores": 8}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=grpc_endpoint, insecure=True))
    )
    tracer = tracer_provider.get_tracer("es-e2e.tracer", "1.0")
    otel_logger = logger_provider.get_logger("es-e2e.logs", "1.0")
    sent: dict[str, Any] = {"trace_ids": [], "log_trace_id": ""}
    for i in range(N_TRACES):
        with tracer.start_as_current_span(
            "GET /orders",
            kind=SpanKind.SERVER,
            attributes={
                "http.response.status_code": 200,
                "ratio": 0.25,
                "cached": True,
                "tags": ["a", "b"],
                "iteration": i,
            },
        ) as root:
            root.add_event("cache.miss", {"key": f"order-{i}"})
            with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT):
                pass
            sent["trace_ids"].append(format(root.get_span_context().trace_id, "032x"))
    with tracer.start_as_current_span("with-logs") as span:
        sent["log_trace_id"] = format(span.get_span_context().trace_id, "032x")
        for i in range(N_LOGS):
            otel_logger.emit(
                body=f"order {i} failed: {KOREAN}",
                severity_text="WARN",
                severity_number=SeverityNumber.WARN,
                attributes={"order.id": i, "customer": "c-7", "cart": {"items": 2, "total": 9.5}},
            )
    otel_logger.emit(
        body={"event": "checkout", "amount": 12.5, "items": [{"sku": "a"}]},
        severity_text="ERROR",
        severity_number=SeverityNumber.ERROR,
        attributes={"structured": True},
        event_name="checkout.completed",
    )
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return sent


def test_sdk_to_opensearch_otel_ecs_raw(
    tmp_path: Path,
    opensearch_nodes: dict[str, OpenSearchNode],  # noqa: F811
) -> None:
    node = opensearch_nodes["nori"]
    common = {"endpoint": node.url, "flush": {"interval": "100ms"}}
    config = base_config(tmp_path)
    config["exporters"] = {
        "elasticsearch": {**common, "templates": {"create": True}},
        "elasticsearch/ecs": {
            **common,
            "mapping": {"mode": "ecs"},
            "logs_index": "airis-ecs-logs",
            "traces_index": "airis-ecs-traces",
        },
        "elasticsearch/raw": {**common, "mapping": {"mode": "raw"}, "logs_index": "airis-raw"},
    }
    pipes = config["service"]["pipelines"]
    del pipes["metrics"]
    pipes["logs"]["exporters"] = ["elasticsearch", "elasticsearch/ecs", "elasticsearch/raw"]
    pipes["traces"]["exporters"] = ["elasticsearch", "elasticsearch/ecs"]
    with Collector(tmp_path, config):
        sent = _send_with_sdk(ports(config)["grpc"])
        spans_index = "traces-generic.otel-e2e"
        logs_index = "logs-generic.otel-e2e"
        # counts equal what was sent (spans, the logs' parent span included; log records;
        # span events as log documents)
        assert node.wait_count(spans_index, 2 * N_TRACES + 1) == 2 * N_TRACES + 1
        by_scope = {"term": {"scope.name": "es-e2e.logs"}}
        assert node.wait_count(logs_index, N_LOGS + 1, by_scope) == N_LOGS + 1
        events = {"term": {"event_name": "cache.miss"}}
        assert node.wait_count(logs_index, N_TRACES, events) == N_TRACES
        assert node.wait_count("airis-ecs-logs", N_LOGS + 1) == N_LOGS + 1
        assert node.wait_count("airis-ecs-traces", 2 * N_TRACES + 1) == 2 * N_TRACES + 1
        # raw mode: the map body of the structured record conflicts with the text `Body`
        # of the others (dynamic mapping), so that one document is rejected and counted
        assert node.wait_count("airis-raw", N_LOGS) == N_LOGS
        metrics = urllib.request.urlopen(ports(config)["metrics"], timeout=5).read().decode()
        failed = re.search(
            r"otelcol_exporter_send_failed_log_records(?:_total)?"
            r'\{[^}]*exporter="elasticsearch/raw"[^}]*\} (\S+)',
            metrics,
        )
        assert failed and float(failed.group(1)) == 1.0

    # by trace id: both spans of the trace, ids as lowercase hex strings
    trace_id = sent["trace_ids"][3]
    spans = node.search(spans_index, {"term": {"trace_id": trace_id}})
    assert sorted(s["name"] for s in spans) == ["GET /orders", "SELECT orders"]
    root = next(s for s in spans if s["name"] == "GET /orders")
    child = next(s for s in spans if s["name"] == "SELECT orders")
    assert child["parent_span_id"] == root["span_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", root["span_id"])
    assert root["kind"] == "Server" and root["status"]["code"] == "Unset"
    assert isinstance(root["duration"], int)
    assert root["data_stream"] == {"type": "traces", "dataset": "generic.otel", "namespace": "e2e"}
    # types preserved: int, double, bool, array; resource attributes typed too
    attrs = root["attributes"]
    assert attrs["http.response.status_code"] == 200 and attrs["iteration"] == 3
    assert attrs["ratio"] == 0.25 and attrs["cached"] is True and attrs["tags"] == ["a", "b"]
    assert root["resource"]["attributes"]["host.cores"] == 8
    assert "data_stream.namespace" not in root["resource"]["attributes"]
    # @timestamp keeps nanoseconds: epoch millis with six more digits, a date_nanos field
    assert re.fullmatch(r"\d{13}\.\d{6}", root["@timestamp"])

    # by attribute (a number), and logs by trace id
    hits = node.search(logs_index, {"term": {"attributes.order.id": 5}})
    assert len(hits) == 1 and hits[0]["attributes"]["order.id"] == 5
    log_doc = hits[0]
    assert log_doc["attributes"]["cart"] == {"items": 2, "total": 9.5}
    assert log_doc["trace_id"] == sent["log_trace_id"]
    assert log_doc["severity_text"] == "WARN" and log_doc["severity_number"] == 13
    assert node.count(logs_index, {"term": {"trace_id": sent["log_trace_id"]}}) == N_LOGS
    # full text on the body, with the Korean analyzer: "분석" is a token of "분석기"
    assert node.count(logs_index, {"match": {"body.text": "분석"}}) == N_LOGS
    assert node.count(logs_index, {"match": {"body.text": "failed"}}) == N_LOGS
    # the keyword sub-field holds the whole body
    exact = {"term": {"body.text.keyword": f"order 7 failed: {KOREAN}"}}
    assert node.count(logs_index, exact) == 1
    structured = node.search(logs_index, {"term": {"event_name": "checkout.completed"}})
    assert structured[0]["body"]["structured"]["amount"] == 12.5
    # nanosecond precision survives indexing: the date_nanos docvalue has all nine digits
    status, reply = node.request(
        "POST",
        f"/{logs_index}/_search",
        {
            "query": {"term": {"attributes.order.id": 5}},
            "docvalue_fields": [
                {"field": "@timestamp", "format": "strict_date_optional_time_nanos"}
            ],
        },
    )
    assert status == 200
    stamp = reply["hits"]["hits"][0]["fields"]["@timestamp"][0]
    millis, frac = log_doc["@timestamp"].split(".")
    # the docvalue drops trailing zeros of the fraction (".47300937Z" for 473009370 ns)
    nanos = stamp.rstrip("Z").partition(".")[2].ljust(9, "0")
    assert nanos == f"{int(millis) % 1000:03d}{frac}", (stamp, log_doc["@timestamp"])

    # templates: the seed's settings and the nori analyzer (the node has the plugin)
    status, settings = node.request("GET", f"/{logs_index}/_settings")
    index_settings = settings[logs_index]["settings"]["index"]
    assert index_settings["codec"] == "best_compression"
    assert index_settings["refresh_interval"] == "5s"
    assert index_settings["analysis"]["analyzer"]["airis_text"]["type"] == "nori"
    status, mapping = node.request("GET", f"/{logs_index}/_mapping")
    props = mapping[logs_index]["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date_nanos"
    assert props["body"]["properties"]["text"]["fields"]["keyword"]["type"] == "keyword"
    assert props["attributes"]["properties"]["customer"]["type"] == "keyword"

    # ecs and raw shapes
    ecs = node.search("airis-ecs-logs", {"term": {"trace.id": sent["log_trace_id"]}})
    assert len(ecs) == N_LOGS
    doc = ecs[0]
    assert doc["service"]["name"] == "es-e2e" and doc["log"]["level"] == "WARN"
    assert doc["message"].endswith(KOREAN) and doc["customer"] == "c-7"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", doc["@timestamp"])
    ecs_span = node.search("airis-ecs-traces", {"term": {"trace.id": trace_id}})
    assert {s["span"]["name"] for s in ecs_span} == {"GET /orders", "SELECT orders"}
    # no templates on this index: dynamic mapping makes strings text + keyword
    raw = node.search("airis-raw", {"term": {"customer.keyword": "c-7"}})
    assert len(raw) == N_LOGS
    assert raw[0]["SeverityText"] == "WARN" and isinstance(raw[0]["order.id"], int)
    assert raw[0]["Resource"]["service.name"] == "es-e2e"


# --- templates on a node without nori --------------------------------------------------------
async def test_standard_analyzer_when_node_has_no_nori(
    opensearch_nodes: dict[str, OpenSearchNode],  # noqa: F811
) -> None:
    node = opensearch_nodes["plain"]
    node.wait_healthy()
    status, plugins = node.request("GET", "/_cat/plugins?format=json")
    assert status == 200 and not any(p["component"] == "analysis-nori" for p in plugins)
    exporter, _ = _exporter(
        {"endpoint": node.url, "templates": {"create": True}, "flush": {"interval": "0s"}}
    )
    await exporter.start(None)  # type: ignore[arg-type]
    try:
        assert exporter.analyzer == "standard"
        await exporter.export(_logs_batch([(KOREAN, {}), ("plain text", {})], "std"))
    finally:
        await exporter.shutdown()
    index = "logs-generic.otel-std"
    assert node.wait_count(index, 2) == 2
    status, settings = node.request("GET", f"/{index}/_settings")
    analyzer = settings[index]["settings"]["index"]["analysis"]["analyzer"]["airis_text"]
    assert analyzer["type"] == "standard"
    # the standard analyzer keeps "분석기" whole: its stem does not match, the word does
    assert node.count(index, {"match": {"body.text": "분석"}}) == 0
    assert node.count(index, {"match": {"body.text": "분석기"}}) == 1


# --- partial bulk failures -------------------------------------------------------------------
async def test_mapping_conflict_drops_and_counts_only_the_bad_documents(
    opensearch_nodes: dict[str, OpenSearchNode],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = opensearch_nodes["nori"]
    index = "airis-conflict"
    status, reply = node.request(
        "PUT",
        f"/{index}",
        {"mappings": {"properties": {"attributes": {"properties": {"code": {"type": "long"}}}}}},
    )
    assert status == 200, reply
    exporter, telemetry = _exporter(
        {"endpoint": node.url, "logs_index": index, "flush": {"interval": "0s"}}
    )
    records = [(f"record {i}", {"code": i if i % 4 else f"not-a-number-{i}"}) for i in range(12)]
    bad = sum(1 for _, attrs in records if isinstance(attrs["code"], str))
    await exporter.start(None)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.ERROR, logger="airis.exporter.elasticsearch"):
            await exporter.export(_logs_batch(records))
    finally:
        await exporter.shutdown()
    assert node.wait_count(index, len(records) - bad) == len(records) - bad
    assert node.count(index, {"term": {"attributes.code": 5}}) == 1
    labels = {"exporter": "elasticsearch"}
    assert _metric(telemetry, "otelcol_exporter_send_failed_log_records_total", **labels) == bad
    assert (
        _metric(
            telemetry,
            "otelcol_elasticsearch_docs_processed_total",
            exporter="elasticsearch",
            outcome="failed_client",
        )
        == bad
    )
    # one log line per distinct reason, with the status and the cluster's reason
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert all(r.status == 400 for r in rejected)  # type: ignore[attr-defined]
    assert all("attributes.code" in r.reason for r in rejected)  # type: ignore[attr-defined]
    assert sum(r.dropped_documents for r in rejected) == bad  # type: ignore[attr-defined]


# --- 429 / 5xx retries -----------------------------------------------------------------------
class _FlakyProxy:
    """A tiny real HTTP proxy in front of the node that refuses the first bulk request:
    OpenSearch cannot be made to answer 429 (its indexing-pressure limits trip only under
    real overload) or an item-level 503 on demand, so this stands in for that one answer.
    Every other request goes to the node unchanged."""

    def __init__(self, upstream: str, mode: str) -> None:
        self.upstream = upstream
        self.mode = mode  # item | request: how the first bulk is refused; none: not at all
        self.down = False  # while set, every bulk request is answered 503
        self.bulk_calls = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self, body: bytes | None) -> None:
                req = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body,
                    method=self.command,
                    # no accept-encoding: the reply is passed on without its headers
                    headers={
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("host", "accept-encoding")
                    },
                )
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, data, ctype = (
                            resp.status,
                            resp.read(),
                            resp.headers.get("content-type", "application/json"),
                        )
                except urllib.error.HTTPError as exc:
                    status, data, ctype = exc.code, exc.read(), "application/json"
                self._reply(status, data, ctype)

            def _reply(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if self.path.startswith("/_bulk"):
                    proxy.bulk_calls += 1
                    if proxy.down or (proxy.bulk_calls == 1 and proxy.mode != "none"):
                        self._refuse(body or b"")
                        return
                self._forward(body)

            def _refuse(self, body: bytes) -> None:
                if proxy.mode != "item" or proxy.down:
                    self._reply(
                        503, b'{"error":{"type":"unavailable","reason":"busy"},"status":503}'
                    )
                    return
                import gzip

                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                n = len([line for line in body.split(b"\n") if line.strip()]) // 2
                item = {
                    "create": {
                        "status": 429,
                        "error": {
                            "type": "es_rejected_execution_exception",
                            "reason": "rejected execution (queue full)",
                        },
                    }
                }
                self._reply(200, orjson.dumps({"errors": True, "items": [item] * n}))

            do_GET = do_POST = do_PUT = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["item", "request"])
async def test_429_and_5xx_are_retried_per_document(
    mode: str,
    opensearch_nodes: dict[str, OpenSearchNode],  # noqa: F811
) -> None:
    node = opensearch_nodes["nori"]
    index = f"airis-retry-{mode}"
    with _FlakyProxy(node.url, mode) as proxy:
        exporter, telemetry = _exporter(
            {
                "endpoint": proxy.url,
                "logs_index": index,
                "flush": {"interval": "0s"},
                "retry": {"initial_interval": "10ms", "max_retries": 2},
            }
        )
        await exporter.start(None)  # type: ignore[arg-type]
        try:
            await exporter.export(_logs_batch([(f"r{i}", {"i": i}) for i in range(5)]))
        finally:
            await exporter.shutdown()
        assert proxy.bulk_calls == 2
    # indexed once each: the retry resent exactly the refused documents
    assert node.wait_count(index, 5) == 5
    assert node.count(index) == 5
    retried = _metric(
        telemetry,
        "otelcol_elasticsearch_docs_processed_total",
        exporter="elasticsearch",
        outcome="retried",
    )
    assert retried == 5


async def test_retries_exhausted_resend_only_what_failed(
    opensearch_nodes: dict[str, OpenSearchNode],  # noqa: F811
) -> None:
    """With no retries left the export fails retryably; the queue's next attempt of the same
    batch sends only the documents not yet indexed."""
    node = opensearch_nodes["nori"]
    index = "airis-retry-exhausted"
    with _FlakyProxy(node.url, "item") as proxy:
        exporter, _ = _exporter(
            {
                "endpoint": proxy.url,
                "logs_index": index,
                "flush": {"interval": "0s"},
                "retry": {"enabled": False},
            }
        )
        await exporter.start(None)  # type: ignore[arg-type]
        batch = _logs_batch([(f"r{i}", {}) for i in range(3)])
        try:
            from otlp.errors import RetryableError

            with pytest.raises(RetryableError, match="3 of 3 documents not indexed"):
                await exporter.export(batch)
            await exporter.export(batch)
        finally:
            await exporter.shutdown()
    assert node.wait_count(index, 3) == 3


# --- persistent queue ----------------------------------------------------------------------
def _send_logs(grpc_endpoint: str, n: int, scope: str) -> None:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    provider = LoggerProvider()
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=grpc_endpoint, insecure=True))
    )
    logger = provider.get_logger(scope)
    for i in range(n):
        logger.emit(body=f"line {i}", attributes={"i": i})
    provider.shutdown()


def test_persistent_queue_keeps_logs_across_an_outage_and_a_restart(
    tmp_path: Path,
    opensearch_nodes: dict[str, OpenSearchNode],  # noqa: F811
) -> None:
    """The cluster is down (a proxy answers 503) while logs arrive; they wait in the
    file_storage queue, survive a collector restart, and are indexed once it is back."""
    node = opensearch_nodes["nori"]
    index = "airis-durable"
    n = 20
    with _FlakyProxy(node.url, "none") as proxy:
        proxy.down = True
        config = base_config(tmp_path)
        config["extensions"]["file_storage"] = {
            "directory": str(tmp_path / "queue"),
            "create_directory": True,
        }
        config["service"]["extensions"].append("file_storage")
        config["exporters"] = {
            "elasticsearch": {
                "endpoint": proxy.url,
                "logs_index": index,
                "flush": {"interval": "0s"},
                "sending_queue": {"storage": "file_storage"},
                "retry_on_failure": {"initial_interval": "100ms", "max_elapsed_time": "0s"},
                "circuit_breaker": {"open_interval": "200ms"},
            }
        }
        pipes = config["service"]["pipelines"]
        pipes["logs"]["exporters"] = ["elasticsearch"]
        del pipes["metrics"], pipes["traces"]
        first = Collector(tmp_path, config, name="first")
        with first:
            _send_logs(ports(config)["grpc"], n, "durable")
            deadline = time.monotonic() + 30
            while proxy.bulk_calls == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proxy.bulk_calls > 0
            first.stop()
        assert node.count(index) == 0
        proxy.down = False
        with Collector(tmp_path, config, name="second"):
            assert node.wait_count(index, n) == n
    assert node.count(index) == n


# --- a dead cluster never stalls ClickHouse ------------------------------------------------
def test_dead_cluster_does_not_stall_clickhouse(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    closed = free_port()  # nothing listens there
    config["exporters"]["elasticsearch"] = {
        "endpoint": f"http://127.0.0.1:{closed}",
        "templates": {"create": True},  # unreachable at start: deferred, not fatal
        "flush": {"interval": "0s"},
        "timeout": "2s",
        "retry_on_failure": {"initial_interval": "50ms", "max_elapsed_time": "1s"},
    }
    pipes = config["service"]["pipelines"]
    pipes["logs"]["exporters"] = ["elasticsearch", "clickhouse"]
    del pipes["metrics"], pipes["traces"]
    n = 25
    with Collector(tmp_path, config) as collector:
        _send_logs(ports(config)["grpc"], n, "dead-es")
        metrics_url = ports(config)["metrics"]
        deadline = time.monotonic() + 30
        sent = 0.0
        while time.monotonic() < deadline:
            text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
            found = re.search(
                r"otelcol_exporter_sent_log_records(?:_total)?"
                r'\{[^}]*exporter="clickhouse"[^}]*\} (\S+)',
                text,
            )
            sent = float(found.group(1)) if found else 0.0
            if sent >= n:
                break
            time.sleep(0.1)
        assert sent == n, collector.logs()[-3000:]
        collector.stop()
    rows = query_store(tmp_path / "store", "SELECT count() AS n FROM otel.otel_logs")
    assert int(rows[0]["n"]) == n
    assert "Cluster not reachable to install index templates" in collector.logs()


# --- a lone caller is not held back by flush.interval -----------------------------------------
async def test_lone_export_flushes_without_waiting_for_the_interval(
    opensearch_nodes: dict[str, OpenSearchNode],  # noqa: F811
) -> None:
    """With the sending queue off there is only ever one caller, so a long flush.interval
    must not hold it back (it would with a timer-only flush)."""
    node = opensearch_nodes["nori"]
    exporter, _ = _exporter(
        {
            "endpoint": node.url,
            "logs_index": "airis-lone",
            "flush": {"interval": "1h"},
            "sending_queue": {"enabled": False},
        }
    )
    await exporter.start(None)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(exporter.export(_logs_batch([("x", {})])), 60)
    finally:
        await exporter.shutdown()
    assert node.wait_count("airis-lone", 1) == 1


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # urllib in the helpers and the proxy must reach 127.0.0.1 directly
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    yield
