"""debug and nop exporters: config keys, the three verbosities, sampling, output targets.

Expected texts follow the Collector's debugexporter test data (normal/*_test.go and
otlptext/testdata), so a line here differing from the Collector is a bug here.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from exporters.debug import DebugConfig, DebugExporter, factory
from exporters.debug.exporter import Sampler
from exporters.debug.text import detailed_text, es6, go_time, go_v, normal_text
from exporters.nop import factory as nop_factory
from otlp import batch as b
from otlp.batch import Batch

T0 = 1581452772_000000321  # 2020-02-11 20:26:12.000000321 UTC, as in the Collector's testdata
T1 = 1581452773_000000789
TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(0x11, 0x19))


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": b.V_BOOL, "bool": value}
    if isinstance(value, int):
        return {"key": key, "type": b.V_INT, "int": value}
    if isinstance(value, float):
        return {"key": key, "type": b.V_DOUBLE, "double": value}
    if isinstance(value, bytes):
        return {"key": key, "type": b.V_BYTES, "bytes": value}
    return {"key": key, "type": b.V_STRING, "str": value}


def make_batch(
    signal: str,
    tables: dict[str, list[dict[str, Any]]],
    resource: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> Batch:
    resource = resource or {"attributes": [attr("resource-attr", "resource-attr-val-1")]}
    scope = {"resource_index": 0, **(scope or {})}
    built = {
        name: pa.Table.from_pylist(tables.get(name, []), schema=schema)
        for name, schema in b.RECORD_TABLES[signal].items()
    }
    return Batch(
        signal=signal,
        resources=pa.Table.from_pylist([resource], schema=b.RESOURCES),
        scopes=pa.Table.from_pylist([scope], schema=b.SCOPES),
        tables=built,
    )


def traces_batch() -> Batch:
    spans = [
        {
            "scope_index": 0,
            "trace_id": TRACE_ID,
            "span_id": SPAN_ID,
            "trace_state": "ot=th:0",
            "name": "operationA",
            "kind": 2,
            "start_time_unix_nano": T0,
            "end_time_unix_nano": T1,
            "attributes": [attr("http.method", "GET"), attr("retries", 3), attr("ok", True)],
            "dropped_attributes_count": 1,
            "dropped_events_count": 1,
            "events": [
                {
                    "time_unix_nano": 1581452773_000000123,
                    "name": "event-with-attr",
                    "attributes": [attr("span-event-attr", "span-event-attr-val")],
                    "dropped_attributes_count": 2,
                }
            ],
            "status_code": 2,
            "status_message": "status-cancelled",
        },
        {
            "scope_index": 0,
            "name": "operationB",
            "start_time_unix_nano": T0,
            "end_time_unix_nano": T1,
            "links": [{"trace_state": "", "dropped_attributes_count": 4}],
            "dropped_links_count": 3,
        },
    ]
    return make_batch(b.TRACES, {"spans": spans})


async def run(config: dict[str, Any], batch: Batch) -> DebugExporter:
    exporter = DebugExporter("debug", DebugConfig.model_validate(config))
    await exporter.start(None)  # type: ignore[arg-type]  # the exporter asks nothing of the host
    await exporter.export(batch)
    await exporter.shutdown()
    return exporter


# --- config ----------------------------------------------------------------------------------


def test_defaults_match_the_collector() -> None:
    cfg = DebugConfig.model_validate({})
    assert (cfg.verbosity, cfg.sampling_initial, cfg.sampling_thereafter) == ("basic", 2, 1)
    assert cfg.use_internal_logger is True and cfg.output_paths is None
    assert cfg.sending_queue.enabled is False  # only present when configured
    assert DebugConfig.model_validate({"sending_queue": {}}).sending_queue.enabled is True
    assert factory.type == "debug" and factory.kind == "exporter"


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"verbosity": "none"}, "not supported"),
        ({"verbosity": "loud"}, "not supported"),
        ({"output_paths": ["stderr"]}, "output_paths is not supported"),
        ({"use_internal_logger": False, "output_paths": []}, "must not be empty"),
        ({"timeout": "5s"}, "Extra inputs"),
        ({"loglevel": "debug"}, "Extra inputs"),
    ],
)
def test_bad_config_is_refused(given: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        DebugConfig.model_validate(given)


def test_verbosity_is_case_insensitive() -> None:
    assert DebugConfig.model_validate({"verbosity": "Detailed"}).verbosity == "detailed"


# --- output ----------------------------------------------------------------------------------


async def test_basic_logs_one_summary_per_batch(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="airis.exporter.debug"):
        await run({}, traces_batch())
    [record] = caplog.records
    assert record.getMessage() == "Traces"
    assert getattr(record, "resource spans") == 1 and record.spans == 2
    assert getattr(record, "otelcol.component.id") == "debug"


async def test_basic_metrics_and_logs_counts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="airis.exporter.debug"):
        await run({}, metrics_batch())
        await run({}, make_batch(b.LOGS_SIGNAL, {"logs": [{"scope_index": 0}] * 3}))
    metrics, logs = caplog.records
    assert metrics.getMessage() == "Metrics"
    assert getattr(metrics, "data points") == 6 and metrics.metrics == 5
    assert logs.getMessage() == "Logs" and getattr(logs, "log records") == 3


async def test_normal_traces(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="airis.exporter.debug"):
        await run({"verbosity": "normal"}, traces_batch())
    summary, body = caplog.records
    assert summary.getMessage() == "Traces"
    assert body.getMessage() == (
        "ResourceTraces #0 resource-attr=resource-attr-val-1\n"
        "ScopeTraces #0\n"
        f"operationA {TRACE_ID.hex()} {SPAN_ID.hex()} http.method=GET retries=3 ok=true\n"
        "operationB  "
    )


def test_normal_resource_and_scope_details() -> None:
    batch = make_batch(
        b.LOGS_SIGNAL,
        {"logs": [{"scope_index": 0, "body": {"type": b.V_STRING, "str": "hello"}}]},
        resource={
            "schema_url": "https://opentelemetry.io/resource-schema-url",
            "attributes": [attr("resourceKey1", "resourceValue1"), attr("resourceKey2", False)],
        },
        scope={
            "name": "scope-name",
            "version": "1.2.3",
            "schema_url": "http://opentelemetry.io/scope-schema-url",
            "attributes": [attr("scopeKey1", "scopeValue1"), attr("scopeKey2", True)],
        },
    )
    assert normal_text(batch) == (
        "ResourceLog #0 [https://opentelemetry.io/resource-schema-url] "
        "resourceKey1=resourceValue1 resourceKey2=false\n"
        "ScopeLog #0 scope-name@1.2.3 [http://opentelemetry.io/scope-schema-url] "
        "scopeKey1=scopeValue1 scopeKey2=true\n"
        "hello "
    )


def test_detailed_traces_match_the_collector_layout() -> None:
    assert detailed_text(traces_batch()) == "\n".join(
        [
            "ResourceSpans #0",
            "Resource SchemaURL: ",
            "Resource attributes:",
            "     -> resource-attr: Str(resource-attr-val-1)",
            "ScopeSpans #0",
            "ScopeSpans SchemaURL: ",
            "InstrumentationScope  ",
            "Span #0",
            "    Trace ID       : 0102030405060708090a0b0c0d0e0f10",
            "    Parent ID      : ",
            "    ID             : 1112131415161718",
            "    Name           : operationA",
            "    Kind           : Server",
            "    TraceState     : ot=th:0",
            "    Start time     : 2020-02-11 20:26:12.000000321 +0000 UTC",
            "    End time       : 2020-02-11 20:26:13.000000789 +0000 UTC",
            "    Status code    : Error",
            "    Status message : status-cancelled",
            "    DroppedAttributesCount: 1",
            "    DroppedEventsCount: 1",
            "    DroppedLinksCount: 0",
            "Attributes:",
            "     -> http.method: Str(GET)",
            "     -> retries: Int(3)",
            "     -> ok: Bool(true)",
            "Events:",
            "SpanEvent #0",
            "     -> Name: event-with-attr",
            "     -> Timestamp: 2020-02-11 20:26:13.000000123 +0000 UTC",
            "     -> DroppedAttributesCount: 2",
            "     -> Attributes::",
            "          -> span-event-attr: Str(span-event-attr-val)",
            "Span #1",
            "    Trace ID       : ",
            "    Parent ID      : ",
            "    ID             : ",
            "    Name           : operationB",
            "    Kind           : Unspecified",
            "    Start time     : 2020-02-11 20:26:12.000000321 +0000 UTC",
            "    End time       : 2020-02-11 20:26:13.000000789 +0000 UTC",
            "    Status code    : Unset",
            "    Status message : ",
            "    DroppedAttributesCount: 0",
            "    DroppedEventsCount: 0",
            "    DroppedLinksCount: 3",
            "Links:",
            "SpanLink #0",
            "     -> Trace ID: ",
            "     -> ID: ",
            "     -> TraceState: ",
            "     -> DroppedAttributesCount: 4",
        ]
    )


def test_detailed_logs() -> None:
    record = {
        "scope_index": 0,
        "time_unix_nano": T1,
        "severity_number": 9,
        "severity_text": "Info",
        "body": {"type": b.V_STRING, "str": "This is a log message"},
        "attributes": [attr("app", "server"), attr("instance_num", 1), attr("raw", b"\x01\x02")],
        "trace_id": bytes([8, 4, 2, 1]) + bytes(12),
        "span_id": bytes([1, 2, 4, 8]) + bytes(4),
        "event_name": "checkout",
    }
    text = detailed_text(make_batch(b.LOGS_SIGNAL, {"logs": [record]}))
    assert text.splitlines()[4:] == [
        "ScopeLogs #0",
        "ScopeLogs SchemaURL: ",
        "InstrumentationScope  ",
        "LogRecord #0",
        "ObservedTimestamp: 1970-01-01 00:00:00 +0000 UTC",
        "Timestamp: 2020-02-11 20:26:13.000000789 +0000 UTC",
        "SeverityText: Info",
        "SeverityNumber: Info(9)",
        "EventName: checkout",
        "Body: Str(This is a log message)",
        "Attributes:",
        "     -> app: Str(server)",
        "     -> instance_num: Int(1)",
        "     -> raw: Bytes(AQI=)",
        "Trace ID: 08040201000000000000000000000000",
        "Span ID: 0102040800000000",
        "Flags: 0",
    ]


def metrics_batch() -> Batch:
    labels = [attr("http.response.status_code", 200), attr("http.request.method", "GET")]
    metrics = [
        {"scope_index": 0, "name": "gauge-int", "unit": "1", "type": b.M_GAUGE},
        {
            "scope_index": 0,
            "name": "sum-double",
            "unit": "1",
            "type": b.M_SUM,
            "aggregation_temporality": 2,
            "is_monotonic": True,
        },
        {
            "scope_index": 0,
            "name": "http.server.request.duration",
            "type": b.M_HISTOGRAM,
            "aggregation_temporality": 2,
        },
        {
            "scope_index": 0,
            "name": "exponential-histogram",
            "type": b.M_EXPONENTIAL_HISTOGRAM,
            "aggregation_temporality": 1,
        },
        {"scope_index": 0, "name": "summary", "type": b.M_SUMMARY},
    ]
    common = {"start_time_unix_nano": T0, "time_unix_nano": T1}
    gauge = [
        {"metric_index": 0, **common, "value_type": b.N_INT, "as_int": 123,
         "attributes": [attr("label-1", "label-value-1")]},
        {"metric_index": 0, **common, "value_type": b.N_INT, "as_int": 456},
    ]  # fmt: skip
    sums = [{"metric_index": 1, **common, "value_type": b.N_DOUBLE, "as_double": 1.23}]
    histogram = [
        {
            "metric_index": 2,
            **common,
            "attributes": labels,
            "count": 1340,
            "sum": 99.573,
            "min": 0.017,
            "max": 8.13,
            "explicit_bounds": [0.125, 0.5, 1, 3],
            "bucket_counts": [1324, 13, 0, 2, 1],
            "exemplars": [
                {"trace_id": TRACE_ID, "span_id": SPAN_ID, "time_unix_nano": T0,
                 "value_type": b.N_DOUBLE, "as_double": 15.0,
                 "filtered_attributes": [attr("exemplar-attachment", "exemplar-attachment-value")]},
            ],
        }
    ]  # fmt: skip
    exponential = [
        {
            "metric_index": 3,
            **common,
            "count": 5,
            "sum": 0.15,
            "scale": 1,
            "zero_count": 1,
            "negative_offset": -1,
            "negative_bucket_counts": [1, 1],
            "positive_offset": 1,
            "positive_bucket_counts": [1, 1],
        }
    ]
    summary = [
        {"metric_index": 4, **common, "attributes": labels, "count": 1340, "sum": 99.573,
         "quantile_values": [{"quantile": 0.01, "value": 15.0}]},
    ]  # fmt: skip
    return make_batch(
        b.METRICS_SIGNAL,
        {
            "metrics": metrics,
            "gauge": gauge,
            "sum": sums,
            "histogram": histogram,
            "exponential_histogram": exponential,
            "summary": summary,
        },
    )


def test_normal_metrics() -> None:
    assert normal_text(metrics_batch()).splitlines()[2:] == [
        "gauge-int{label-1=label-value-1} 123",
        "gauge-int{} 456",
        "sum-double{} 1.23",
        "http.server.request.duration{http.response.status_code=200,http.request.method=GET}"
        " count=1340 sum=99.573 min=0.017 max=8.13 le0.125=1324 le0.5=13 le1=0 le3=2 1",
        # bounds are exp(index * ln2 / 2^scale); the last digits depend on libm's exp
        "exponential-histogram{} count=5 sum=0.15 le-1=1 le-0.7071067811865476=1 zero=1 le2=1"
        f" le{go_v(math.exp(3 * math.ldexp(math.log(2), -1)))}=1",
        "summary{http.response.status_code=200,http.request.method=GET} count=1340 sum=99.573000"
        " q0.01=15",
    ]


def test_detailed_metrics() -> None:
    lines = detailed_text(metrics_batch()).splitlines()
    histogram = lines[lines.index("     -> Name: http.server.request.duration") :]
    assert histogram[:27] == [
        "     -> Name: http.server.request.duration",
        "     -> Description: ",
        "     -> Unit: ",
        "     -> DataType: Histogram",
        "     -> AggregationTemporality: Cumulative",
        "HistogramDataPoints #0",
        "Data point attributes:",
        "     -> http.response.status_code: Int(200)",
        "     -> http.request.method: Str(GET)",
        "StartTimestamp: 2020-02-11 20:26:12.000000321 +0000 UTC",
        "Timestamp: 2020-02-11 20:26:13.000000789 +0000 UTC",
        "Count: 1340",
        "Sum: 99.573000",
        "Min: 0.017000",
        "Max: 8.130000",
        "ExplicitBounds #0: 0.125000",
        "ExplicitBounds #1: 0.500000",
        "ExplicitBounds #2: 1.000000",
        "ExplicitBounds #3: 3.000000",
        "Buckets #0, Count: 1324",
        "Buckets #1, Count: 13",
        "Buckets #2, Count: 0",
        "Buckets #3, Count: 2",
        "Buckets #4, Count: 1",
        "Exemplars:",
        "Exemplar #0",
        "     -> Trace ID: 0102030405060708090a0b0c0d0e0f10",
    ]
    # the exponential histogram's buckets exactly as in the Collector's testdata
    start = lines.index("ExponentialHistogramDataPoints #0")
    assert lines[start + 3 : start + 10] == [
        "Count: 5",
        "Sum: 0.150000",
        "Bucket [-1.414214, -1.000000), Count: 1",
        "Bucket [-1.000000, -0.707107), Count: 1",
        "Bucket [0, 0], Count: 1",
        "Bucket (1.414214, 2.000000], Count: 1",
        "Bucket (2.000000, 2.828427], Count: 1",
    ]
    assert "     -> IsMonotonic: true" in lines
    assert "QuantileValue #0: Quantile 0.010000, Value 15.000000" in lines
    assert "Value: 1.230000" in lines


def test_go_number_and_time_formats() -> None:
    assert [go_v(x) for x in (1.5, 1e6, 123456.0, 1e-5, 0.0001, 3.0, -2.5e-7)] == [
        "1.5", "1e+06", "123456", "1e-05", "0.0001", "3", "-2.5e-07",
    ]  # fmt: skip
    assert [es6(x) for x in (1.5, 100.0, 123456789.0, 1e21, 1e-7, float("inf"))] == [
        "1.5", "100", "123456789", "1e+21", "1e-7", "Infinity",
    ]  # fmt: skip
    assert go_time(0) == "1970-01-01 00:00:00 +0000 UTC"
    assert go_time(1_500_000_000) == "1970-01-01 00:00:01.5 +0000 UTC"


# --- outputs and sampling --------------------------------------------------------------------


async def test_stdout_output_without_internal_logger(capsys: pytest.CaptureFixture[str]) -> None:
    await run({"use_internal_logger": False}, traces_batch())
    assert capsys.readouterr().out == 'Traces\t{"resource spans": 1, "spans": 2}\n'


async def test_output_paths_files(tmp_path: Path) -> None:
    target = tmp_path / "debug.out"
    config = {"use_internal_logger": False, "output_paths": [str(target)], "verbosity": "normal"}
    await run(config, traces_batch())
    lines = target.read_text().splitlines()
    assert lines[0] == 'Traces\t{"resource spans": 1, "spans": 2}'
    assert lines[1] == "ResourceTraces #0 resource-attr=resource-attr-val-1"


def test_sampler_follows_zap() -> None:
    now = [0.0]
    sampler = Sampler(initial=2, thereafter=3, clock=lambda: now[0])
    assert [sampler.allow("Traces") for _ in range(8)] == [
        True, True, False, False, True, False, False, True,
    ]  # fmt: skip
    assert sampler.allow("Logs")  # another message has its own count
    now[0] = 1.0  # a new second starts over
    assert sampler.allow("Traces") and sampler.allow("Traces") and not sampler.allow("Traces")
    never_again = Sampler(initial=1, thereafter=0, clock=lambda: 0.0)
    assert [never_again.allow("x") for _ in range(3)] == [True, False, False]


async def test_sampling_drops_summaries(caplog: pytest.LogCaptureFixture) -> None:
    exporter = DebugExporter(
        "debug/sampled",
        DebugConfig.model_validate({"sampling_initial": 1, "sampling_thereafter": 0}),
        clock=lambda: 0.0,
    )
    with caplog.at_level(logging.INFO, logger="airis.exporter.debug"):
        for _ in range(3):
            await exporter.export(traces_batch())
    assert len(caplog.records) == 1


async def test_nop_accepts_and_discards() -> None:
    assert nop_factory.type == "nop"
    exporter = nop_factory.create(None, nop_factory.config_model.model_validate({}))  # type: ignore[arg-type]
    await exporter.export(traces_batch())  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        nop_factory.config_model.model_validate({"anything": 1})
