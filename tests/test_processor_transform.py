"""transform processor: both statement forms (basic strings with inferred context, groups
with context/conditions), ordering across groups, error_mode, config errors."""

from __future__ import annotations

import pytest

from otlp.batch import Batch
from otlp.config import validate
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.encode import encode
from otlp.errors import ConfigError, PermanentError
from otlp.telemetry import Telemetry
from processors.transform.config import TransformConfig, infer_context
from processors.transform.processor import TransformProcessor
from tests.otlp_samples import sample_logs, sample_metrics, sample_traces


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


async def transform(config: dict, batch: Batch) -> Batch:
    processor = TransformProcessor("transform", TransformConfig.model_validate(config), Telemetry())
    sink = Sink()
    processor.next = sink
    await processor.consume(batch)
    (out,) = sink.batches
    return out


def attrs(message) -> dict:
    out = {}
    for item in message.attributes:
        kind = item.value.WhichOneof("value")
        out[item.key] = getattr(item.value, kind) if kind else None
    return out


@pytest.mark.parametrize(
    ("texts", "signal", "context"),
    [
        (['set(span.name, "x")'], "traces", "span"),
        (['set(resource.attributes["a"], "x")'], "traces", "resource"),
        (['set(span.attributes["a"], resource.attributes["b"])'], "traces", "span"),
        (['set(spanevent.name, "x") where span.name == "y"'], "traces", "spanevent"),
        (['set(scope.name, "x")'], "traces", "scope"),
        (['set(instrumentation_scope.attributes["a"], "x")'], "logs", "scope"),
        (['set(log.body, "x")'], "logs", "log"),
        (['set(metric.name, "x")'], "metrics", "metric"),
        (['set(datapoint.attributes["a"], metric.name)'], "metrics", "datapoint"),
    ],
)
def test_context_inference(texts: list[str], signal: str, context: str) -> None:
    assert infer_context(signal, texts) == context


async def test_basic_form_with_inferred_contexts() -> None:
    out = await transform(
        {
            "trace_statements": [
                'set(resource.attributes["env"], "prod")',
                'set(span.attributes["env"], resource.attributes["env"])',
                'set(span.name, Concat([span.name, "!"], "")) where span.kind == SPAN_KIND_SERVER',
                'delete_key(spanevent.attributes, "exception.type")',
                # a span statement writing its resource
                'set(resource.attributes["kind"], "server") where span.kind == SPAN_KIND_SERVER',
            ]
        },
        decode_traces(sample_traces()),
    )
    request = encode(out)
    first = request.resource_spans[0]
    assert attrs(first.resource)["env"] == "prod"
    assert attrs(first.resource)["kind"] == "server"
    assert "kind" not in attrs(request.resource_spans[1].resource)
    spans = first.scope_spans[0].spans
    assert [s.name for s in spans] == ["GET /cart!", "root"]
    # the resource edit of the first statement is visible to the second
    assert [attrs(s)["env"] for s in spans] == ["prod", "prod"]
    assert spans[0].events[0].attributes == []
    other = request.resource_spans[1].scope_spans[0].spans[0]
    assert attrs(other) == {"env": "prod"}


async def test_groups_with_context_and_conditions() -> None:
    out = await transform(
        {
            "trace_statements": [
                {
                    "context": "span",
                    "conditions": ['name == "root"', 'name == "other"'],
                    "statements": [
                        'set(attributes["grouped"], true)',
                        'set(attributes["other"], 1) where name == "other"',
                    ],
                }
            ]
        },
        decode_traces(sample_traces()),
    )
    request = encode(out)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert ["grouped" in attrs(s) for s in spans] == [False, True, True]
    assert ["other" in attrs(s) for s in spans] == [False, False, True]


async def test_log_statements() -> None:
    out = await transform(
        {
            "log_statements": [
                {
                    "context": "log",
                    "statements": [
                        'replace_pattern(body, "fail(ed)?", "ok")',
                        'set(severity_text, "WARN") where severity_number >= SEVERITY_NUMBER_ERROR',
                        'set(attributes["sev"], severity_number)',
                        "truncate_all(attributes, 1)",
                    ],
                },
                'set(resource.attributes["service.name"], "renamed")',
            ]
        },
        decode_logs(sample_logs()),
    )
    request = encode(out)
    assert attrs(request.resource_logs[0].resource)["service.name"] == "renamed"
    assert out.resources.column("service_name").to_pylist() == ["renamed"]
    first = request.resource_logs[0].scope_logs[0].log_records[0]
    assert first.body.string_value == "something ok"
    assert first.severity_text == "WARN"
    assert attrs(first) == {"k": "v", "sev": 17}


async def test_metric_and_datapoint_statements() -> None:
    out = await transform(
        {
            "metric_statements": [
                {"context": "metric", "statements": ['set(description, "d") where name == "s"']},
                {
                    "context": "datapoint",
                    "statements": [
                        'set(attributes["metric"], metric.name)',
                        'set(value_int, value_int * 10) where metric.name == "s"',
                    ],
                },
            ]
        },
        decode_metrics(sample_metrics()),
    )
    request = encode(out)
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    by_name = {m.name: m for m in metrics}
    assert by_name["s"].description == "d"
    assert by_name["s"].sum.data_points[0].as_int == 100
    assert attrs(by_name["h"].histogram.data_points[0]) == {"metric": "h"}
    assert attrs(by_name["q"].summary.data_points[0]) == {"metric": "q"}
    assert attrs(by_name["g"].gauge.data_points[0]) == {"p": 1, "metric": "g"}
    # nothing is dropped by transform
    assert out.item_count() == decode_metrics(sample_metrics()).item_count()


async def test_error_modes_per_group() -> None:
    statements = ['set(attributes["x"], 1 / 0)']
    with pytest.raises(PermanentError, match="divide by 0"):
        await transform(
            {"trace_statements": [{"context": "span", "statements": statements}]},
            decode_traces(sample_traces()),
        )
    out = await transform(
        {
            "error_mode": "propagate",
            "trace_statements": [
                {
                    "context": "span",
                    "error_mode": "ignore",
                    "statements": [*statements, 'set(attributes["after"], 2)'],
                }
            ],
        },
        decode_traces(sample_traces()),
    )
    spans = encode(out).resource_spans[0].scope_spans[0].spans
    assert "x" not in attrs(spans[0]) and attrs(spans[0])["after"] == 2


def _config(processor: dict) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "processors": {"transform": processor},
        "exporters": {"nop": {}},
        "service": {
            "pipelines": {
                "logs": {"receivers": ["otlp"], "processors": ["transform"], "exporters": ["nop"]}
            }
        },
    }


@pytest.mark.parametrize(
    ("processor", "message"),
    [
        (
            {"log_statements": [{"context": "log", "statements": ['set(body, "x"']}]},
            "processors.transform.log_statements: Value error, [0]: unable to parse OTTL "
            'statement "set(body, "x"": 1:14: unexpected end of input (expected ")")',
        ),
        (
            {"log_statements": ['set(attributes["a"], "x")']},
            "processors.transform.log_statements: Value error, [0]: unable to infer a context "
            'from "set(attributes["a"], "x")": prefix paths with the context name '
            "(resource, scope, log)",
        ),
        (
            {"log_statements": ['set(span.name, "x")']},
            "processors.transform.log_statements: Value error, [0]: context 'span' is not "
            "available for logs (use one of resource, scope, log)",
        ),
        (
            {"log_statements": [{"context": "log", "statements": ["merge_maps(attributes)"]}]},
            "processors.transform.log_statements: Value error, [0]: unable to parse OTTL "
            'statement "merge_maps(attributes)": 1:1: undefined function "merge_maps"',
        ),
        (
            {"log_statements": [{"context": "log", "conditions": ["body =="], "statements": []}]},
            "processors.transform.log_statements.0.StatementGroup.statements: List should have "
            "at least 1 item",
        ),
        (
            {"log_statements": [{"context": "logs", "statements": ['set(body, "x")']}]},
            "processors.transform.log_statements.0.StatementGroup.context: Input should be",
        ),
    ],
)
def test_config_errors(processor: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(_config(processor))
    assert str(info.value).startswith(message), str(info.value)
