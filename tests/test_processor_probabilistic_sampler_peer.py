"""probabilistic_sampler against the Collector itself: the same generated request (random
trace ids, arriving trace states with and without rv/th, sampling priorities; log records
with trace ids, id attributes and priorities) goes through contrib's processor in a
Collector process and through ours; the items kept and the trace states / attributes they
leave with must be identical."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp.batch import Batch
from otlp.decode import decode_logs, decode_traces
from otlp.encode import encode
from otlp.telemetry import Telemetry
from processors.probabilistic_sampler.config import ProbabilisticSamplerConfig
from processors.probabilistic_sampler.processor import ProbabilisticSamplerProcessor
from tests.contrib_processors_peer import BUILD_TIMEOUT_S, contrib_processors_otelcol
from tests.harness import free_port, wait_listening
from tests.otlp_samples import kv

SPANS = 3000
LOGS = 2000
CONFIGS: dict[str, dict[str, Any]] = {
    "hash": {"sampling_percentage": 30, "hash_seed": 7},
    "hashdefault": {"sampling_percentage": 61.7},
    "prop": {"sampling_percentage": 40, "mode": "proportional"},
    "propopen": {"sampling_percentage": 12.5, "mode": "proportional", "fail_closed": False,
                 "sampling_precision": 6},
    "eq": {"sampling_percentage": 25, "mode": "equalizing"},
    "never": {"sampling_percentage": 0, "fail_closed": False},
}  # fmt: skip
LOG_CONFIGS: dict[str, dict[str, Any]] = {
    "loghash": {"sampling_percentage": 35, "hash_seed": 3, "from_attribute": "log.id",
                "sampling_priority": "priority"},
    "logrecord": {"sampling_percentage": 50, "attribute_source": "record",
                  "from_attribute": "log.id", "fail_closed": False},
    "logprop": {"sampling_percentage": 50, "mode": "proportional",
                "sampling_priority": "priority"},
}  # fmt: skip

STATES = [
    "",
    "",
    "",
    "vendor=abc",
    "ot=th:8",
    "ot=th:c,vendor=x",
    "ot=rv:{rv}",
    "ot=rv:{rv};th:4",
    "ot=th:fd70a;foo:bar",
    "ot=rv:zz",
    "ot=th:",
    " ot=th:8 , other=1",
    "Bad-Key=1",
]


def traces_request(seed: int) -> trace_service_pb2.ExportTraceServiceRequest:
    rng = random.Random(seed)
    spans = []
    for i in range(SPANS):
        tid = rng.randbytes(16) if i % 97 else bytes(16)
        state = rng.choice(STATES).format(rv=rng.randbytes(7).hex())
        attributes = []
        roll = rng.random()
        if roll < 0.03:
            attributes.append(kv("sampling.priority", rng.choice([0, 1, 2.5, "0", "1", "x"])))
        spans.append(
            Span(trace_id=tid, span_id=(i + 1).to_bytes(8, "big"), name="s", trace_state=state,
                 attributes=attributes)
        )  # fmt: skip
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )


def logs_request(seed: int) -> logs_service_pb2.ExportLogsServiceRequest:
    rng = random.Random(seed)
    records = []
    for i in range(LOGS):
        tid = rng.randbytes(16) if i % 3 else b""
        attributes = [kv("n", i)]
        if i % 5:
            attributes.append(kv("log.id", rng.choice([f"id-{i}", i, rng.randbytes(6)])))
        if i % 11 == 0:
            attributes.append(kv("priority", rng.choice([0, 10, 75.5, 150, -1])))
        if i % 13 == 0:
            attributes.append(kv("sampling.threshold", rng.choice(["8", "c", "zz"])))
        if i % 17 == 0:
            attributes.append(kv("sampling.randomness", rng.randbytes(7).hex()))
        records.append(LogRecord(trace_id=tid, body=kv("b", f"r{i}").value,
                                 attributes=attributes))  # fmt: skip
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])]
    )


def collector_config(tmp: Path) -> dict[str, Any]:
    receivers, processors, exporters, pipelines = {}, {}, {}, {}
    for name, config in {**CONFIGS, **LOG_CONFIGS}.items():
        signal_ = "logs" if name in LOG_CONFIGS else "traces"
        receivers[f"otlp/{name}"] = {
            "protocols": {"grpc": {"endpoint": f"127.0.0.1:{free_port()}"}}
        }
        processors[f"probabilistic_sampler/{name}"] = config
        exporters[f"file/{name}"] = {"path": str(tmp / f"{name}.jsonl")}
        pipelines[f"{signal_}/{name}"] = {
            "receivers": [f"otlp/{name}"],
            "processors": [f"probabilistic_sampler/{name}"],
            "exporters": [f"file/{name}"],
        }
    return {
        "receivers": receivers,
        "processors": processors,
        "exporters": exporters,
        "service": {
            "telemetry": {
                "logs": {"level": "warn"},
                "metrics": {
                    "level": "normal",
                    "readers": [
                        {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1",
                                                              "port": free_port()}}}}
                    ],
                },
            },
            "pipelines": pipelines,
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def peer_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    binary = contrib_processors_otelcol()
    tmp = tmp_path_factory.mktemp("probabilistic-peer")
    config = collector_config(tmp)
    config_path = tmp / "otelcol.yaml"
    config_path.write_text(json.dumps(config))
    log = tmp / "otelcol.log"
    endpoints = {
        name: config["receivers"][f"otlp/{name}"]["protocols"]["grpc"]["endpoint"]
        for name in {**CONFIGS, **LOG_CONFIGS}
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "--config", str(config_path)], cwd=tmp, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 60
            wait_listening(proc, list(endpoints.values()), deadline, log.read_text, "otelcol")
            for name in CONFIGS:
                with grpc.insecure_channel(endpoints[name]) as channel:
                    trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                        traces_request(1), timeout=30
                    )
            for name in LOG_CONFIGS:
                with grpc.insecure_channel(endpoints[name]) as channel:
                    logs_service_pb2_grpc.LogsServiceStub(channel).Export(
                        logs_request(2), timeout=30
                    )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output: dict[str, list[dict[str, Any]]] = {}
    for name in endpoints:
        path = tmp / f"{name}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        output[name] = [json.loads(line) for line in lines if line.strip()]
    return output


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


async def ours(config: dict[str, Any], batch: Batch) -> list[Batch]:
    processor = ProbabilisticSamplerProcessor(
        "p", ProbabilisticSamplerConfig.model_validate(config), Telemetry()
    )
    sink = Sink()
    processor.next = sink
    await processor.consume(batch)
    return sink.batches


def _attr_value(value: dict[str, Any]) -> Any:
    (kind, raw), *_ = value.items() if value else [("empty", None)]
    return kind, str(raw)


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
@pytest.mark.parametrize("name", list(CONFIGS))
async def test_spans_match_the_collector(
    peer_output: dict[str, list[dict[str, Any]]], name: str
) -> None:
    theirs = {
        span["spanId"]: span.get("traceState", "")
        for doc in peer_output[name]
        for rs in doc["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }
    got = {
        span.span_id.hex(): span.trace_state
        for b in await ours(CONFIGS[name], decode_traces(traces_request(1)))
        for rs in encode(b).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }
    assert 0 < len(theirs) or name == "never"
    assert got == theirs


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
@pytest.mark.parametrize("name", list(LOG_CONFIGS))
async def test_logs_match_the_collector(
    peer_output: dict[str, list[dict[str, Any]]], name: str
) -> None:
    theirs = {}
    for doc in peer_output[name]:
        for rl in doc["resourceLogs"]:
            for sl in rl["scopeLogs"]:
                for record in sl["logRecords"]:
                    attrs = [(a["key"], _attr_value(a["value"])) for a in record["attributes"]]
                    theirs[record["body"]["stringValue"]] = attrs
    got = {}
    from google.protobuf.json_format import MessageToDict

    for b in await ours(LOG_CONFIGS[name], decode_logs(logs_request(2))):
        for rl in encode(b).resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    attrs = [
                        (a.key, _attr_value(MessageToDict(a.value))) for a in record.attributes
                    ]
                    got[record.body.string_value] = attrs
    assert theirs
    assert got == theirs
