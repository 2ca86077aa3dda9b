"""filter processor: OTTL conditions drop items, counted with reason "filtered"; empty
resources/scopes are pruned; config errors name the key and the statement."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp.batch import Batch
from otlp.config import validate
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.encode import encode
from otlp.errors import ConfigError, PermanentError
from otlp.telemetry import Telemetry
from processors.filter.config import FilterConfig
from processors.filter.processor import FilterProcessor
from tests.otlp_samples import kv, sample_logs, sample_metrics, sample_traces


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


def make(config: dict) -> tuple[FilterProcessor, Sink, Telemetry]:
    telemetry = Telemetry()
    processor = FilterProcessor("filter/x", FilterConfig.model_validate(config), telemetry)
    sink = Sink()
    processor.next = sink
    return processor, sink, telemetry


def dropped(telemetry: Telemetry, unit: str) -> float:
    return telemetry.value(
        f"otelcol_processor_dropped_{unit}_total", processor="filter/x", reason="filtered"
    )


async def test_span_conditions_are_ored_and_counted() -> None:
    processor, sink, telemetry = make(
        {"traces": {"span": ['name == "root"', 'resource.attributes["service.name"] == nil']}}
    )
    await processor.consume(decode_traces(sample_traces()))
    (out,) = sink.batches
    request = encode(out)
    # the second resource lost its only span: it is gone, as is the empty scope
    assert len(request.resource_spans) == 1
    spans = [s.name for ss in request.resource_spans[0].scope_spans for s in ss.spans]
    assert spans == ["GET /cart"]
    assert dropped(telemetry, "spans") == 2
    assert telemetry.value("otelcol_processor_incoming_spans_total", processor="filter/x") == 3
    assert telemetry.value("otelcol_processor_outgoing_spans_total", processor="filter/x") == 1


async def test_everything_dropped_is_not_forwarded() -> None:
    processor, sink, telemetry = make({"traces": {"span": ["true"]}})
    await processor.consume(decode_traces(sample_traces()))
    assert sink.batches == []
    assert dropped(telemetry, "spans") == 3


async def test_nothing_matching_passes_the_batch_unchanged() -> None:
    processor, sink, _ = make({"traces": {"span": ['name == "nope"']}})
    batch = decode_traces(sample_traces())
    await processor.consume(batch)
    assert encode(sink.batches[0]) == encode(batch)


async def test_span_events() -> None:
    processor, sink, telemetry = make({"traces": {"spanevent": ['name == "bare"']}})
    await processor.consume(decode_traces(sample_traces()))
    request = encode(sink.batches[0])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes[0].value.string_value == "ValueError"
    # events are not items: no span counted as dropped
    assert dropped(telemetry, "spans") == 0


async def test_span_and_event_conditions_together() -> None:
    processor, sink, _ = make(
        {"traces": {"span": ['name == "other"'], "spanevent": ['span.name == "GET /cart"']}}
    )
    await processor.consume(decode_traces(sample_traces()))
    request = encode(sink.batches[0])
    spans = request.resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["GET /cart", "root"]
    assert [len(s.events) for s in spans] == [0, 0]


async def test_logs() -> None:
    processor, sink, telemetry = make(
        {"logs": {"log_record": ["severity_number < SEVERITY_NUMBER_WARN", "IsMap(body)"]}}
    )
    await processor.consume(decode_logs(sample_logs()))
    request = encode(sink.batches[0])
    records = request.resource_logs[0].scope_logs[0].log_records
    assert [r.severity_text for r in records] == ["ERROR"]
    assert dropped(telemetry, "log_records") == 9


async def test_metrics_by_metric_and_datapoint() -> None:
    processor, sink, telemetry = make(
        {
            "metrics": {
                "metric": ['name == "q"', "type == METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM"],
                "datapoint": ["value_int == -7", 'metric.name == "s"', "count == 0"],
            }
        }
    )
    await processor.consume(decode_metrics(sample_metrics()))
    request = encode(sink.batches[0])
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    # s lost its only point and is removed; metrics without points go as well
    assert [m.name for m in metrics] == ["g", "h"]
    assert [p.as_double for p in metrics[0].gauge.data_points] == [1.5, 0.0]
    assert [p.count for p in metrics[1].histogram.data_points] == [6]
    # points: q 1, e 1 (metric conditions), then gauge -7, s 1, h count 0
    assert dropped(telemetry, "metric_points") == 5


async def test_error_mode() -> None:
    condition = ['1 / attributes["zero"] == 1']
    batch = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[ScopeSpans(spans=[Span(name="a", attributes=[kv("zero", 0)])])]
            )
        ]
    )
    processor, sink, _ = make({"traces": {"span": condition}})
    with pytest.raises(PermanentError, match="attempted to divide by 0"):
        await processor.consume(decode_traces(batch))
    for mode in ("ignore", "silent"):
        processor, sink, telemetry = make({"error_mode": mode, "traces": {"span": condition}})
        await processor.consume(decode_traces(batch))
        assert sink.batches[0].item_count() == 1
        assert dropped(telemetry, "spans") == 0


async def test_ignore_logs_the_error(caplog: pytest.LogCaptureFixture) -> None:
    processor, _, _ = make(
        {"error_mode": "ignore", "traces": {"span": ['1 / attributes["zero"] == 1']}}
    )
    batch = decode_traces(
        ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    scope_spans=[ScopeSpans(spans=[Span(name="a", attributes=[kv("zero", 0)])])]
                )
            ]
        )
    )
    with caplog.at_level(logging.WARNING):
        await processor.consume(batch)
    assert "attempted to divide by 0" in caplog.text


def _config(processor: dict) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "processors": {"filter": processor},
        "exporters": {"nop": {}},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["filter"], "exporters": ["nop"]}
            }
        },
    }


@pytest.mark.parametrize(
    ("processor", "message"),
    [
        (
            {"traces": {"span": ['name == "a"', "kind == SPAN_KIND_SERVR"]}},
            "processors.filter.traces.span: Value error, unable to parse OTTL condition "
            '"kind == SPAN_KIND_SERVR": 1:9: enum symbol "SPAN_KIND_SERVR" not found',
        ),
        (
            {"logs": {"log_record": ['body == "x" or']}},
            "processors.filter.logs.log_record: Value error, unable to parse OTTL condition "
            '"body == "x" or": 1:15: unexpected end of input (expected a value)',
        ),
        (
            {"metrics": {"datapoint": ['Unknown(attributes["x"])']}},
            "processors.filter.metrics.datapoint: Value error, unable to parse OTTL condition "
            '"Unknown(attributes["x"])": 1:1: undefined function "Unknown"',
        ),
        (
            {"traces": {"spans": ["true"]}},
            "processors.filter.traces.spans: unknown key",
        ),
        (
            {"error_mode": "loud"},
            "processors.filter.error_mode: Input should be 'ignore', 'silent' or 'propagate'",
        ),
    ],
)
def test_config_errors(processor: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(_config(processor))
    assert str(info.value).startswith(message)


def test_valid_config_loads_with_the_registry() -> None:
    config = validate(_config({"error_mode": "ignore", "traces": {"span": ["true"]}}))
    assert config.pipelines["traces"].processors == ["filter"]


async def test_trace_conditions_with_context_inference() -> None:
    processor, sink, telemetry = make(
        {
            "error_mode": "ignore",
            "trace_conditions": [
                'spanevent.name == "bare"',
                {"context": "span", "conditions": ['IsRootSpan() and span.name == "root"']},
            ],
        }
    )
    await processor.consume(decode_traces(sample_traces()))
    request = encode(sink.batches[0])
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s.name for s in spans] == ["GET /cart", "other"]
    assert [e.name for e in spans[0].events] == ["exception"]
    assert dropped(telemetry, "spans") == 1


async def test_resource_and_scope_conditions_drop_everything_under_them() -> None:
    processor, sink, telemetry = make(
        {"trace_conditions": ['resource.attributes["service.name"] == "checkout"']}
    )
    await processor.consume(decode_traces(sample_traces()))
    request = encode(sink.batches[0])
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == ["other"]
    assert dropped(telemetry, "spans") == 2
    processor, sink, telemetry = make({"metric_conditions": ['scope.name == "lib"']})
    await processor.consume(decode_metrics(sample_metrics()))
    assert sink.batches == []
    assert dropped(telemetry, "metric_points") == 8
    processor, sink, telemetry = make(
        {"log_conditions": ['log.severity_text == "ERROR"', 'resource.attributes["i"] == 0']}
    )
    await processor.consume(decode_logs(sample_logs()))
    assert sink.batches[0].item_count() == 9


def test_condition_list_errors() -> None:
    with pytest.raises(ConfigError) as info:
        validate(_config({"trace_conditions": ['log.body == "x"']}))
    assert str(info.value).startswith(
        "processors.filter.trace_conditions: Value error, [0]: context 'log' is not available "
        "for traces (use one of resource, scope, span, spanevent)"
    )
    with pytest.raises(ConfigError) as info:
        validate(_config({"trace_conditions": [{"context": "span", "conditions": ["nme == 1"]}]}))
    assert str(info.value).startswith(
        "processors.filter.trace_conditions: Value error, [0]: unable to parse OTTL condition "
        '"nme == 1": 1:1: unknown path "nme" in the span context'
    )


async def test_chain_in_a_running_service() -> None:
    """OTLP/gRPC in, resource + attributes + transform + filter, exporter out."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    from otlp.service import Service
    from tests.harness import free_port

    port = free_port()
    raw = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {
            "resource": {"attributes": [{"key": "env", "value": "prod", "action": "upsert"}]},
            "attributes/mark": {"actions": [{"key": "marked", "value": True, "action": "insert"}]},
            "transform": {"trace_statements": ['set(span.name, "renamed") where IsRootSpan()']},
            "filter/drop": {
                "error_mode": "ignore",
                "trace_conditions": [
                    'span.name == "renamed" and resource.attributes["env"] == "prod"'
                ],
            },
        },
        "exporters": {"nop": None},
        "service": {
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["resource", "attributes/mark", "transform", "filter/drop"],
                    "exporters": ["nop"],
                }
            },
        },
    }
    service = Service(validate(raw), Telemetry())
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            await stub.Export(sample_traces(), timeout=10)
    finally:
        await service.shutdown()
    t = service.telemetry
    # "root" and "other" are root spans: renamed by transform, then dropped by filter
    assert t.value("otelcol_exporter_sent_spans_total", exporter="nop") == 1
    assert (
        t.value("otelcol_processor_dropped_spans_total", processor="filter/drop", reason="filtered")
        == 2
    )
    for name in ("resource", "attributes/mark", "transform"):
        assert t.value("otelcol_processor_outgoing_spans_total", processor=name) == 3
