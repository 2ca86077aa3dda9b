"""redaction against the Collector itself: the same generated traces, logs and metrics (keys
allowed, ignored, blocked and unknown; values of every type; upstream summary attributes;
string, scalar, map and array log bodies) go through contrib's redactionprocessor in a
Collector process and through ours, under several configs; every attribute map and body
must come out equal. (Maps are compared as maps: the Collector's Map.Remove moves the last
entry into the removed one's place, an order AIRIS does not reproduce. Span links are left
without attributes: the Collector does not redact them, AIRIS does.)"""

from __future__ import annotations

import base64
import json
import random
import signal
import subprocess
import time
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp.batch import Batch
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.encode import encode
from otlp.telemetry import Telemetry
from processors.redaction.config import RedactionConfig
from processors.redaction.processor import RedactionProcessor
from tests.contrib_processors_peer import BUILD_TIMEOUT_S, contrib_processors_otelcol
from tests.harness import free_port, wait_listening
from tests.otlp_samples import av, kv

CARD = "4111111111111111"
CONFIGS: dict[str, dict[str, Any]] = {
    "debug": {
        "allowed_keys": ["id", "name", "email", "group.id", "note", "token_some", "card", "user",
                         "items", "n", "password", "list", "map", "flag", "empty"],
        "ignored_keys": ["safe"],
        "ignored_key_patterns": ["^safeRE_.*"],
        "blocked_key_patterns": [".*(token|password).*"],
        "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?", "[0-9]{3}-[0-9]{4}"],
        "allowed_values": [".+@mycompany\\.com"],
        "summary": "debug",
    },
    "info_md5": {
        "allow_all_keys": True,
        "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?", "secret", "x*"],
        "hash_function": "md5",
        "redact_all_types": True,
        "summary": "info",
    },
    "hmac_silent": {
        "allowed_keys": ["name", "note", "user", "card", "map"],
        "blocked_values": ["[0-9]{3}-[0-9]{4}", "4[0-9]{15}"],
        "hash_function": "hmac-sha512",
        "hmac_key": "k" * 64,
        "summary": "silent",
    },
    "masking_debug": {
        "allow_all_keys": True,
        "blocked_key_patterns": ["^secret"],
        "blocked_values": ["[0-9]{3}-[0-9]{4}"],
        "masking_string": "[X]",
        "summary": "debug",
    },
}  # fmt: skip

POOL: dict[str, list[Any]] = {
    "id": [5, 77],
    "name": [f"placeholder {CARD}", "plain"],
    "email": ["u@mycompany.com", "u@other.com"],
    "group.id": ["g-1"],
    "note": [f"call 555-1234 or {CARD}", "secret plans", ""],
    "token_some": ["tok", 9],
    "password": [123, "hunter2"],
    "secret_key": ["abc"],
    "card": [int(CARD), CARD],
    "safe": [CARD],
    "safeRE_x": ["555-1234"],
    "other": ["y", "xx"],
    "flag": [True],
    "ratio": [1.5],
    "raw": [b"\x01\x02"],
    "list": [[CARD, 5]],
    "map": [{"a": "555-1234"}],
    "empty": [""],
    "redaction.masked.count": [2],
    "redaction.redacted.keys": ["a,b"],
    "redaction.allowed.keys": ["zzz"],
    "redaction.ignored.count": [4],
}
BODIES = [
    f"msg {CARD} 555-1234",
    int(CARD),
    {"user": {"email": "u@mycompany.com", "password": "x", "card": CARD, "safe": "555-1234"},
     "items": ["555-1234", {"token_some": "t", "n": 1}], "other": "drop me", "n": 5},
    [CARD, {"a": "b"}, ["555-1234"]],
    None,
    True,
    "secret",
]  # fmt: skip


def _attrs(rng: random.Random) -> list:
    keys = rng.sample(sorted(POOL), rng.randrange(0, 9))
    return [kv(k, rng.choice(POOL[k])) for k in keys]


def requests(seed: int) -> tuple[Any, Any, Any]:
    rng = random.Random(seed)
    resource = Resource(attributes=[*_attrs(rng), kv("service.name", "svc")])
    scope = InstrumentationScope(name="s", attributes=_attrs(rng))
    spans = [
        Span(
            trace_id=rng.randbytes(16),
            span_id=(i + 1).to_bytes(8, "big"),
            name="op",
            attributes=_attrs(rng),
            events=[Span.Event(name="e", attributes=_attrs(rng)) for _ in range(i % 3)],
        )
        for i in range(60)
    ]
    traces = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])
        ]
    )
    records = [
        LogRecord(observed_time_unix_nano=i + 1, attributes=_attrs(rng), body=av(BODIES[i % 7]))
        for i in range(42)
    ]
    logs = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource, scope_logs=[ScopeLogs(scope=scope, log_records=records)]
            )
        ]
    )
    points = [m.NumberDataPoint(time_unix_nano=i + 1, as_int=i, attributes=_attrs(rng))
              for i in range(30)]  # fmt: skip
    metrics = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=resource,
                scope_metrics=[
                    m.ScopeMetrics(
                        scope=scope,
                        metrics=[m.Metric(name="g", gauge=m.Gauge(data_points=points))],
                    )
                ],
            )
        ]
    )
    return traces, logs, metrics


# --- normalised views of OTLP JSON (the Collector's file exporter, and ours via MessageToDict)


def norm_value(value: dict[str, Any]) -> Any:
    if not value:
        return None
    (kind, raw), *_ = value.items()
    if kind == "kvlistValue":
        return {"map": norm_attrs(raw.get("values", []))}
    if kind == "arrayValue":
        return {"list": [norm_value(v) for v in raw.get("values", [])]}
    return {kind: raw}


def norm_attrs(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: norm_value(a.get("value", {})) for a in attributes}


def _hex_id(text: str) -> str:
    """OTLP JSON writes ids in hex; protobuf's generic JSON mapping in base64."""
    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        return text
    return base64.b64decode(text).hex()


def view(doc: dict[str, Any]) -> dict[str, Any]:
    """Every attribute map and body of one OTLP JSON request, keyed by where it is."""
    out: dict[str, Any] = {}
    for top, sub, items in (
        ("resourceSpans", "scopeSpans", "spans"),
        ("resourceLogs", "scopeLogs", "logRecords"),
        ("resourceMetrics", "scopeMetrics", "metrics"),
    ):
        for r in doc.get(top, []):
            out["resource"] = norm_attrs(r.get("resource", {}).get("attributes", []))
            for s in r.get(sub, []):
                out["scope"] = norm_attrs(s.get("scope", {}).get("attributes", []))
                for item in s.get(items, []):
                    if items == "spans":
                        key = _hex_id(item["spanId"])
                        out[f"span {key}"] = norm_attrs(item.get("attributes", []))
                        out[f"events {key}"] = [
                            norm_attrs(e.get("attributes", [])) for e in item.get("events", [])
                        ]
                    elif items == "logRecords":
                        key = item["observedTimeUnixNano"]
                        out[f"log {key}"] = norm_attrs(item.get("attributes", []))
                        out[f"body {key}"] = norm_value(item.get("body", {}))
                    else:
                        for point in item["gauge"]["dataPoints"]:
                            key = point["timeUnixNano"]
                            out[f"point {key}"] = norm_attrs(point.get("attributes", []))
    return out


SIGNALS = ("traces", "logs", "metrics")


@pytest.fixture(scope="module")
def peer_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    binary = contrib_processors_otelcol()
    tmp = tmp_path_factory.mktemp("redaction-peer")
    receivers, processors, exporters, pipelines = {}, {}, {}, {}
    for name, config in CONFIGS.items():
        receivers[f"otlp/{name}"] = {
            "protocols": {"grpc": {"endpoint": f"127.0.0.1:{free_port()}"}}
        }
        processors[f"redaction/{name}"] = config
        for sig in SIGNALS:
            exporters[f"file/{name}_{sig}"] = {"path": str(tmp / f"{name}_{sig}.jsonl")}
            pipelines[f"{sig}/{name}"] = {
                "receivers": [f"otlp/{name}"],
                "processors": [f"redaction/{name}"],
                "exporters": [f"file/{name}_{sig}"],
            }
    prom = {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": free_port()}}}}
    config = {
        "receivers": receivers,
        "processors": processors,
        "exporters": exporters,
        "service": {
            "telemetry": {"logs": {"level": "warn"}, "metrics": {"readers": [prom]}},
            "pipelines": pipelines,
        },
    }
    config_path = tmp / "otelcol.yaml"
    config_path.write_text(json.dumps(config))
    log = tmp / "otelcol.log"
    traces, logs, metrics = requests(5)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "--config", str(config_path)], cwd=tmp, stdout=out, stderr=out
        )
        try:
            endpoints = {
                n: receivers[f"otlp/{n}"]["protocols"]["grpc"]["endpoint"] for n in CONFIGS
            }
            deadline = time.monotonic() + 60
            wait_listening(proc, list(endpoints.values()), deadline, log.read_text, "otelcol")
            for endpoint in endpoints.values():
                with grpc.insecure_channel(endpoint) as channel:
                    trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces, timeout=30)
                    logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs, timeout=30)
                    metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics, timeout=30)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = {}
    for name in CONFIGS:
        for sig in SIGNALS:
            lines = (tmp / f"{name}_{sig}.jsonl").read_text().splitlines()
            (doc,) = [json.loads(line) for line in lines if line.strip()]
            output[f"{name}_{sig}"] = view(doc)
    return output


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("name", list(CONFIGS))
async def test_matches_the_collector(
    peer_output: dict[str, dict[str, Any]], name: str, sig: str
) -> None:
    traces, logs, metrics = requests(5)
    decode = {"traces": decode_traces, "logs": decode_logs, "metrics": decode_metrics}[sig]
    request = {"traces": traces, "logs": logs, "metrics": metrics}[sig]
    processor = RedactionProcessor(
        "redaction", RedactionConfig.model_validate(CONFIGS[name]), Telemetry()
    )
    sink = Sink()
    processor.next = sink
    await processor.consume(decode(request))
    (out,) = sink.batches
    ours = view(MessageToDict(encode(out)))
    theirs = peer_output[f"{name}_{sig}"]
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key] == theirs[key], key
