"""Interoperability with the OTel Collector v0.165.0 (built from the Go module proxy by
tests/peers/otelcol.sh), both ways and over both transports:

* the Collector forwards to us: load → Collector (otlp_grpc / otlp_http exporter) → AIRIS →
  embedded ClickHouse; every item the Collector acknowledged is stored once;
* we forward to the Collector: a rich sample and load → AIRIS (otlp / otlphttp exporter) →
  Collector → its file exporter; the file holds exactly what we sent, field by field.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from otelcol_peer import BUILD_TIMEOUT_S, OtelCol, otelcol_binary, otelcol_config

from benchmarks.loadgen import LoadConfig, run
from otlp import batch_ops, decode, jsonpb
from otlp.batch import VALUE, Batch
from tests.harness import Collector, base_config, ports, query_store
from tests.otlp_samples import assert_batches_equal, sample_logs, sample_metrics, sample_traces

TIMEOUT = BUILD_TIMEOUT_S + 240
METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
SAMPLES = {"traces": sample_traces, "metrics": sample_metrics, "logs": sample_logs}


@pytest.fixture(scope="module")
def binary() -> Path:
    return otelcol_binary()


async def _load(target: str, signal: str, requests: int = 30, batch: int = 40) -> int:
    result = await run(
        LoadConfig(
            target=target,
            signal=signal,
            batch=batch,
            concurrency=4,
            duration=None,
            requests=requests,
            distinct=3,
        )
    )
    assert result["items"]["failed"] == 0, result
    return int(result["items"]["acknowledged"])


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("exporter", ["otlp_grpc", "otlp_http"])
def test_collector_forwards_to_airis(binary: Path, tmp_path: Path, exporter: str) -> None:
    (tmp_path / "airis").mkdir()
    airis_config = base_config(tmp_path / "airis", store=tmp_path / "store")
    endpoints = ports(airis_config)
    if exporter == "otlp_grpc":
        settings: dict[str, Any] = {"endpoint": endpoints["grpc"], "tls": {"insecure": True}}
    else:
        settings = {"endpoint": endpoints["http"]}
    col_config = otelcol_config({exporter: settings}, signals=("traces", "logs"))
    airis = Collector(tmp_path / "airis", airis_config, "airis")
    with airis, OtelCol(binary, tmp_path, col_config) as col:
        spans = asyncio.run(_load(f"grpc://{col.grpc_endpoint}", "traces"))
        logs = asyncio.run(_load(f"http://{col.http_endpoint}", "logs"))
        assert col.stop() == 0, col.logs()  # drains its sending queue into us
        assert airis.stop() == 0, airis.logs()
    stored = query_store(
        tmp_path / "store",
        "SELECT count() AS n, uniqExact(TraceId, SpanId) AS u FROM otel.otel_traces",
    )
    assert int(stored[0]["n"]) == int(stored[0]["u"]) == spans
    stored_logs = query_store(tmp_path / "store", "SELECT count() AS n FROM otel.otel_logs")
    assert int(stored_logs[0]["n"]) == logs


def _file_requests(path: Path, signal: str) -> list[Any]:
    return [
        jsonpb.parse_request(signal, line) for line in path.read_text().splitlines() if line.strip()
    ]


def _normalized(batch: Batch) -> Batch:
    """pdata always holds a log body: the Collector writes a record without one as an empty
    AnyValue (`"body": {}`). Both mean "no value"; make them compare equal."""
    if batch.signal != "logs":
        return batch
    logs = batch.tables["logs"]
    empty = {"type": 0, "str": None, "int": None, "double": None, "bool": None, "bytes": None}
    body = pa.array([b or empty for b in logs.column("body").to_pylist()], type=VALUE)
    index = logs.schema.get_field_index("body")
    tables = {**batch.tables, "logs": logs.set_column(index, logs.schema.field(index), body)}
    return Batch(batch.signal, batch.resources, batch.scopes, tables)


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize(
    ("exporter", "settings"),
    [
        ("otlp", lambda col: {"endpoint": col.grpc_endpoint, "tls": {"insecure": True}}),
        ("otlp_grpc", lambda col: {"endpoint": f"http://{col.grpc_endpoint}"}),
        ("otlphttp", lambda col: {"endpoint": f"http://{col.http_endpoint}"}),
        (
            "otlp_http",
            lambda col: {
                "endpoint": f"http://{col.http_endpoint}",
                "encoding": "json",
                "compression": "zstd",
            },
        ),
    ],
)
def test_airis_forwards_to_collector(
    binary: Path, tmp_path: Path, exporter: str, settings: Any
) -> None:
    outputs = {s: tmp_path / f"{s}.jsonl" for s in ("traces", "metrics", "logs")}
    col_config = otelcol_config(
        {f"file/{s}": {"path": str(p)} for s, p in outputs.items()}, pipeline_exporters=[]
    )
    for signal, pipeline in col_config["service"]["pipelines"].items():
        pipeline["exporters"] = [f"file/{signal}"]
    col = OtelCol(binary, tmp_path, col_config)
    (tmp_path / "airis").mkdir()
    airis_config = base_config(tmp_path / "airis")
    airis_config["exporters"] = {exporter: settings(col)}
    for pipeline in airis_config["service"]["pipelines"].values():
        pipeline["exporters"] = [exporter]
        pipeline["processors"] = []  # one request in, one request out: compare exactly
    airis = Collector(tmp_path / "airis", airis_config, "airis")
    target = ports(airis_config)["grpc"]
    with col, airis:
        sent = {}
        with grpc.insecure_channel(target) as channel:
            for signal, sample in SAMPLES.items():
                message = sample()
                channel.unary_unary(METHODS[signal])(message.SerializeToString(), timeout=10)
                sent[signal] = decode.decode_protobuf(signal, message.SerializeToString())
        loaded = asyncio.run(_load(f"grpc://{target}", "traces", requests=20, batch=50))
        assert airis.stop() == 0, airis.logs()
        assert col.stop() == 0, col.logs()
    for signal in ("metrics", "logs"):
        got = _file_requests(outputs[signal], signal)
        assert len(got) == 1, got
        assert_batches_equal(
            _normalized(decode.decode_protobuf(signal, got[0].SerializeToString())),
            _normalized(sent[signal]),
        )
    traces = _file_requests(outputs["traces"], "traces")
    batches = [decode.decode_protobuf("traces", r.SerializeToString()) for r in traces]
    sample_count = sent["traces"].item_count()
    # the sample arrives intact (it is the only request carrying its first span's name)
    first_name = sent["traces"].tables["spans"].column("name")[0].as_py()
    matching = [b for b in batches if first_name in b.tables["spans"].column("name").to_pylist()]
    assert len(matching) == 1
    assert_batches_equal(matching[0], sent["traces"])
    total = batch_ops.concat(batches).item_count()
    assert total == loaded + sample_count
    assert json.loads(outputs["traces"].read_text().splitlines()[0])  # plain OTLP/JSON lines
