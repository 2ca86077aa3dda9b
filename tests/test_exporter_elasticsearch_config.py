"""`elasticsearch` exporter without a search node: config keys and defaults (the Collector's
elasticsearchexporter), auth header shapes, TLS (CA, client certificate) on the wire,
document shapes and types per mapping mode, and the flush / per-document retry logic.

The TLS and auth tests talk to a tiny real HTTPS server standing in for the cluster: the
OpenSearch node of the other test file runs without its security plugin (not published on
Maven Central), so it can check neither certificates nor credentials.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import ssl
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporters.elasticsearch.bulk import (
    DROPPED,
    INDEXED,
    RETRYABLE,
    BulkReply,
    BulkSender,
    Flusher,
    RetryPolicy,
    Stats,
)
from exporters.elasticsearch.config import ElasticsearchConfig
from exporters.elasticsearch.documents import Doc, DocumentBuilder
from exporters.elasticsearch.exporter import ElasticsearchExporter, auth_headers, node_configs
from exporters.elasticsearch.templates import component_template, index_templates, nori_available
from otlp.component import EXPORTER, ComponentID, CreateSettings
from otlp.config import load
from otlp.decode import decode_logs, decode_traces
from otlp.telemetry import Telemetry
from tests import otlp_samples as S
from tests.certs import make_pki
from tests.harness import free_port


def _cfg(**kw: Any) -> ElasticsearchConfig:
    return ElasticsearchConfig.model_validate({"endpoint": "http://127.0.0.1:9200", **kw})


# --- config --------------------------------------------------------------------------------
def test_defaults_follow_the_collector() -> None:
    cfg = _cfg()
    assert cfg.mapping.mode == "otel"
    assert cfg.compression == "gzip"
    assert cfg.timeout == 90.0
    assert cfg.flush.bytes == 5_000_000 and cfg.flush.interval == 10.0
    assert cfg.retry.enabled and cfg.retry.max_retries == 2
    assert cfg.retry.initial_interval == 0.1 and cfg.retry.max_interval == 60.0
    # AIRIS default: 5xx retried per document as well as 429 (the issue asks for it)
    assert cfg.retry.retry_on_status == [429, 500, 502, 503, 504]
    assert cfg.logs_index == cfg.traces_index == cfg.metrics_index == ""
    assert cfg.templates.create is False
    # exporterhelper keys are there, so the runtime's queue and breaker apply
    assert cfg.sending_queue.enabled and cfg.circuit_breaker.enabled


def test_collector_config_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  elasticsearch:
    endpoints: [https://es1:9200, https://es2:9200]
    logs_index: my-logs
    traces_dynamic_index:
      enabled: true
    mapping:
      mode: ecs
    user: elastic
    password: changeme
    pipeline: my-pipeline
    num_workers: 4
    flush:
      bytes: 1000000
      interval: 5s
    retry:
      enabled: true
      max_requests: 5
      initial_interval: 50ms
      max_interval: 10s
      retry_on_status: [429, 503]
    tls:
      insecure_skip_verify: true
    headers:
      X-Tenant: acme
    sending_queue:
      enabled: true
      num_consumers: 4
    timeout: 30s
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [elasticsearch]
"""
    )
    config = load([str(path)])
    es = next(iter(config.components[EXPORTER].values()))
    assert isinstance(es, ElasticsearchConfig)
    assert es.resolved_endpoints() == ["https://es1:9200", "https://es2:9200"]
    assert es.retry.max_retries == 4  # max_requests - 1, as the Collector maps it
    assert es.flush.interval == 5.0 and es.timeout == 30.0
    assert es.mapping.mode == "ecs"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"endpoints": ["http://b:9200"]}, "exactly one of"),
        ({"endpoint": "ftp://x"}, "scheme"),
        ({"mapping": {"mode": "jaeger"}}, "unknown mapping mode"),
        ({"logs_index": "x", "logs_dynamic_index": {"enabled": True}}, "must not specify both"),
        ({"auth": {"authenticator": "basicauth"}}, "authenticator"),
        ({"api_key": "k", "bearer_token": "t"}, "only one of"),
        ({"compression": "zstd"}, "compression"),
        ({"retry": {"max_requests": 3, "max_retries": 2}}, "both retry"),
        ({"flush": {"interval": "soon"}}, "duration"),
    ],
)
def test_bad_config_is_refused_with_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _cfg(**overrides)


def test_endpoint_from_environment_and_cloudid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTICSEARCH_URL", "http://a:9200, http://b:9200")
    assert ElasticsearchConfig().resolved_endpoints() == ["http://a:9200", "http://b:9200"]
    monkeypatch.delenv("ELASTICSEARCH_URL")
    with pytest.raises(ValueError, match="exactly one of"):
        ElasticsearchConfig()
    cloud = "name:" + base64.b64encode(b"us-east-1.aws.found.io$abc123$def456").decode()
    cfg = ElasticsearchConfig(cloudid=cloud)
    assert cfg.resolved_endpoints() == ["https://abc123.us-east-1.aws.found.io"]


# --- auth and HTTP settings ----------------------------------------------------------------
def test_auth_header_shapes() -> None:
    basic = auth_headers(_cfg(user="elastic", password="p@ss:w"))
    assert basic == {"authorization": "Basic " + base64.b64encode(b"elastic:p@ss:w").decode()}
    assert auth_headers(_cfg(api_key="VnVhQ2ZHY0JDZGJrU=")) == {
        "authorization": "ApiKey VnVhQ2ZHY0JDZGJrU="
    }
    assert auth_headers(_cfg(bearer_token="tok")) == {"authorization": "Bearer tok"}
    assert auth_headers(_cfg()) == {}


def test_node_configs_carry_headers_compression_and_prefix() -> None:
    cfg = _cfg(
        endpoint="",
        endpoints=["http://es1:9201/prefix/", "http://es2"],
        headers={"X-Tenant": "acme"},
        api_key="k",
        compression="none",
        timeout="7s",
    )
    first, second = node_configs(cfg)
    assert (first.host, first.port, first.path_prefix) == ("es1", 9201, "/prefix")
    assert (second.host, second.port) == ("es2", 80)
    assert first.headers["x-tenant"] == "acme"
    assert first.headers["authorization"] == "ApiKey k"
    assert first.http_compress is False and first.request_timeout == 7.0


class _FakeCluster:
    """HTTPS server requiring a client certificate, answering every bulk item with 201 and
    remembering each request's headers and body."""

    def __init__(self, tmp: Path) -> None:
        pki = make_pki(tmp)
        self.pki = pki
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                fake.requests.append((self.path, dict(self.headers.items()), body))
                import gzip

                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                n = len([x for x in body.split(b"\n") if x.strip()]) // 2
                reply = orjson.dumps({"errors": False, "items": [{"create": {"status": 201}}] * n})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca.cert))
        ctx.load_cert_chain(str(pki.server.cert), str(pki.server.key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _export_once(config: dict[str, Any]) -> None:
    cfg = ElasticsearchConfig.model_validate(config)
    exporter = ElasticsearchExporter(
        CreateSettings(ComponentID("elasticsearch"), EXPORTER, Telemetry(), {"logs"}), cfg
    )
    await exporter.start(None)  # type: ignore[arg-type]
    try:
        await exporter.export(decode_logs(S.sample_logs()))
    finally:
        await exporter.shutdown()


async def test_tls_with_client_certificate_and_basic_auth_on_the_wire(tmp_path: Path) -> None:
    cluster = _FakeCluster(tmp_path)
    try:
        await _export_once(
            {
                "endpoint": cluster.url,
                "user": "elastic",
                "password": "changeme",
                "headers": {"X-Tenant": "acme"},
                "pipeline": "ingest-1",
                "flush": {"interval": "0s"},
                "tls": {
                    "ca_file": str(cluster.pki.ca.cert),
                    "cert_file": str(cluster.pki.client.cert),
                    "key_file": str(cluster.pki.client.key),
                },
            }
        )
    finally:
        cluster.close()
    path, headers, body = cluster.requests[0]
    headers = {k.lower(): v for k, v in headers.items()}
    assert path == "/_bulk"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"elastic:changeme").decode()
    assert headers["x-tenant"] == "acme"
    assert headers["content-type"] == "application/x-ndjson"
    assert headers["content-encoding"] == "gzip"  # the Collector's default compression
    import gzip

    first_action = orjson.loads(gzip.decompress(body).split(b"\n")[0])
    assert first_action == {
        "create": {"_index": "logs-generic.otel-default", "pipeline": "ingest-1"}
    }


async def test_tls_refuses_a_server_outside_the_configured_ca(tmp_path: Path) -> None:
    cluster = _FakeCluster(tmp_path / "a")
    (tmp_path / "b").mkdir()
    other = make_pki(tmp_path / "b")
    try:
        from otlp.errors import RetryableError

        with pytest.raises(RetryableError, match="not indexed"):
            await _export_once(
                {
                    "endpoint": cluster.url,
                    "flush": {"interval": "0s"},
                    "retry": {"enabled": False},
                    "tls": {
                        "ca_file": str(other.ca.cert),
                        "cert_file": str(cluster.pki.client.cert),
                        "key_file": str(cluster.pki.client.key),
                    },
                }
            )
    finally:
        cluster.close()
    assert cluster.requests == []


# --- documents -----------------------------------------------------------------------------
def _docs(mode: str, batch: Any, **kw: Any) -> list[dict[str, Any]]:
    builder = DocumentBuilder(_cfg(mapping={"mode": mode}, **kw))
    return [orjson.loads(d.body) for d in builder.build(batch)]


def test_otel_mode_keeps_types_and_ids() -> None:
    docs = _docs("otel", decode_logs(S.sample_logs()))
    full = docs[0]
    attrs = full["resource"]["attributes"]
    assert attrs["i"] == -42 and attrs["d"] == 2.5 and attrs["b"] is True
    assert attrs["m"] == {"k1": {"n": 7}, "k2": [True]}  # kvlist -> object
    assert attrs["a"][:3] == [1, "x", False]  # array -> array
    assert attrs["y"] == "AP8="  # bytes -> base64
    assert full["trace_id"] == "0102030405060708090a0b0c0d0e0f10"
    assert full["span_id"] == "0102030405060708"
    assert full["@timestamp"] == "1700000000000.000001"  # nanoseconds kept
    assert full["observed_timestamp"] == "1700000000000.000002"
    assert full["body"] == {"text": "something failed"}
    assert full["event_name"] == "app.failure"
    assert full["data_stream"] == {
        "type": "logs",
        "dataset": "generic.otel",
        "namespace": "default",
    }
    spans = _docs("otel", decode_traces(S.sample_traces()))
    span = spans[0]
    assert span["kind"] == "Server" and span["duration"] == 500000
    assert span["status"] == {"code": "Error", "message": "boom"}
    assert span["links"][0]["trace_id"] == "15161718191a1b1c1d1e1f2021222324"
    events = [d for d in spans if "event_name" in d]
    assert events and all(d["data_stream"]["type"] == "logs" for d in events)


def test_routing_by_attributes_and_static_index() -> None:
    req = S.sample_logs()
    records = req.resource_logs[0].scope_logs[0].log_records
    records[0].attributes.append(S.kv("data_stream.dataset", "Nginx Access"))
    records[1].attributes.append(S.kv("elasticsearch.index", "my-index"))
    req.resource_logs[0].resource.attributes.append(S.kv("data_stream.namespace", "prod"))
    builder = DocumentBuilder(_cfg())
    docs = builder.build(decode_logs(req))
    assert docs[0].index == "logs-nginx_access.otel-prod"
    assert "data_stream.dataset" not in orjson.loads(docs[0].body)["attributes"]
    assert docs[1].index == "my-index"
    assert docs[2].index == "logs-generic.otel-prod"
    static = DocumentBuilder(_cfg(logs_index="fixed")).build(decode_logs(req))
    assert {d.index for d in static} == {"fixed"}


def test_ecs_raw_and_none_shapes() -> None:
    batch = decode_logs(S.sample_logs())
    ecs = _docs("ecs", batch)[0]
    assert ecs["message"] == "something failed" and ecs["log"]["level"] == "ERROR"
    assert ecs["service"]["name"] == "checkout" and ecs["trace"]["id"].startswith("0102")
    assert ecs["@timestamp"] == "2023-11-14T22:13:20.000000001Z"
    raw = _docs("raw", batch)[0]
    assert raw["k"] == "v" and raw["SeverityText"] == "ERROR" and "Attributes" not in raw
    none = _docs("none", batch)[0]
    assert none["Attributes"] == {"k": "v"} and none["Body"] == "something failed"
    bodymap = _docs("bodymap", batch)
    assert all(isinstance(d, dict) for d in bodymap)


def test_templates_detect_nori_on_every_node() -> None:
    with_nori = {"nodes": {"a": {"plugins": [{"name": "analysis-nori"}]}}}
    mixed = {"nodes": {"a": {"plugins": [{"name": "analysis-nori"}]}, "b": {"plugins": []}}}
    assert nori_available(with_nori) and not nori_available(mixed)
    assert not nori_available({"nodes": {}})
    cfg = _cfg(templates={"create": True})
    body = component_template(cfg.templates, "nori")["template"]
    assert body["settings"]["index"]["codec"] == "best_compression"
    assert body["settings"]["index"]["refresh_interval"] == "5s"
    assert body["settings"]["index"]["analysis"]["analyzer"]["airis_text"] == {"type": "nori"}
    text = body["mappings"]["properties"]["body"]["properties"]["text"]
    assert text["fields"]["keyword"]["type"] == "keyword"
    templates = index_templates(cfg, {"traces"})
    assert set(templates) == {"airis-otel-logs", "airis-otel-traces"}  # span events -> logs-*


# --- bulk sender and flusher ---------------------------------------------------------------
def _doc(i: int) -> Doc:
    return Doc("idx", orjson.dumps({"i": i}), i)


def _policy(**kw: Any) -> RetryPolicy:
    base: dict[str, Any] = {
        "enabled": True,
        "max_retries": 2,
        "initial_interval": 0.0,
        "max_interval": 0.0,
        "retry_on_status": frozenset({429, 503}),
    }
    base.update(kw)
    return RetryPolicy(**base)


async def test_bulk_items_are_retried_dropped_or_indexed_one_by_one() -> None:
    """Item 0 is indexed, item 1 has a mapping error, item 2 gets 429 once, then 201."""
    calls: list[list[int]] = []

    async def send(body: bytes) -> BulkReply:
        lines = [orjson.loads(x) for x in body.split(b"\n") if x.strip()]
        ids = [line["i"] for line in lines[1::2]]
        calls.append(ids)
        items = []
        for i in ids:
            if i == 1:
                error = {"type": "mapper_parsing_exception", "reason": "failed to parse [x]"}
                items.append({"create": {"status": 400, "error": error}})
            elif i == 2 and len(calls) == 1:
                items.append({"create": {"status": 429, "error": {"type": "es_rejected"}}})
            else:
                items.append({"create": {"status": 201}})
        return BulkReply(200, {"errors": True, "items": items})

    stats = Stats()
    outcomes = await BulkSender(send, _policy()).index([_doc(i) for i in range(3)], stats)
    assert [o.status for o in outcomes] == [INDEXED, DROPPED, INDEXED]
    assert "mapper_parsing_exception: failed to parse [x]" in outcomes[1].reason
    assert calls == [[0, 1, 2], [2]]
    assert stats.retried_docs == 1 and stats.requests == 2


async def test_request_failures_retry_then_give_up_retryably() -> None:
    attempts = 0

    async def send(body: bytes) -> BulkReply:
        nonlocal attempts
        attempts += 1
        return BulkReply(0, None, "ConnectionError: refused")

    outcomes = await BulkSender(send, _policy(max_retries=3)).index([_doc(0)], Stats())
    assert attempts == 4 and outcomes[0].status == RETRYABLE

    async def bad_request(body: bytes) -> BulkReply:
        return BulkReply(400, {"error": {"type": "parse_exception", "reason": "bad ndjson"}})

    outcomes = await BulkSender(bad_request, _policy()).index([_doc(0)], Stats())
    assert outcomes[0].status == DROPPED and "parse_exception" in outcomes[0].reason


async def test_flusher_coalesces_concurrent_exports_into_one_request() -> None:
    bodies: list[bytes] = []

    async def send(body: bytes) -> BulkReply:
        bodies.append(body)
        n = body.count(b"\n") // 2
        return BulkReply(200, {"errors": False, "items": [{"create": {"status": 201}}] * n})

    flusher = Flusher(
        BulkSender(send, _policy()),
        flush_bytes=10_000_000,
        interval=3600.0,
        max_waiters=3,
        workers=asyncio.Semaphore(2),
        on_flush=lambda stats: None,
    )
    results = await asyncio.gather(*(flusher.submit([_doc(i), _doc(i + 10)]) for i in range(3)))
    # the third waiter completed the set of queue workers: one bulk request for all six
    assert len(bodies) == 1 and bodies[0].count(b"\n") == 12
    assert [len(r) for r in results] == [2, 2, 2]
    # a submission bigger than flush.bytes goes out in requests of at most that size
    small = Flusher(
        BulkSender(send, _policy()),
        flush_bytes=200,
        interval=3600.0,
        max_waiters=10,
        workers=asyncio.Semaphore(1),
        on_flush=lambda stats: None,
    )
    bodies.clear()
    outcomes = await small.submit([_doc(i) for i in range(10)])
    assert len(outcomes) == 10 and len(bodies) > 1
    assert all(len(b) <= 200 for b in bodies)


def test_metric_points_become_documents_with_typed_values() -> None:
    from otlp.decode import decode_metrics

    docs = _docs("otel", decode_metrics(S.sample_metrics()))
    values = [d["metrics"] for d in docs]
    assert {"g": 1.5} in values and {"g": -7} in values  # double and int points
    assert {"s": 10} in values
    # histograms as Elasticsearch histogram fields (bucket midpoints, non-empty counts)
    assert {"h": {"values": [0.5, 3.0, 5.0], "counts": [1, 2, 3]}} in values
    assert {"q": {"sum": 6.0, "value_count": 3}} in values  # summary
    assert all(d["data_stream"]["type"] == "metrics" for d in docs)
    assert docs[0]["attributes"] == {"p": 1}
