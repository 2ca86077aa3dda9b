"""The `clickhouse` exporter: config, DDL, conversion, and real inserts into chDB.

Known answers (column names/types/codecs, sorting and partition keys, skip indexes, the
string forms of kinds and status codes, TTL expressions) are taken from the OTel Collector
contrib clickhouseexporter v0.165.0 (internal/sqltemplates/*.sql, exporter_*.go,
internal/metrics/*.go, internal/clickhouse.go) and pdata v1.71.0.

chDB allows one store path per process and locks it, so everything that touches a store
runs once, in a subprocess (`_scenario`), and the tests assert on what it reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from pydantic import ValidationError

from exporters.clickhouse import ClickHouseConfig, ClickHouseExporter, factory
from exporters.clickhouse.client import classify
from exporters.clickhouse.convert import logs_table, metric_tables, traces_table
from exporters.clickhouse.schema import Schema, ttl_expr
from otlp.batch import SIGNALS
from otlp.component import EXPORTER, ComponentID, CreateSettings
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.errors import PermanentError, RetryableError
from otlp.telemetry import Telemetry

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60 * 10**9


def _kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


# --- requests ------------------------------------------------------------------------------


def traces_request(now: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.schema_url = "https://opentelemetry.io/schemas/1.30.0"
    rs.resource.attributes.extend(
        [_kv("service.name", string_value="checkout"), _kv("host.cpus", int_value=8)]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "io.airis.test"
    ss.scope.version = "1.2.3"
    for i in range(6):
        span = ss.spans.add()
        span.trace_id = bytes([0xA0 + i]) * 16
        span.span_id = bytes([0xB0 + i]) * 8
        if i:
            span.parent_span_id = bytes([0xB0]) * 8
        span.trace_state = "k=v" if i == 1 else ""
        span.name = f"op{i}"
        span.kind = i  # Unspecified .. Consumer
        span.start_time_unix_nano = now + i * 1000
        span.end_time_unix_nano = now + i * 1000 + 250_000
        span.status.code = i % 3
        span.status.message = "failed" if i % 3 == 2 else ""
        span.attributes.extend(
            [
                _kv("http.status_code", int_value=200 + i),
                _kv("ratio", double_value=0.25),
                _kv("ok", bool_value=i % 2 == 0),
                _kv("blob", bytes_value=b"\x00\x01"),
                _kv("tags", array_value=ArrayValue(values=[AnyValue(string_value="a")])),
                _kv(
                    "obj",
                    kvlist_value=KeyValueList(
                        values=[_kv("z", int_value=1), _kv("a", bool_value=True)]
                    ),
                ),
            ]
        )
        if i == 0:
            for j in range(2):
                event = span.events.add()
                event.name = f"event{j}"
                event.time_unix_nano = now + 10 + j
                event.attributes.append(_kv("attempt", int_value=j))
            link = span.links.add()
            link.trace_id = b"\x11" * 16
            link.span_id = b"\x22" * 8
            link.trace_state = "a=b"
            link.attributes.append(_kv("link.kind", string_value="follows"))
    # a second resource without service.name, with an end before its start
    rs2 = req.resource_spans.add()
    ss2 = rs2.scope_spans.add()
    span = ss2.spans.add()
    span.trace_id = b"\xcc" * 16
    span.span_id = b"\xdd" * 8
    span.name = "backwards"
    span.start_time_unix_nano = now
    span.end_time_unix_nano = now - 1
    return req


def old_traces_request(now: int) -> ExportTraceServiceRequest:
    """Spans 10 days old: gone once TTL (72h) is applied."""
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = b"\xee" * 16
    span.span_id = b"\xee" * 8
    span.name = "ancient"
    span.start_time_unix_nano = now - 10 * 24 * 3600 * 10**9
    span.end_time_unix_nano = span.start_time_unix_nano + 1
    return req


def logs_request(now: int) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.schema_url = "https://example.com/resource"
    rl.resource.attributes.extend(
        [
            _kv("service.name", string_value="billing"),
            _kv("k8s.pod.name", string_value="billing-7f9"),
        ]
    )
    sl = rl.scope_logs.add()
    sl.schema_url = "https://example.com/scope"
    sl.scope.name = "logger"
    sl.scope.version = "0.1"
    sl.scope.attributes.append(_kv("scope.attr", string_value="s"))
    first = sl.log_records.add()
    first.time_unix_nano = now
    first.observed_time_unix_nano = now + 5
    first.severity_number = 17
    first.severity_text = "ERROR"
    first.body.string_value = "payment failed"
    first.trace_id = b"\x01" * 16
    first.span_id = b"\x02" * 8
    first.flags = 0x101  # only the low byte is the W3C trace flags
    first.event_name = "payment.failure"
    first.attributes.extend([_kv("amount", double_value=12.5), _kv("retry", bool_value=False)])
    second = sl.log_records.add()
    second.observed_time_unix_nano = now + 7  # no time: the observed time is used
    second.body.kvlist_value.values.append(_kv("msg", string_value="structured"))
    third = sl.log_records.add()
    third.time_unix_nano = now + 9
    third.body.int_value = 42
    return req


def metrics_request(now: int, service: str = "api") -> ExportMetricsServiceRequest:
    minute = now - now % MINUTE
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.schema_url = "https://example.com/r"
    rm.resource.attributes.append(_kv("service.name", string_value=service))
    sm = rm.scope_metrics.add()
    sm.schema_url = "https://example.com/s"
    sm.scope.name = "meter"
    sm.scope.version = "2.0"
    sm.scope.dropped_attributes_count = 3

    gauge = sm.metrics.add()
    gauge.name = "cpu.usage"
    gauge.description = "CPU"
    gauge.unit = "1"
    for i, value in enumerate((1.0, 2.0, 6.0)):
        point = gauge.gauge.data_points.add()
        point.time_unix_nano = minute + i * 10**9
        point.start_time_unix_nano = minute - MINUTE
        point.as_double = value
        point.attributes.append(_kv("core", string_value="0"))
    point = gauge.gauge.data_points.add()
    point.time_unix_nano = minute + 5 * 10**9
    point.as_int = 4
    point.flags = 1
    point.attributes.append(_kv("core", string_value="1"))
    exemplar = point.exemplars.add()
    exemplar.time_unix_nano = minute + 4 * 10**9
    exemplar.as_int = 3
    exemplar.trace_id = b"\x05" * 16
    exemplar.span_id = b"\x06" * 8
    exemplar.filtered_attributes.append(_kv("user", string_value="u1"))
    bare = point.exemplars.add()
    bare.as_double = 0.5

    total = sm.metrics.add()
    total.name = "requests"
    total.unit = "{request}"
    total.sum.aggregation_temporality = 2
    total.sum.is_monotonic = True
    for value in (10, 15):
        point = total.sum.data_points.add()
        point.time_unix_nano = minute + value * 10**9
        point.as_int = value

    histogram = sm.metrics.add()
    histogram.name = "latency"
    histogram.unit = "ms"
    histogram.histogram.aggregation_temporality = 1
    point = histogram.histogram.data_points.add()
    point.time_unix_nano = minute
    point.count = 6
    point.sum = 21.0
    point.bucket_counts.extend([1, 2, 3])
    point.explicit_bounds.extend([1.0, 5.0])
    point.min = 0.5
    point.max = 9.0
    unset = histogram.histogram.data_points.add()
    unset.time_unix_nano = minute
    unset.count = 0

    exponential = sm.metrics.add()
    exponential.name = "size"
    exponential.exponential_histogram.aggregation_temporality = 2
    point = exponential.exponential_histogram.data_points.add()
    point.time_unix_nano = minute
    point.count = 5
    point.sum = 50.0
    point.scale = 3
    point.zero_count = 1
    point.positive.offset = 2
    point.positive.bucket_counts.extend([1, 3])
    point.negative.offset = -1
    point.negative.bucket_counts.extend([0])
    point.min = 1.0
    point.max = 20.0

    summary = sm.metrics.add()
    summary.name = "rpc.duration"
    point = summary.summary.data_points.add()
    point.time_unix_nano = minute
    point.count = 4
    point.sum = 8.0
    for quantile, value in ((0.5, 1.5), (0.99, 3.0)):
        q = point.quantile_values.add()
        q.quantile = quantile
        q.value = value
    return req


# --- config --------------------------------------------------------------------------------


def _config(**values: Any) -> ClickHouseConfig:
    return ClickHouseConfig.model_validate({"endpoint": "chdb://./data", **values})


def test_defaults_follow_the_collector() -> None:
    cfg = _config()
    assert cfg.database is None and cfg.database_name() == "otel"
    assert cfg.create_schema is True
    assert cfg.async_insert is True
    assert cfg.ttl == 0
    assert cfg.traces_table_name == "otel_traces"
    assert cfg.logs_table_name == "otel_logs"
    assert [cfg.metric_table(k) for k in ("gauge", "sum", "summary", "histogram")] == [
        "otel_metrics_gauge",
        "otel_metrics_sum",
        "otel_metrics_summary",
        "otel_metrics_histogram",
    ]
    assert cfg.metric_table("exponential_histogram") == "otel_metrics_exponential_histogram"
    # the Collector's 5 s for servers; the embedded engine shares our cores (see README)
    assert cfg.timeout == 30.0
    assert _config(endpoint="http://127.0.0.1:8123").timeout == 5.0
    assert _config(timeout="5s").timeout == 5.0
    assert cfg.sending_queue.num_consumers == 10
    assert cfg.retry_on_failure.max_elapsed_time == 300.0
    assert factory.type == "clickhouse" and factory.kind == EXPORTER


def test_collector_example_config_loads() -> None:
    cfg = ClickHouseConfig.model_validate(
        {
            "endpoint": "tcp://127.0.0.1:9000?dial_timeout=10s",
            "database": "otel",
            "async_insert": True,
            "ttl": "72h",
            "compress": "lz4",
            "create_schema": True,
            "logs_table_name": "otel_logs",
            "traces_table_name": "otel_traces",
            "timeout": "5s",
            "metrics_tables": {
                "gauge": {"name": "otel_metrics_gauge"},
                "sum": {"name": "otel_metrics_sum"},
                "summary": {"name": "otel_metrics_summary"},
                "histogram": {"name": "otel_metrics_histogram"},
                "exponential_histogram": {"name": "otel_metrics_exp_histogram"},
            },
            "retry_on_failure": {
                "enabled": True,
                "initial_interval": "5s",
                "max_interval": "30s",
                "max_elapsed_time": "300s",
            },
            "cluster_name": "my_cluster",
            "database_engine": {"name": "Replicated", "params": "'/clickhouse/databases/otel'"},
            "table_engine": {"name": "ReplicatedMergeTree", "params": ""},
            "tls": {"insecure_skip_verify": False, "ca_file": "ca.crt"},
            "connection_params": {"max_execution_time": "60"},
        }
    )
    assert cfg.ttl == 72 * 3600
    assert cfg.target.kind == "http"
    assert cfg.target.hosts == (("127.0.0.1", 8123),)  # native port -> HTTP interface
    assert cfg.metric_table("exponential_histogram") == "otel_metrics_exp_histogram"
    assert cfg.settings() == {"max_execution_time": "60", "async_insert": "1"}


def test_deprecated_metrics_table_name_is_the_base_name() -> None:
    cfg = _config(metrics_table_name="m")
    assert cfg.metric_table("gauge") == "m_gauge"
    assert cfg.metric_table("exponential_histogram") == "m_exponential_histogram"
    named = _config(metrics_table_name="m", metrics_tables={"sum": {"name": "s"}})
    assert named.metric_table("sum") == "s"
    assert named.metric_table("gauge") == "otel_metrics_gauge"


@pytest.mark.parametrize(
    ("endpoint", "kind", "hosts", "secure", "database"),
    [
        ("chdb://./data/clickhouse", "chdb", (), False, ""),
        ("chdb:///var/lib/airis", "chdb", (), False, ""),
        ("http://ch:8123", "http", (("ch", 8123),), False, ""),
        ("https://ch", "http", (("ch", 8443),), True, ""),
        ("tcp://ch:9000/otel", "http", (("ch", 8123),), False, "otel"),
        ("tcp://ch:9440?secure=true", "http", (("ch", 8443),), True, ""),
        ("clickhouse://a:9000,b:19000", "http", (("a", 8123), ("b", 19000)), False, ""),
        ("tcp://a:9000,tcp://b:9000", "http", (("a", 8123), ("b", 8123)), False, ""),
        ("tcp://user:pw@[::1]:9000", "http", (("::1", 8123),), False, ""),
    ],
)
def test_endpoints(
    endpoint: str, kind: str, hosts: tuple[tuple[str, int], ...], secure: bool, database: str
) -> None:
    target = _config(endpoint=endpoint).target
    assert (target.kind, target.hosts, target.secure, target.database) == (
        kind,
        hosts,
        secure,
        database,
    )


def test_chdb_paths() -> None:
    assert _config(endpoint="chdb://./data/clickhouse").target.path == "./data/clickhouse"
    assert _config(endpoint="chdb:///var/lib/airis").target.path == "/var/lib/airis"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("", "endpoint must be specified"),
        ("localhost:9000", "must be a URL"),
        ("ftp://host", "scheme 'ftp' is not supported"),
        ("chdb://", "needs a store path"),
        ("http://host:99999", "invalid port"),
        ("http://host:abc", "invalid port"),
        ("tcp://", "names no host"),
    ],
)
def test_bad_endpoint_is_a_validation_error(endpoint: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _config(endpoint=endpoint)
    assert message in str(info.value)
    assert info.value.errors()[0]["loc"] == ("endpoint",)


def test_other_bad_config() -> None:
    with pytest.raises(ValidationError, match="not supported"):
        _config(json=True)
    with pytest.raises(ValidationError, match="compress must be one of"):
        _config(compress="snappy")
    with pytest.raises(ValidationError, match="Extra inputs"):
        _config(no_such_key=1)
    with pytest.raises(ValidationError, match="invalid duration"):
        _config(ttl="3 days")
    with pytest.raises(ValidationError, match="Field required"):
        ClickHouseConfig.model_validate({})


def test_database_and_compression_resolution() -> None:
    assert _config(endpoint="http://h:8123/fromurl").database_name() == "fromurl"
    assert _config(endpoint="http://h:8123/fromurl", database="cfg").database_name() == "cfg"
    assert _config().compression() == "lz4"
    assert _config(compress="none").compression() is False
    assert _config(compress="zstd").compression() == "zstd"
    # chDB: async inserts only add latency in-process, so none are requested
    assert "async_insert" not in _config().settings()


# --- DDL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expr"),
    [
        (0, ""),
        (72 * 3600, "TTL T + toIntervalDay(3)"),
        (5 * 3600, "TTL T + toIntervalHour(5)"),
        (90 * 60, "TTL T + toIntervalMinute(90)"),
        (61, "TTL T + toIntervalSecond(61)"),
    ],
)
def test_ttl_expression(seconds: int, expr: str) -> None:
    assert ttl_expr(seconds, "T") == expr


def test_cluster_engine_and_database_ddl() -> None:
    schema = Schema(
        _config(
            database="otel",
            cluster_name="c`1",
            table_engine={"name": "ReplicatedMergeTree", "params": "'/t/{shard}', '{replica}'"},
        )
    )
    assert schema.create_database() == "CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER `c``1`"
    traces = schema.traces_ddl()[0].sql
    assert "CREATE TABLE IF NOT EXISTS `otel`.`otel_traces` ON CLUSTER `c``1` (" in traces
    assert "ENGINE = ReplicatedMergeTree('/t/{shard}', '{replica}')" in traces
    rollup = schema.rollup_ddl()[0].sql
    assert "ENGINE = ReplicatedAggregatingMergeTree('/t/{shard}', '{replica}')" in rollup
    replicated = Schema(
        _config(database="otel", cluster_name="c", database_engine={"name": "Replicated"})
    )
    assert replicated.create_database() == (
        "CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER `c` ENGINE = Replicated"
    )
    assert "ON CLUSTER" not in replicated.traces_ddl()[0].sql
    assert Schema(_config(database="default")).create_database() is None  # never created
    assert Schema(_config()).create_database() == "CREATE DATABASE IF NOT EXISTS `otel`"


def test_logs_indexes_follow_server_version() -> None:
    schema = Schema(_config())
    assert "TYPE text(tokenizer = 'array')" in schema.logs_ddl("26.9.2.1")[0].sql
    old = schema.logs_ddl("25.8.1")[0].sql
    assert "TYPE text(" not in old
    assert "INDEX idx_event_name EventName TYPE bloom_filter(0.01) GRANULARITY 1" in old


# --- conversion (no store) ------------------------------------------------------------------


def test_traces_conversion_matches_the_go_exporter() -> None:
    now = 1_800_000_000_000_000_000
    table = traces_table(decode_traces(traces_request(now)))
    rows = table.to_pylist()
    assert table.num_rows == 7
    first = rows[0]
    assert first["TraceId"] == "a0" * 16
    assert first["SpanId"] == "b0" * 8
    assert first["ParentSpanId"] == ""
    assert rows[1]["ParentSpanId"] == "b0" * 8
    assert rows[1]["TraceState"] == "k=v"
    assert [r["SpanKind"] for r in rows[:6]] == [
        "Unspecified",
        "Internal",
        "Server",
        "Client",
        "Producer",
        "Consumer",
    ]
    assert [r["StatusCode"] for r in rows[:3]] == ["Unset", "Ok", "Error"]
    assert rows[2]["StatusMessage"] == "failed"
    assert first["ServiceName"] == "checkout"
    assert dict(first["ResourceAttributes"]) == {"service.name": "checkout", "host.cpus": "8"}
    assert (first["ScopeName"], first["ScopeVersion"]) == ("io.airis.test", "1.2.3")
    assert dict(first["SpanAttributes"]) == {
        "http.status_code": "200",
        "ratio": "0.25",
        "ok": "true",
        "blob": "AAE=",
        "tags": '["a"]',
        "obj": '{"a":true,"z":1}',  # Go's json.Marshal of AsRaw(): sorted keys
    }
    assert first["Duration"] == 250_000
    assert table.column("Timestamp").type == pa.timestamp("ns")
    assert table.column("Timestamp").cast(pa.int64())[0].as_py() == now
    assert first["Events.Name"] == ["event0", "event1"]
    assert [t.value for t in table.column("Events.Timestamp")[0].values] == [now + 10, now + 11]
    assert [dict(m) for m in first["Events.Attributes"]] == [{"attempt": "0"}, {"attempt": "1"}]
    assert first["Links.TraceId"] == ["11" * 16]
    assert first["Links.SpanId"] == ["22" * 8]
    assert first["Links.TraceState"] == ["a=b"]
    assert [dict(m) for m in first["Links.Attributes"]] == [{"link.kind": "follows"}]
    assert rows[1]["Events.Name"] == [] and rows[1]["Links.TraceId"] == []
    last = rows[6]
    assert last["ServiceName"] == "" and dict(last["ResourceAttributes"]) == {}
    assert last["Duration"] == 2**64 - 1  # end - start in uint64, as pdata computes it


def test_logs_conversion_matches_the_go_exporter() -> None:
    now = 1_800_000_000_000_000_000
    table = logs_table(decode_logs(logs_request(now)))
    rows = table.to_pylist()
    ts = table.column("Timestamp").cast(pa.int64()).to_pylist()
    assert ts == [now, now + 7, now + 9]
    first = rows[0]
    assert (first["TraceId"], first["SpanId"]) == ("01" * 16, "02" * 8)
    assert first["TraceFlags"] == 1
    assert (first["SeverityText"], first["SeverityNumber"]) == ("ERROR", 17)
    assert first["ServiceName"] == "billing"
    assert first["Body"] == "payment failed"
    assert rows[1]["Body"] == '{"msg":"structured"}'
    assert rows[2]["Body"] == "42"
    assert first["ResourceSchemaUrl"] == "https://example.com/resource"
    assert first["ScopeSchemaUrl"] == "https://example.com/scope"
    assert dict(first["ScopeAttributes"]) == {"scope.attr": "s"}
    assert dict(first["LogAttributes"]) == {"amount": "12.5", "retry": "false"}
    assert first["EventName"] == "payment.failure"
    assert rows[1]["TraceId"] == "" and rows[1]["EventName"] == ""
    assert "EventName" not in logs_table(decode_logs(logs_request(now)), False).column_names


def test_metrics_conversion_matches_the_go_exporter() -> None:
    now = 1_800_000_000_000_000_000
    minute = now - now % MINUTE
    tables = metric_tables(decode_metrics(metrics_request(now)))
    assert set(tables) == {"gauge", "sum", "histogram", "exponential_histogram", "summary"}
    gauge = tables["gauge"].to_pylist()
    assert [g["Value"] for g in gauge] == [1.0, 2.0, 6.0, 4.0]
    assert gauge[0]["MetricName"] == "cpu.usage" and gauge[0]["MetricUnit"] == "1"
    assert gauge[0]["ScopeDroppedAttrCount"] == 3
    assert gauge[0]["ResourceSchemaUrl"] == "https://example.com/r"
    assert gauge[0]["ScopeSchemaUrl"] == "https://example.com/s"
    assert tables["gauge"].column("TimeUnix").type == pa.timestamp("s")
    assert tables["gauge"].column("TimeUnix").cast(pa.int64())[0].as_py() == minute // 10**9
    assert gauge[3]["Flags"] == 1
    assert gauge[3]["Exemplars.Value"] == [3.0, 0.5]
    assert gauge[3]["Exemplars.TraceId"] == ["05" * 16, "0" * 32]
    assert gauge[3]["Exemplars.SpanId"] == ["06" * 8, "0" * 16]
    assert [dict(m) for m in gauge[3]["Exemplars.FilteredAttributes"]] == [{"user": "u1"}, {}]
    total = tables["sum"].to_pylist()
    assert [(s["Value"], s["AggregationTemporality"], s["IsMonotonic"]) for s in total] == [
        (10.0, 2, True),
        (15.0, 2, True),
    ]
    hist = tables["histogram"].to_pylist()
    assert (hist[0]["Count"], hist[0]["Sum"], hist[0]["Min"], hist[0]["Max"]) == (6, 21.0, 0.5, 9.0)
    assert hist[0]["BucketCounts"] == [1, 2, 3] and hist[0]["ExplicitBounds"] == [1.0, 5.0]
    assert (hist[1]["Sum"], hist[1]["Min"], hist[1]["Max"], hist[1]["BucketCounts"]) == (
        0.0,
        0.0,
        0.0,
        [],
    )
    exp = tables["exponential_histogram"].to_pylist()[0]
    assert (exp["Scale"], exp["ZeroCount"], exp["PositiveOffset"], exp["NegativeOffset"]) == (
        3,
        1,
        2,
        -1,
    )
    assert exp["PositiveBucketCounts"] == [1, 3] and exp["NegativeBucketCounts"] == [0]
    summary = tables["summary"].to_pylist()[0]
    assert summary["ValueAtQuantiles.Quantile"] == [0.5, 0.99]
    assert summary["ValueAtQuantiles.Value"] == [1.5, 3.0]


def test_errors_are_classified() -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    assert isinstance(classify(DatabaseError("x", code=53), "i"), PermanentError)
    assert isinstance(classify(DatabaseError("x", code=60), "i"), RetryableError)
    assert isinstance(classify(DatabaseError("x", code=252), "i"), RetryableError)
    assert isinstance(classify(OperationalError("refused"), "i"), RetryableError)
    assert isinstance(classify(TimeoutError(), "i"), RetryableError)
    assert isinstance(classify(pa.ArrowInvalid("bad"), "i"), PermanentError)


def _exporter(cfg: ClickHouseConfig, signals: set[str] | None = None) -> ClickHouseExporter:
    settings = CreateSettings(
        ComponentID("clickhouse"), EXPORTER, Telemetry(), signals or set(SIGNALS)
    )
    exporter = factory.create(settings, cfg)
    assert isinstance(exporter, ClickHouseExporter)
    return exporter


async def test_export_before_start_is_retryable() -> None:
    exporter = _exporter(_config())
    with pytest.raises(RetryableError):
        await exporter.export(decode_traces(traces_request(time.time_ns())))


async def test_unreachable_server_fails_start_with_the_endpoint() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = ClickHouseConfig.model_validate(
        {"endpoint": f"http://127.0.0.1:{port}", "connection_params": {"dial_timeout": "1s"}}
    )
    with pytest.raises(RuntimeError, match=f"cannot open ClickHouse at http://127.0.0.1:{port}"):
        await _exporter(cfg).start(host=None)  # type: ignore[arg-type]


# --- the embedded store, in a subprocess ----------------------------------------------------

# Known answer: otel_* columns as the v0.165.0 DDL declares them (Nested expanded the way
# ClickHouse stores it), codecs as written there ("Delta" without a size).
_METRIC_HEAD = [
    ("ResourceAttributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
    ("ResourceSchemaUrl", "String", "ZSTD(3)"),
    ("ScopeName", "String", "ZSTD(3)"),
    ("ScopeVersion", "String", "ZSTD(3)"),
    ("ScopeAttributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
    ("ScopeDroppedAttrCount", "UInt32", "ZSTD(3)"),
    ("ScopeSchemaUrl", "String", "ZSTD(3)"),
    ("ServiceName", "LowCardinality(String)", "ZSTD(3)"),
    ("MetricName", "LowCardinality(String)", "ZSTD(3)"),
    ("MetricDescription", "String", "ZSTD(3)"),
    ("MetricUnit", "String", "ZSTD(3)"),
    ("Attributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
    ("StartTimeUnix", "DateTime", "Delta, ZSTD(3)"),
    ("TimeUnix", "DateTime", "Delta, ZSTD(3)"),
]
_EXEMPLARS = [
    ("Exemplars.FilteredAttributes", "Array(Map(LowCardinality(String), String))", "ZSTD(3)"),
    ("Exemplars.TimeUnix", "Array(DateTime)", "ZSTD(3)"),
    ("Exemplars.Value", "Array(Float64)", "ZSTD(3)"),
    ("Exemplars.SpanId", "Array(String)", "ZSTD(3)"),
    ("Exemplars.TraceId", "Array(String)", "ZSTD(3)"),
]
_COUNT_SUM = [("Count", "UInt64", "Delta, ZSTD(3)"), ("Sum", "Float64", "ZSTD(3)")]
_MIN_MAX_TEMPORALITY = [
    ("Flags", "UInt32", "ZSTD(3)"),
    ("Min", "Float64", "ZSTD(3)"),
    ("Max", "Float64", "ZSTD(3)"),
    ("AggregationTemporality", "Int32", "ZSTD(3)"),
]
_MATERIALIZED = [
    f"__otel_materialized_{a}"
    for a in (
        "k8s.cluster.name",
        "k8s.container.name",
        "k8s.deployment.name",
        "k8s.namespace.name",
        "k8s.node.name",
        "k8s.pod.name",
        "k8s.pod.uid",
        "deployment.environment.name",
    )
]
EXPECTED_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "otel_traces": [
        ("Timestamp", "DateTime64(9)", "Delta, ZSTD(3)"),
        ("TraceId", "String", "ZSTD(3)"),
        ("SpanId", "String", "ZSTD(3)"),
        ("ParentSpanId", "String", "ZSTD(3)"),
        ("TraceState", "String", "ZSTD(3)"),
        ("SpanName", "LowCardinality(String)", "ZSTD(3)"),
        ("SpanKind", "LowCardinality(String)", "ZSTD(3)"),
        ("ServiceName", "LowCardinality(String)", "ZSTD(3)"),
        ("ResourceAttributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
        ("ScopeName", "String", "ZSTD(3)"),
        ("ScopeVersion", "String", "ZSTD(3)"),
        ("SpanAttributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
        ("Duration", "UInt64", "ZSTD(3)"),
        ("StatusCode", "LowCardinality(String)", "ZSTD(3)"),
        ("StatusMessage", "String", "ZSTD(3)"),
        ("Events.Timestamp", "Array(DateTime64(9))", "ZSTD(3)"),
        ("Events.Name", "Array(LowCardinality(String))", "ZSTD(3)"),
        ("Events.Attributes", "Array(Map(LowCardinality(String), String))", "ZSTD(3)"),
        ("Links.TraceId", "Array(String)", "ZSTD(3)"),
        ("Links.SpanId", "Array(String)", "ZSTD(3)"),
        ("Links.TraceState", "Array(String)", "ZSTD(3)"),
        ("Links.Attributes", "Array(Map(LowCardinality(String), String))", "ZSTD(3)"),
    ],
    "otel_traces_trace_id_ts": [
        ("TraceId", "String", "ZSTD(3)"),
        ("Start", "DateTime", "Delta, ZSTD(3)"),
        ("End", "DateTime", "Delta, ZSTD(3)"),
    ],
    "otel_logs": [
        ("Timestamp", "DateTime64(9)", "Delta, ZSTD(3)"),
        ("TraceId", "String", "ZSTD(3)"),
        ("SpanId", "String", "ZSTD(3)"),
        ("TraceFlags", "UInt8", ""),
        ("SeverityText", "LowCardinality(String)", "ZSTD(3)"),
        ("SeverityNumber", "UInt8", ""),
        ("ServiceName", "LowCardinality(String)", "ZSTD(3)"),
        ("Body", "String", "ZSTD(3)"),
        ("ResourceSchemaUrl", "LowCardinality(String)", "ZSTD(3)"),
        ("ResourceAttributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
        ("ScopeSchemaUrl", "LowCardinality(String)", "ZSTD(3)"),
        ("ScopeName", "String", "ZSTD(3)"),
        ("ScopeVersion", "LowCardinality(String)", "ZSTD(3)"),
        ("ScopeAttributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
        ("LogAttributes", "Map(LowCardinality(String), String)", "ZSTD(3)"),
        ("EventName", "String", "ZSTD(3)"),
        *[(name, "LowCardinality(String)", "ZSTD(3)") for name in _MATERIALIZED],
    ],
    "otel_metrics_gauge": [
        *_METRIC_HEAD,
        ("Value", "Float64", "ZSTD(3)"),
        ("Flags", "UInt32", "ZSTD(3)"),
        *_EXEMPLARS,
    ],
    "otel_metrics_sum": [
        *_METRIC_HEAD,
        ("Value", "Float64", "ZSTD(3)"),
        ("Flags", "UInt32", "ZSTD(3)"),
        *_EXEMPLARS,
        ("AggregationTemporality", "Int32", "ZSTD(3)"),
        ("IsMonotonic", "Bool", "Delta, ZSTD(3)"),
    ],
    "otel_metrics_histogram": [
        *_METRIC_HEAD,
        *_COUNT_SUM,
        ("BucketCounts", "Array(UInt64)", "ZSTD(3)"),
        ("ExplicitBounds", "Array(Float64)", "ZSTD(3)"),
        *_EXEMPLARS,
        *_MIN_MAX_TEMPORALITY,
    ],
    "otel_metrics_exponential_histogram": [
        *_METRIC_HEAD,
        *_COUNT_SUM,
        ("Scale", "Int32", "ZSTD(3)"),
        ("ZeroCount", "UInt64", "ZSTD(3)"),
        ("PositiveOffset", "Int32", "ZSTD(3)"),
        ("PositiveBucketCounts", "Array(UInt64)", "ZSTD(3)"),
        ("NegativeOffset", "Int32", "ZSTD(3)"),
        ("NegativeBucketCounts", "Array(UInt64)", "ZSTD(3)"),
        *_EXEMPLARS,
        *_MIN_MAX_TEMPORALITY,
    ],
    "otel_metrics_summary": [
        *_METRIC_HEAD,
        *_COUNT_SUM,
        ("ValueAtQuantiles.Quantile", "Array(Float64)", "ZSTD(3)"),
        ("ValueAtQuantiles.Value", "Array(Float64)", "ZSTD(3)"),
        ("Flags", "UInt32", "ZSTD(3)"),
    ],
}
_METRIC_KEYS = (
    "toDate(TimeUnix)",
    "ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix",
)
# table -> (partition key, sorting key)
EXPECTED_KEYS = {
    "otel_traces": ("toDate(Timestamp)", "ServiceName, SpanName, toDateTime(Timestamp)"),
    "otel_traces_trace_id_ts": ("toDate(Start)", "TraceId, Start"),
    "otel_logs": ("toDate(Timestamp)", "toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp"),
    **{name: _METRIC_KEYS for name in EXPECTED_COLUMNS if name.startswith("otel_metrics_")},
}
_BLOOM_METRIC_INDEXES = [
    ("idx_res_attr_key", "bloom_filter(0.01)", "mapKeys(ResourceAttributes)", 1),
    ("idx_res_attr_value", "bloom_filter(0.01)", "mapValues(ResourceAttributes)", 1),
    ("idx_scope_attr_key", "bloom_filter(0.01)", "mapKeys(ScopeAttributes)", 1),
    ("idx_scope_attr_value", "bloom_filter(0.01)", "mapValues(ScopeAttributes)", 1),
    ("idx_attr_key", "bloom_filter(0.01)", "mapKeys(Attributes)", 1),
    ("idx_attr_value", "bloom_filter(0.01)", "mapValues(Attributes)", 1),
    ("idx_time_minmax", "minmax", "TimeUnix", 1),
]
_TEXT = "text(tokenizer = 'array')"
EXPECTED_INDEXES = {
    "otel_traces": [
        ("idx_trace_id", "bloom_filter(0.001)", "TraceId", 1),
        ("idx_res_attr_key", "bloom_filter(0.01)", "mapKeys(ResourceAttributes)", 1),
        ("idx_res_attr_value", "bloom_filter(0.01)", "mapValues(ResourceAttributes)", 1),
        ("idx_span_attr_key", "bloom_filter(0.01)", "mapKeys(SpanAttributes)", 1),
        ("idx_span_attr_value", "bloom_filter(0.01)", "mapValues(SpanAttributes)", 1),
        ("idx_duration", "minmax", "Duration", 1),
    ],
    "otel_traces_trace_id_ts": [("idx_trace_id", "bloom_filter(0.01)", "TraceId", 1)],
    # ClickHouse >= 26.2: text indexes (their granularity is ClickHouse's default)
    "otel_logs": [
        ("idx_trace_id", _TEXT, "TraceId", 100000000),
        ("idx_res_attr_key", _TEXT, "mapKeys(ResourceAttributes)", 100000000),
        ("idx_res_attr_value", _TEXT, "mapValues(ResourceAttributes)", 100000000),
        ("idx_scope_attr_key", _TEXT, "mapKeys(ScopeAttributes)", 100000000),
        ("idx_scope_attr_value", _TEXT, "mapValues(ScopeAttributes)", 100000000),
        ("idx_log_attr_key", _TEXT, "mapKeys(LogAttributes)", 100000000),
        ("idx_log_attr_value", _TEXT, "mapValues(LogAttributes)", 100000000),
        ("idx_lower_body", "text(tokenizer = 'splitByNonAlpha')", "lower(Body)", 100000000),
    ],
    **{name: _BLOOM_METRIC_INDEXES for name in EXPECTED_COLUMNS if name.startswith("otel_m")},
}


def _q(client: Any, sql: str) -> list[list[Any]]:
    return [list(row) for row in client.query(sql).result_rows]


async def _scenario(store: str) -> dict[str, Any]:
    """Runs in a subprocess: create the schema in a fresh store, export, read back."""
    now = time.time_ns()
    cfg = ClickHouseConfig.model_validate(
        {"endpoint": f"chdb://{store}", "database": "otel", "ttl": "72h"}
    )
    exporter = _exporter(cfg)
    await exporter.start(host=None)  # type: ignore[arg-type]
    # a second instance (another pipeline's `clickhouse/2`) shares the one store
    second = _exporter(cfg, {"traces"})
    await second.start(host=None)  # type: ignore[arg-type]
    assert exporter.conn is second.conn
    out: dict[str, Any] = {"now": now}

    await second.export(decode_traces(traces_request(now)))
    await second.shutdown()  # the first instance keeps the store open
    await exporter.export(decode_traces(old_traces_request(now)))
    await exporter.export(decode_logs(logs_request(now)))
    await exporter.export(decode_metrics(metrics_request(now)))
    # the same batch twice: a retry after a full success inserts again (at least once)
    batch = decode_metrics(metrics_request(now))
    await exporter.export(batch)

    assert exporter.conn is not None
    client = exporter.conn.client
    q = lambda sql: _q(client, sql)  # noqa: E731

    index_bytes = (
        "SELECT sum(secondary_indices_compressed_bytes) FROM system.parts"
        " WHERE database = 'otel' AND table = 'otel_traces' AND active"
    )
    out["index_bytes_inserted"] = q(index_bytes)[0][0]
    for table in ("otel_traces", "otel_logs", "otel_metrics_rollup_1m"):
        client.command(f"OPTIMIZE TABLE otel.{table} FINAL")
    out["index_bytes_merged"] = q(index_bytes)[0][0]
    out["found_by_attribute"] = q(
        "SELECT count() FROM otel.otel_traces WHERE SpanAttributes['ratio'] = '0.25'"
    )[0][0]
    out["traces"] = q(
        "SELECT toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, ParentSpanId, TraceState,"
        " SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion,"
        " SpanAttributes, Duration, StatusCode, StatusMessage,"
        " arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name,"
        " Events.Attributes, Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes"
        " FROM otel.otel_traces ORDER BY SpanName"
    )
    out["trace_id_ts"] = q(
        "SELECT TraceId, toUnixTimestamp(min(Start)), toUnixTimestamp(max(End))"
        " FROM otel.otel_traces_trace_id_ts GROUP BY TraceId ORDER BY TraceId"
    )
    out["logs"] = q(
        "SELECT toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, TraceFlags, SeverityText,"
        " SeverityNumber, ServiceName, Body, ResourceSchemaUrl, ResourceAttributes,"
        " ScopeSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, LogAttributes, EventName,"
        " `__otel_materialized_k8s.pod.name` FROM otel.otel_logs ORDER BY Timestamp"
    )
    out["gauge"] = q(
        "SELECT MetricName, Attributes, toUnixTimestamp(TimeUnix), Value, Flags,"
        " Exemplars.Value, Exemplars.TraceId, Exemplars.SpanId, Exemplars.FilteredAttributes,"
        " ScopeDroppedAttrCount, ServiceName FROM otel.otel_metrics_gauge"
        " WHERE ServiceName = 'api' ORDER BY TimeUnix, Value"
    )
    out["sum"] = q(
        "SELECT Value, AggregationTemporality, IsMonotonic FROM otel.otel_metrics_sum"
        " WHERE ServiceName = 'api' ORDER BY Value"
    )
    out["histogram"] = q(
        "SELECT Count, Sum, BucketCounts, ExplicitBounds, Min, Max, AggregationTemporality"
        " FROM otel.otel_metrics_histogram WHERE ServiceName = 'api' ORDER BY Count"
    )
    out["exponential_histogram"] = q(
        "SELECT Count, Sum, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts,"
        " NegativeOffset, NegativeBucketCounts, Min, Max"
        " FROM otel.otel_metrics_exponential_histogram WHERE ServiceName = 'api'"
    )
    out["summary"] = q(
        "SELECT Count, Sum, ValueAtQuantiles.Quantile, ValueAtQuantiles.Value"
        " FROM otel.otel_metrics_summary"
    )
    out["rollup"] = q(
        "SELECT MetricType, MetricName, ServiceName, MetricUnit, Attributes,"
        " toUnixTimestamp(Minute), sum(Count), sum(Sum) / sum(Count), min(Min), max(Max)"
        " FROM otel.otel_metrics_rollup_1m WHERE ServiceName = 'api'"
        " GROUP BY MetricType, MetricName, ServiceName, MetricUnit, Attributes, Minute"
        " ORDER BY MetricName, toString(Attributes)"
    )
    # a retry after a partial failure inserts only the tables that failed
    client.command("DROP TABLE otel.otel_metrics_summary")
    partial = decode_metrics(metrics_request(now, service="retry"))
    try:
        await exporter.export(partial)
        out["partial_first"] = "accepted"
    except Exception as exc:
        out["partial_first"] = type(exc).__name__
    for statement in exporter.schema.metrics_ddl():
        client.command(statement.sql)
    await exporter.export(partial)
    out["partial_counts"] = q(
        # ORDER BY on the outer query: inside UNION ALL it binds to the last SELECT only
        "SELECT * FROM (SELECT 'gauge' AS t, count() FROM otel.otel_metrics_gauge"
        " WHERE ServiceName = 'retry' UNION ALL SELECT 'summary' AS t, count()"
        " FROM otel.otel_metrics_summary WHERE ServiceName = 'retry') ORDER BY t"
    )

    # create_schema: false against a table from before EventName existed
    client.command("CREATE TABLE otel.old_logs AS otel.otel_logs")
    client.command("ALTER TABLE otel.old_logs DROP COLUMN EventName")
    legacy = _exporter(
        ClickHouseConfig.model_validate(
            {
                "endpoint": f"chdb://{store}",
                "database": "otel",
                "create_schema": False,
                "logs_table_name": "old_logs",
            }
        ),
        {"logs"},
    )
    await legacy.start(host=None)  # type: ignore[arg-type]
    out["legacy_event_name"] = legacy.logs_event_name
    await legacy.export(decode_logs(logs_request(now)))
    out["legacy_rows"] = q("SELECT count() FROM otel.old_logs")[0][0]
    await legacy.shutdown()

    out["columns"] = q(
        "SELECT table, name, type, compression_codec FROM system.columns"
        " WHERE database = 'otel' ORDER BY table, position"
    )
    out["tables"] = q(
        "SELECT name, engine, partition_key, sorting_key, primary_key, create_table_query"
        " FROM system.tables WHERE database = 'otel' ORDER BY name"
    )
    out["indexes"] = q(
        "SELECT table, name, type_full, expr, granularity FROM system.data_skipping_indices"
        " WHERE database = 'otel' ORDER BY table"
    )
    # errors from the real engine, classified
    bad_type = pa.table({"Duration": pa.array(["not a number"])})
    missing_column = pa.table({"NoSuchColumn": pa.array([1])})
    errors = {}
    for name, table, rows in (
        ("type_mismatch", "otel_traces", bad_type),
        ("no_such_column", "otel_traces", missing_column),
        ("unknown_table", "no_such_table", bad_type),
    ):
        try:
            await exporter._insert(exporter.database, table, rows)
            errors[name] = "accepted"
        except Exception as exc:
            errors[name] = type(classify(exc, "insert")).__name__
    out["errors"] = errors
    await exporter.shutdown()
    return out


def _scenario_main() -> None:
    print(json.dumps(asyncio.run(_scenario(sys.argv[1])), default=str))


@pytest.fixture(scope="module")
def store_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("chstore")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    code = "import sys, test_clickhouse_exporter as t; t._scenario_main()"
    # a relative chdb:// path resolves against the working directory
    proc = subprocess.run(
        [sys.executable, "-c", code, "./store"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (work / "store").is_dir()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _codec(text: str) -> str:
    text = text.removeprefix("CODEC(").removesuffix(")") if text else ""
    return re.sub(r"Delta\(\d\)", "Delta", text)


def test_ddl_matches_the_contrib_exporter(store_run: dict[str, Any]) -> None:
    actual: dict[str, list[tuple[str, str, str]]] = {}
    for table, name, type_, codec in store_run["columns"]:
        actual.setdefault(table, []).append((name, type_, _codec(codec)))
    for table, columns in EXPECTED_COLUMNS.items():
        assert actual[table] == columns, table
    tables = {row[0]: row for row in store_run["tables"]}
    for table, (partition, sorting) in EXPECTED_KEYS.items():
        assert (tables[table][2], tables[table][3]) == (partition, sorting), table
        assert tables[table][1] == "MergeTree"
        assert "ttl_only_drop_parts = 1" in tables[table][5]
        assert "index_granularity = 8192" in tables[table][5]
    indexes: dict[str, list[tuple[str, str, str, int]]] = {}
    for table, name, type_, expr, granularity in store_run["indexes"]:
        indexes.setdefault(table, []).append((name, type_, expr, granularity))
    for table, expected in EXPECTED_INDEXES.items():
        assert indexes[table] == expected, table
    view = tables["otel_traces_trace_id_ts_mv"]
    assert view[1] == "MaterializedView"
    assert "TO otel.otel_traces_trace_id_ts" in view[5]
    assert "min(Timestamp) AS Start" in view[5] and "WHERE TraceId != ''" in view[5]


def test_skip_indexes_are_built_by_merges(store_run: dict[str, Any]) -> None:
    # the embedded store's inserts leave them out (EMBEDDED_INSERT_SETTINGS); a merge builds them
    assert store_run["index_bytes_inserted"] == 0
    assert store_run["index_bytes_merged"] > 0
    assert store_run["found_by_attribute"] >= 1


def test_ttl_is_applied(store_run: dict[str, Any]) -> None:
    tables = {row[0]: row[5] for row in store_run["tables"]}
    assert "TTL toDateTime(Timestamp) + toIntervalDay(3)" in tables["otel_traces"]
    assert "TTL toDateTime(Timestamp) + toIntervalDay(3)" in tables["otel_logs"]
    assert "TTL toDateTime(Start) + toIntervalDay(3)" in tables["otel_traces_trace_id_ts"]
    assert "TTL toDateTime(TimeUnix) + toIntervalDay(3)" in tables["otel_metrics_gauge"]
    assert "TTL Minute + toIntervalDay(3)" in tables["otel_metrics_rollup_1m"]
    # the 10-day-old span is gone from the table once TTL merges ran
    assert "ancient" not in [row[5] for row in store_run["traces"]]


def test_spans_read_back(store_run: dict[str, Any]) -> None:
    now = store_run["now"]
    rows = {row[5]: row for row in store_run["traces"]}
    assert len(store_run["traces"]) == 7
    op0 = rows["op0"]
    assert op0[0] == now
    assert op0[1:5] == ["a0" * 16, "b0" * 8, "", ""]
    assert op0[6:8] == ["Unspecified", "checkout"]
    assert op0[8] == {"service.name": "checkout", "host.cpus": "8"}
    assert op0[9:11] == ["io.airis.test", "1.2.3"]
    assert op0[11]["obj"] == '{"a":true,"z":1}' and op0[11]["ratio"] == "0.25"
    assert op0[12:15] == [250_000, "Unset", ""]
    assert op0[15] == [now + 10, now + 11]
    assert op0[16] == ["event0", "event1"]
    assert op0[17] == [{"attempt": "0"}, {"attempt": "1"}]
    assert op0[18:22] == [["11" * 16], ["22" * 8], ["a=b"], [{"link.kind": "follows"}]]
    assert rows["op2"][6] == "Server" and rows["op2"][13:15] == ["Error", "failed"]
    assert rows["op1"][3:5] == ["b0" * 8, "k=v"]
    assert rows["backwards"][12] == 2**64 - 1
    ts = {row[0]: row for row in store_run["trace_id_ts"]}
    assert set(ts) == {bytes([0xA0 + i]).hex() * 16 for i in range(6)} | {"cc" * 16}
    assert ts["a0" * 16][1] == now // 10**9


def test_logs_read_back(store_run: dict[str, Any]) -> None:
    now = store_run["now"]
    logs = store_run["logs"]
    assert [row[0] for row in logs] == [now, now + 7, now + 9]
    first = logs[0]
    assert first[1:8] == ["01" * 16, "02" * 8, 1, "ERROR", 17, "billing", "payment failed"]
    assert first[8] == "https://example.com/resource"
    assert first[9] == {"service.name": "billing", "k8s.pod.name": "billing-7f9"}
    assert first[10:14] == ["https://example.com/scope", "logger", "0.1", {"scope.attr": "s"}]
    assert first[14] == {"amount": "12.5", "retry": "false"}
    assert first[15:17] == ["payment.failure", "billing-7f9"]
    assert [row[7] for row in logs[1:]] == ['{"msg":"structured"}', "42"]


def test_metrics_read_back(store_run: dict[str, Any]) -> None:
    now = store_run["now"]
    minute = (now - now % MINUTE) // 10**9
    gauge = store_run["gauge"]
    assert len(gauge) == 8  # the same batch was exported twice
    assert [row[3] for row in gauge[::2]] == [1.0, 2.0, 6.0, 4.0]
    first = gauge[0]
    assert first[:3] == ["cpu.usage", {"core": "0"}, minute]
    assert first[9:] == [3, "api"]
    last = gauge[-1]
    assert last[4:9] == [
        1,
        [3.0, 0.5],
        ["05" * 16, "0" * 32],
        ["06" * 8, "0" * 16],
        [{"user": "u1"}, {}],
    ]
    assert store_run["sum"] == [[10.0, 2, True]] * 2 + [[15.0, 2, True]] * 2
    assert store_run["histogram"][::2] == [
        [0, 0.0, [], [], 0.0, 0.0, 1],
        [6, 21.0, [1, 2, 3], [1.0, 5.0], 0.5, 9.0, 1],
    ]
    assert store_run["exponential_histogram"][0] == [5, 50.0, 3, 1, 2, [1, 3], -1, [0], 1.0, 20.0]
    assert store_run["summary"][0] == [4, 8.0, [0.5, 0.99], [1.5, 3.0]]


def test_rollup_is_filled_per_minute(store_run: dict[str, Any]) -> None:
    now = store_run["now"]
    minute = (now - now % MINUTE) // 10**9
    rollup = store_run["rollup"]
    # gauge core=0: 1, 2, 6 (twice); core=1: 4 (twice); sum: 10, 15 (twice)
    assert rollup == [
        ["gauge", "cpu.usage", "api", "1", {"core": "0"}, minute, 6, 3.0, 1.0, 6.0],
        ["gauge", "cpu.usage", "api", "1", {"core": "1"}, minute, 2, 4.0, 4.0, 4.0],
        ["sum", "requests", "api", "{request}", {}, minute, 4, 12.5, 10.0, 15.0],
    ]
    tables = {row[0]: row for row in store_run["tables"]}
    assert tables["otel_metrics_rollup_1m"][1] == "AggregatingMergeTree"
    assert {"otel_metrics_rollup_1m_gauge_mv", "otel_metrics_rollup_1m_sum_mv"} <= set(tables)


def test_engine_errors_are_classified(store_run: dict[str, Any]) -> None:
    assert store_run["errors"] == {
        "type_mismatch": "PermanentError",
        "no_such_column": "PermanentError",
        "unknown_table": "RetryableError",
    }


def test_retry_after_partial_failure_skips_inserted_tables(store_run: dict[str, Any]) -> None:
    # the summary table was missing (UNKNOWN_TABLE: retryable); the other tables took rows
    assert store_run["partial_first"] == "RetryableError"
    assert store_run["partial_counts"] == [["gauge", 4], ["summary", 1]]


def test_create_schema_false_detects_missing_event_name(store_run: dict[str, Any]) -> None:
    assert store_run["legacy_event_name"] is False
    assert store_run["legacy_rows"] == 3
