"""The OpenTelemetry Collector peer builds, lists its components and moves OTLP data.

Interop tests and benchmarks rely on this binary, so a missing one is built here (or the
test fails); it is never skipped.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from otelcol_peer import BUILD_TIMEOUT_S, VERSION, OtelCol, otelcol_binary, otelcol_config

# Room for a cold build of the binary on first use.
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 120)


@pytest.fixture(scope="module")
def otelcol() -> Path:
    return otelcol_binary()


def test_components_lists_the_manifest(otelcol: Path) -> None:
    out = subprocess.run(
        [str(otelcol), "components"], capture_output=True, text=True, check=True, timeout=60
    )
    listed = yaml.safe_load(out.stdout)
    kinds = ("receivers", "processors", "exporters")
    names = {kind: {c["name"] for c in listed.get(kind) or []} for kind in kinds}
    assert listed["buildinfo"]["version"] == VERSION
    assert "otlp" in names["receivers"]
    assert {"batch", "memory_limiter"} <= names["processors"]
    # 0.165 calls the OTLP exporters otlp_grpc/otlp_http (otlp/otlphttp remain as aliases).
    assert {"nop", "debug", "otlp_grpc", "otlp_http", "file"} <= names["exporters"]


def test_validate_accepts_good_and_rejects_bad_config(otelcol: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(otelcol_config({"debug": {}})))
    run = subprocess.run(
        [str(otelcol), "validate", "--config", str(good)], capture_output=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(otelcol_config({"nosuchexporter": {}})))
    run = subprocess.run(
        [str(otelcol), "validate", "--config", str(bad)], capture_output=True, timeout=60
    )
    assert run.returncode != 0
    assert b"nosuchexporter" in run.stderr


def _request(trace_id: bytes, span_name: str) -> ExportTraceServiceRequest:
    span = Span(
        trace_id=trace_id,
        span_id=bytes.fromhex("0102030405060708"),
        name=span_name,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=time.time_ns() - 10**6,
        end_time_unix_nano=time.time_ns(),
    )
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="peer-smoke"))]
    )
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[span])])]
    )


def test_otlp_in_debug_and_file_out(otelcol: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "spans.jsonl"
    config = otelcol_config(
        {"debug": {"verbosity": "detailed"}, "file": {"path": str(out_file)}},
        signals=("traces",),
    )
    grpc_id = bytes.fromhex("11" * 16)
    http_id = bytes.fromhex("22" * 16)
    with OtelCol(otelcol, tmp_path, config) as col:
        with grpc.insecure_channel(col.grpc_endpoint) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=ExportTraceServiceRequest.SerializeToString,
                response_deserializer=lambda b: b,
            )
            export(_request(grpc_id, "via-grpc"), timeout=10)
        req = urllib.request.Request(
            f"http://{col.http_endpoint}/v1/traces",
            data=_request(http_id, "via-http").SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        assert col.metric_sum("otelcol_receiver_accepted_spans") == 2
        code = col.stop()
    assert code == 0, col.logs()
    logs = col.logs()
    # The debug exporter's detailed output names each span.
    assert "via-grpc" in logs and "via-http" in logs, logs
    # The file exporter flushes on shutdown: one OTLP/JSON request per line.
    lines = [json.loads(line) for line in out_file.read_text().splitlines() if line]
    ids = {
        span["traceId"]
        for line in lines
        for rs in line["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }
    assert ids == {grpc_id.hex(), http_id.hex()}
