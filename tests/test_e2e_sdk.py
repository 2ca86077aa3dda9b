"""End to end: the real OpenTelemetry Python SDK → a collector process → embedded ClickHouse.

One collector receives from all three SDK transports (gRPC, HTTP/protobuf, HTTP/JSON), each
with its own service.name; after a clean shutdown the store is read back and every signal is
checked per transport: row counts, ids, timestamps, attribute values as the clickhouse
exporter renders them, resource and scope fields.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from tests.harness import Collector, base_config, ports, query_store
from tests.sdk_clients import LOGS, SPANS_PER_TRACE, TRACES, TRANSPORTS, Sent, send_all


def _send_summary(grpc_endpoint: str) -> None:
    """The SDK has no Summary instrument; send one with the generated gRPC stub."""
    now = time.time_ns()
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "svc-summary"
    metric = rm.scope_metrics.add().metrics.add(name="rpc.duration.summary", unit="ms")
    point = metric.summary.data_points.add(
        time_unix_nano=now, start_time_unix_nano=now - 10**9, count=4, sum=100.0
    )
    point.quantile_values.add(quantile=0.5, value=20.0)
    point.quantile_values.add(quantile=0.99, value=45.0)
    with grpc.insecure_channel(grpc_endpoint) as channel:
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=10)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("e2e")
    config = base_config(tmp)
    endpoints = ports(config)
    collector = Collector(tmp, config).start()
    try:
        sent = {t: send_all(t, endpoints["grpc"], endpoints["http"]) for t in TRANSPORTS}
        _send_summary(endpoints["grpc"])
        with urllib.request.urlopen(endpoints["metrics"], timeout=5) as resp:
            self_metrics = resp.read().decode()
        code = collector.stop(signal.SIGTERM)
    finally:
        collector.__exit__()
    return {
        "store": tmp / "store",
        "sent": sent,
        "exit_code": code,
        "logs": collector.logs(),
        "self_metrics": self_metrics,
    }


def q(run: dict[str, Any], sql: str) -> list[dict[str, Any]]:
    return query_store(run["store"], sql)


def test_clean_exit(run: dict[str, Any]) -> None:
    assert run["exit_code"] == 0, run["logs"]
    assert "Shutdown complete" in run["logs"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_spans(run: dict[str, Any], transport: str) -> None:
    sent: Sent = run["sent"][transport]
    rows = q(
        run,
        f"SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, StatusCode, StatusMessage, "
        f"ScopeName, ScopeVersion, ResourceAttributes, SpanAttributes, Duration, "
        f"toUnixTimestamp64Nano(Timestamp) AS ts, Events.Name, Events.Attributes, "
        f"Links.TraceId, Links.Attributes "
        f"FROM otel.otel_traces WHERE ServiceName = 'svc-{transport}' AND ScopeName = 'e2e.scope'",
    )
    assert len(rows) == sent.span_count == TRACES * SPANS_PER_TRACE
    assert {r["TraceId"] for r in rows} == sent.trace_ids
    root = next(r for r in rows if r["SpanId"] == sent.root_span_id)
    assert root["ParentSpanId"] == ""
    assert root["SpanName"] == "GET /orders"
    assert root["SpanKind"] == "Server"
    assert root["StatusCode"] == "Unset"
    assert root["ScopeName"] == "e2e.scope" and root["ScopeVersion"] == "0.9.1"
    assert root["SpanAttributes"] == {
        "http.request.method": "GET",
        "http.response.status_code": "200",
        "ratio": "0.25",
        "cached": "true",
        "tags": '["a","b"]',
        "iteration": "0",
    }
    resource = root["ResourceAttributes"]
    assert resource["service.name"] == f"svc-{transport}"
    assert resource["host.cores"] == "8"
    assert resource["telemetry.sdk.language"] == "python"
    assert root["Events.Name"] == ["cache.miss"]
    assert root["Events.Attributes"] == [{"key": "order-0", "size": "12"}]
    assert root["Duration"] > 0
    now = time.time_ns()
    assert now - 3600 * 10**9 < int(root["ts"]) < now
    child = next(r for r in rows if r["SpanId"] == sent.child_span_id)
    assert child["ParentSpanId"] == sent.root_span_id and child["SpanKind"] == "Client"
    errors = [r for r in rows if r["SpanName"] == "parse"]
    assert len(errors) == TRACES
    assert all(r["StatusCode"] == "Error" and r["StatusMessage"] == "bad row" for r in errors)
    assert all(r["SpanKind"] == "Internal" for r in errors)
    linked = [r for r in rows if r["Links.TraceId"]]
    assert len(linked) == TRACES - 1
    assert any(r["Links.TraceId"] == [sent.link_trace_id] for r in linked)
    assert linked[0]["Links.Attributes"] == [{"link.kind": "previous"}]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trace_id_lookup_table(run: dict[str, Any], transport: str) -> None:
    sent: Sent = run["sent"][transport]
    tid = sorted(sent.trace_ids)[0]
    rows = q(run, f"SELECT TraceId FROM otel.otel_traces_trace_id_ts WHERE TraceId = '{tid}'")
    assert rows and rows[0]["TraceId"] == tid


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs(run: dict[str, Any], transport: str) -> None:
    sent: Sent = run["sent"][transport]
    rows = q(
        run,
        f"SELECT Body, SeverityText, SeverityNumber, TraceId, SpanId, LogAttributes, ScopeName, "
        f"ResourceAttributes, EventName, toUnixTimestamp64Nano(Timestamp) AS ts "
        f"FROM otel.otel_logs WHERE ServiceName = 'svc-{transport}' ORDER BY Timestamp",
    )
    assert len(rows) == sent.log_count == LOGS + 1
    plain = [r for r in rows if r["ScopeName"] == f"e2e.{transport}"]
    assert len(plain) == LOGS
    assert {r["Body"] for r in plain} == {f"order {i} failed" for i in range(LOGS)}
    first = plain[0]
    assert first["SeverityText"] == "WARN" and first["SeverityNumber"] == 13
    assert first["TraceId"] == sent.log_trace_id and len(first["SpanId"]) == 16
    assert first["LogAttributes"]["customer"] == "c-1"
    assert first["LogAttributes"]["order.id"].isdigit()
    assert first["ResourceAttributes"]["transport"] == transport
    structured = next(r for r in rows if r["ScopeName"] == "e2e.structured")
    assert structured["Body"] == '{"amount":12.5,"event":"checkout","items":[1,2]}'
    assert structured["SeverityNumber"] == 17 and structured["SeverityText"] == "ERROR"
    assert structured["LogAttributes"] == {"structured": "true"}
    assert structured["EventName"] == "checkout.completed"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics(run: dict[str, Any], transport: str) -> None:
    service = f"svc-{transport}"
    sums = q(
        run,
        f"SELECT MetricName, Value, IsMonotonic, AggregationTemporality, Attributes, "
        f"MetricUnit, MetricDescription, ScopeName FROM otel.otel_metrics_sum "
        f"WHERE ServiceName = '{service}' ORDER BY MetricName",
    )
    by_name = {r["MetricName"]: r for r in sums}
    assert by_name["requests"]["Value"] == 4
    assert by_name["requests"]["IsMonotonic"] is True
    assert by_name["requests"]["AggregationTemporality"] == 2  # cumulative
    assert by_name["requests"]["Attributes"] == {"route": "/orders"}
    assert by_name["requests"]["MetricUnit"] == "1"
    assert by_name["requests"]["MetricDescription"] == "requests served"
    assert by_name["requests"]["ScopeName"] == "e2e.meter"
    assert by_name["inflight"]["Value"] == 2 and by_name["inflight"]["IsMonotonic"] is False

    gauges = q(
        run,
        f"SELECT MetricName, Value, Attributes FROM otel.otel_metrics_gauge "
        f"WHERE ServiceName = '{service}'",
    )
    # the SDK's reader may collect twice on shutdown; every collection carries the same point
    assert gauges and all(
        g == {"MetricName": "temperature", "Value": 21.5, "Attributes": {"room": "a"}}
        for g in gauges
    )

    hist = q(
        run,
        f"SELECT Count, Sum, Min, Max, BucketCounts, ExplicitBounds, MetricUnit "
        f"FROM otel.otel_metrics_histogram WHERE ServiceName = '{service}'",
    )
    assert hist and all(h == hist[0] for h in hist)
    h = hist[0]
    assert (h["Count"], h["Sum"], h["Min"], h["Max"]) == (4, 295, 5, 250)
    assert sum(h["BucketCounts"]) == 4 and len(h["BucketCounts"]) == len(h["ExplicitBounds"]) + 1

    exp = q(
        run,
        f"SELECT Count, Sum, Scale, ZeroCount, PositiveBucketCounts, Min, Max "
        f"FROM otel.otel_metrics_exponential_histogram WHERE ServiceName = '{service}'",
    )
    assert exp and all(e == exp[0] for e in exp)
    e = exp[0]
    assert (e["Count"], e["Sum"], e["Min"], e["Max"]) == (4, 295, 5, 250)
    assert sum(e["PositiveBucketCounts"]) == 4 and e["ZeroCount"] == 0


def test_summary_and_rollup(run: dict[str, Any]) -> None:
    rows = q(
        run,
        "SELECT Count, Sum, ValueAtQuantiles.Quantile AS qs, ValueAtQuantiles.Value AS vs "
        "FROM otel.otel_metrics_summary WHERE ServiceName = 'svc-summary'",
    )
    assert rows == [{"Count": 4, "Sum": 100, "qs": [0.5, 0.99], "vs": [20, 45]}]
    rollup = q(
        run,
        "SELECT MetricName, sum(Count) AS n FROM otel.otel_metrics_rollup_1m "
        "WHERE ServiceName = 'svc-grpc' GROUP BY MetricName ORDER BY MetricName",
    )
    assert {r["MetricName"] for r in rollup} >= {"requests", "temperature", "inflight"}


def test_self_metrics_count_what_was_accepted(run: dict[str, Any]) -> None:
    text = run["self_metrics"]
    spans = TRACES * SPANS_PER_TRACE * len(TRANSPORTS)
    accepted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("otelcol_receiver_accepted_spans")
    )
    assert accepted == spans
    assert 'otelcol_exporter_queue_capacity{data_type="traces",exporter="clickhouse"}' in text


def test_store_and_counts_survive(run: dict[str, Any]) -> None:
    total = q(run, "SELECT count() AS n FROM otel.otel_traces")[0]["n"]
    assert int(total) == TRACES * SPANS_PER_TRACE * len(TRANSPORTS)
