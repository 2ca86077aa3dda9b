"""End to end: the OTel Python SDK → a collector process with tail_sampling (status_code
policy, decision_wait 1s) → embedded ClickHouse. Traces with an error are stored whole,
the others not at all; the decisions are made by the decision timer (polled through the
self-metrics), not by the shutdown flush.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Collector, base_config, ports, query_store

TRACES = 10
SPANS = 3


def _send(grpc_endpoint: str) -> tuple[set[str], set[str]]:
    provider = TracerProvider(resource=Resource.create({"service.name": "tail-e2e"}))
    # small export batches split each trace over several requests
    exporter = OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=4))
    tracer = provider.get_tracer("tail.e2e")
    errors, fine = set(), set()
    for i in range(TRACES):
        with tracer.start_as_current_span("GET /item") as root:
            with tracer.start_as_current_span("load"):
                with tracer.start_as_current_span("query") as leaf:
                    if i % 2 == 0:
                        leaf.set_status(Status(StatusCode.ERROR, "timeout"))
            trace_id = format(root.get_span_context().trace_id, "032x")
            (errors if i % 2 == 0 else fine).add(trace_id)
    provider.shutdown()
    return errors, fine


def _samples(metrics_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _decided(samples: dict, sampled: str) -> float:
    name = "otelcol_processor_tail_sampling_global_count_traces_sampled_total"
    labels = (
        ("decision", "sampled" if sampled == "true" else "not_sampled"),
        ("processor", "tail_sampling"),
        ("sampled", sampled),
    )
    return samples.get((name, labels), 0.0)


def test_error_traces_are_stored_whole_and_the_others_dropped(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["processors"]["tail_sampling"] = {
        "decision_wait": "1s",
        "policies": [
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
        ],
    }
    config["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling", "batch"]
    endpoints = ports(config)
    collector = Collector(tmp_path, config).start()
    try:
        errors, fine = _send(endpoints["grpc"])
        deadline = time.monotonic() + 30
        samples: dict = {}
        while time.monotonic() < deadline:
            samples = _samples(endpoints["metrics"])
            if _decided(samples, "true") + _decided(samples, "false") >= TRACES:
                break
            time.sleep(0.1)
        assert _decided(samples, "true") == len(errors), collector.logs()
        assert _decided(samples, "false") == len(fine)
        dropped = samples[
            (
                "otelcol_processor_dropped_spans_total",
                (("processor", "tail_sampling"), ("reason", "not_sampled")),
            )
        ]
        assert dropped == len(fine) * SPANS
        assert collector.stop(signal.SIGTERM) == 0, collector.logs()
    finally:
        collector.__exit__()

    rows = query_store(
        tmp_path / "store",
        "SELECT TraceId, count() AS n, countIf(StatusCode = 'Error') AS e "
        "FROM otel.otel_traces WHERE ServiceName = 'tail-e2e' GROUP BY TraceId",
    )
    stored = {row["TraceId"]: (int(row["n"]), int(row["e"])) for row in rows}
    assert stored == {trace_id: (SPANS, 1) for trace_id in errors}
