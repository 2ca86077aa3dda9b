"""OTTL: parser errors (exact text), path/literal/comparison semantics, converters and
editors, evaluated on decoded sample requests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp.batch import Batch
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.ottl import Condition, OttlError, Rows, Statement
from tests.otlp_samples import av, kv, sample_logs, sample_metrics, sample_traces


def traces(*spans: Span, service: str = "svc") -> Batch:
    return decode_traces(
        ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[kv("service.name", service)]),
                    scope_spans=[ScopeSpans(spans=list(spans))],
                )
            ]
        )
    )


def span(name: str = "s", **attributes: Any) -> Span:
    return Span(
        name=name,
        trace_id=bytes(16),
        span_id=bytes(8),
        attributes=[kv(k, v) for k, v in attributes.items()],
    )


def logs(*records: LogRecord) -> Batch:
    return decode_logs(
        ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=list(records))])]
        )
    )


def mask(condition: str, batch: Batch, context: str = "span", table: str = "") -> list[bool]:
    return Condition([condition], context).evaluate(Rows(batch, context, table)).tolist()


def attributes_of(batch: Batch, table: str = "spans", column: str = "attributes") -> list[dict]:
    out = []
    for items in batch.tables[table].column(column).to_pylist():
        row = {}
        for item in items or []:
            field = {1: "str", 2: "bool", 3: "int", 4: "double", 5: "str", 6: "str", 7: "bytes"}
            row[item["key"]] = item[field[item["type"]]] if item["type"] else None
        out.append(row)
    return out


def run(statements: list[str], batch: Batch, context: str = "span", table: str = "") -> Batch:
    rows = Rows(batch, context, table)
    for text in statements:
        Statement(text, context).execute(rows)
    return rows.result()


# ---------------------------------------------------------------------------------------------
# errors: exact text, with the statement and the column


@pytest.mark.parametrize(
    ("kind", "text", "context", "message"),
    [
        (
            "condition",
            'name == "a" and',
            "span",
            'unable to parse OTTL condition "name == "a" and": 1:16: '
            "unexpected end of input (expected a value)",
        ),
        (
            "condition",
            "name",
            "span",
            'unable to parse OTTL condition "name": 1:5: '
            "unexpected end of input (expected a comparison operator)",
        ),
        (
            "condition",
            'name = "a"',
            "span",
            'unable to parse OTTL condition "name = "a"": 1:6: '
            'unexpected token "=" (expected a comparison operator)',
        ),
        (
            "condition",
            'nme == "a"',
            "span",
            'unable to parse OTTL condition "nme == "a"": 1:1: '
            'unknown path "nme" in the span context',
        ),
        (
            "condition",
            "kind == SPAN_KIND_SERVERR",
            "span",
            'unable to parse OTTL condition "kind == SPAN_KIND_SERVERR": 1:9: '
            'enum symbol "SPAN_KIND_SERVERR" not found',
        ),
        (
            "condition",
            'Nope(name) == "x"',
            "span",
            'unable to parse OTTL condition "Nope(name) == "x"": 1:1: undefined function "Nope"',
        ),
        (
            "condition",
            'IsMatch(name, "[")',
            "span",
            'unable to parse OTTL condition "IsMatch(name, "[")": 1:15: '
            'invalid regex pattern "[": missing ]: [',
        ),
        (
            "condition",
            "IsMatch(name)",
            "span",
            'unable to parse OTTL condition "IsMatch(name)": 1:1: incorrect number of arguments '
            'in call to "IsMatch". Expected: 2 Received: 1',
        ),
        (
            "condition",
            'Concat([name], "")',
            "span",
            'unable to parse OTTL condition "Concat([name], "")": 1:1: '
            'converter "Concat" does not return a boolean',
        ),
        (
            "condition",
            'severity_text == "x"',
            "span",
            'unable to parse OTTL condition "severity_text == "x"": 1:1: '
            'unknown path "severity_text" in the span context',
        ),
        (
            "condition",
            'name == "\\q"',
            "span",
            'unable to parse OTTL condition "name == "\\q"": 1:10: invalid escape sequence \\q',
        ),
        (
            "statement",
            'set(name, "a"',
            "span",
            'unable to parse OTTL statement "set(name, "a"": 1:14: '
            'unexpected end of input (expected ")")',
        ),
        (
            "statement",
            'Concat([name], "")',
            "span",
            'unable to parse OTTL statement "Concat([name], "")": 1:1: '
            '"Concat" is a converter, a statement needs an editor',
        ),
        (
            "statement",
            'frobnicate(attributes, "k")',
            "span",
            'unable to parse OTTL statement "frobnicate(attributes, "k")": 1:1: '
            'undefined function "frobnicate"',
        ),
        (
            "statement",
            "set(duration, 5)",
            "span",
            'unable to parse OTTL statement "set(duration, 5)": 1:5: path "duration" cannot be set',
        ),
        (
            "statement",
            'delete_key(attributes["k"], "k")',
            "span",
            'unable to parse OTTL statement "delete_key(attributes["k"], "k")": 1:12: '
            'argument "target" of "delete_key" must be an attributes map path',
        ),
        (
            "statement",
            'keep_keys(attributes, "k")',
            "span",
            'unable to parse OTTL statement "keep_keys(attributes, "k")": 1:23: '
            'argument "keys" of "keep_keys" must be a list of string literals',
        ),
        (
            "statement",
            'replace_all_patterns(attributes, "both", "a", "b")',
            "span",
            'unable to parse OTTL statement "replace_all_patterns(attributes, "both", "a", "b")": '
            '1:34: invalid mode "both", must be "key" or "value"',
        ),
        (
            "statement",
            'limit(attributes, 1, ["a", "b"])',
            "span",
            'unable to parse OTTL statement "limit(attributes, 1, ["a", "b"])": 1:22: '
            "invalid limit for priority keys of limit function, 2 cannot be greater than "
            "the limit 1",
        ),
        (
            "statement",
            'set(name, "a") where set(name, "b")',
            "span",
            'unable to parse OTTL statement "set(name, "a") where set(name, "b")": 1:22: '
            'editor "set" cannot be used in a condition',
        ),
        (
            "statement",
            'set(instrumentation_scope.name, "v")',
            "span",
            'unable to parse OTTL statement "set(instrumentation_scope.name, "v")": 1:5: '
            '"instrumentation_scope.name" cannot be modified in the span context '
            "(use the scope context)",
        ),
        (
            "statement",
            'set(span.attributes["k"], "v")',
            "spanevent",
            'unable to parse OTTL statement "set(span.attributes["k"], "v")": 1:5: '
            '"span.attributes["k"]" cannot be modified in the spanevent context '
            "(use the span context)",
        ),
        (
            "statement",
            "truncate_all(attributes, -1)",
            "log",
            'unable to parse OTTL statement "truncate_all(attributes, -1)": 1:26: '
            "invalid limit for truncate_all function, -1 cannot be negative",
        ),
        (
            "statement",
            'replace_pattern(name, "a", "b", SHA256)',
            "span",
            'unable to parse OTTL statement "replace_pattern(name, "a", "b", SHA256)": 1:1: '
            'the "function" argument of "replace_pattern" is not supported',
        ),
    ],
)
def test_error_text(kind: str, text: str, context: str, message: str) -> None:
    with pytest.raises(OttlError) as info:
        if kind == "condition":
            Condition([text], context)
        else:
            Statement(text, context)
    assert str(info.value) == message
    # a ValueError, so pydantic validators report it as a config error under the key path
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------------------------
# conditions on the sample traces: span 0 is the full span, 1 is "root", 2 "other" (no
# resource attributes, empty ids)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('name == "GET /cart"', [True, False, False]),
        ('span.name == "GET /cart"', [True, False, False]),
        ('name != "GET /cart"', [False, True, True]),
        ("kind == SPAN_KIND_SERVER", [True, False, False]),
        ("kind == 2", [True, False, False]),
        ("status.code == STATUS_CODE_ERROR", [True, False, False]),
        ('status.message == "boom"', [True, False, False]),
        ('attributes["s"] == "text"', [True, False, False]),
        ('attributes["i"] == -42', [True, False, False]),
        ('attributes["i"] == -42.0', [True, False, False]),
        ('attributes["i"] < -41.5', [True, False, False]),
        ('attributes["d"] > 2', [True, False, False]),
        ('attributes["b"] == true', [True, False, False]),
        ('attributes["y"] == 0x00ff', [True, False, False]),
        # mismatched types: never equal, never ordered
        ('attributes["i"] == "-42"', [False, False, False]),
        ('attributes["s"] > 1', [False, False, False]),
        ('attributes["b"] > false', [False, False, False]),
        ('attributes["m"] == "x"', [False, False, False]),
        # nil
        ('attributes["missing"] == nil', [True, True, True]),
        ('attributes["s"] != nil', [True, False, False]),
        ('attributes["e"] == nil', [True, True, True]),
        ('attributes["missing"] < 5', [False, False, False]),
        ('attributes["missing"] != "x"', [True, True, True]),
        ('resource.attributes["service.name"] == "checkout"', [True, True, False]),
        ('instrumentation_scope.name == "lib"', [True, True, False]),
        ('instrumentation_scope.version == "1.0"', [True, True, False]),
        ('trace_id.string == "0102030405060708090a0b0c0d0e0f10"', [True, True, False]),
        ("trace_id == TraceID(0x0102030405060708090a0b0c0d0e0f10)", [True, True, False]),
        ('span_id.string == "0102030405060708"', [True, False, True]),
        ('parent_span_id.string == "0000000000000000"', [False, True, True]),
        ("duration == 500000", [True, False, False]),
        ("end_time_unix_nano - start_time_unix_nano >= 500000", [True, False, False]),
        ("duration / 1000 == 500", [True, False, False]),
        ("duration * 2 + 1 == 1000001", [True, False, False]),
        ("(duration + 1) * 2 == 1000002", [True, False, False]),
        ("dropped_attributes_count == 4", [True, False, False]),
        ('trace_state == "k=v"', [True, False, False]),
        ("flags == 769", [True, False, False]),
        # precedence: and binds tighter than or; not applies to the next term
        ('name == "root" or name == "other" and kind == SPAN_KIND_SERVER', [False, True, False]),
        ('(name == "root" or name == "other") and kind == SPAN_KIND_SERVER', [False, False, False]),
        ('not name == "root" and not name == "other"', [True, False, False]),
        ('not (name == "root" or name == "other")', [True, False, False]),
        ("true", [True, True, True]),
        ("false or true and false", [False, False, False]),
        ('IsMatch(name, "^GET /")', [True, False, False]),
        ('IsMatch(name, "o")', [False, True, True]),
        ('IsMatch(attributes["i"], "^-4")', [True, False, False]),
        ('IsMatch(attributes["d"], "^2\\\\.5$")', [True, False, False]),
        ('IsMatch(attributes["missing"], ".*")', [False, False, False]),
        ('not IsMatch(name, "GET")', [False, True, True]),
        ('IsString(attributes["s"]) and IsInt(attributes["i"])', [True, False, False]),
        ('IsMap(attributes["m"]) and IsList(attributes["a"])', [True, False, False]),
        ('Concat([name, "x"], "-") == "root-x"', [False, True, False]),
        ('Int(attributes["d"]) == 2', [True, False, False]),
        ('String(attributes["i"]) == "-42"', [True, False, False]),
    ],
)
def test_span_conditions(condition: str, expected: list[bool]) -> None:
    assert mask(condition, decode_traces(sample_traces())) == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('name == "exception"', [True, False]),
        ('spanevent.name == "bare"', [False, True]),
        ('attributes["exception.type"] == "ValueError"', [True, False]),
        ('span.name == "GET /cart"', [True, True]),
        ("span.kind == SPAN_KIND_SERVER and time_unix_nano > 0", [True, False]),
        ('resource.attributes["service.name"] == "checkout"', [True, True]),
    ],
)
def test_spanevent_conditions(condition: str, expected: list[bool]) -> None:
    assert mask(condition, decode_traces(sample_traces()), "spanevent") == expected


# sample logs: 0 full record, 1 severity_text only, 2 empty body, then bodies of each type:
# 3 "text", 4 true, 5 -42, 6 2.5, 7 bytes, 8 array, 9 map
@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("severity_number >= SEVERITY_NUMBER_ERROR", [True] + [False] * 9),
        ("severity_number == SEVERITY_NUMBER_UNSPECIFIED", [False] + [True] * 9),
        ('severity_text == "no body"', [False, True] + [False] * 8),
        ('body == "something failed"', [True] + [False] * 9),
        ("body == nil", [False, True, True] + [False] * 7),
        ("body == -42", [False] * 5 + [True] + [False] * 4),
        ('body.string == "2.5"', [False] * 6 + [True] + [False] * 3),
        ('body.string == "AP8="', [False] * 7 + [True] + [False] * 2),
        ('IsMatch(body, "\\\\{\\"k1\\"")', [False] * 9 + [True]),
        ('log.attributes["k"] == "v"', [True] + [False] * 9),
        ('trace_id.string == "0102030405060708090a0b0c0d0e0f10"', [True] + [False] * 9),
        ('span_id.string == "0000000000000000"', [False] + [True] * 9),
        ('event_name == "app.failure"', [True] + [False] * 9),
        ("time_unix_nano > 0 and observed_time_unix_nano > time_unix_nano", [True] + [False] * 9),
    ],
)
def test_log_conditions(condition: str, expected: list[bool]) -> None:
    assert mask(condition, decode_logs(sample_logs()), "log") == expected


def test_metric_and_datapoint_conditions() -> None:
    batch = decode_metrics(sample_metrics())
    names = ["g", "s", "h", "e", "q", "nodata", "emptygauge"]
    assert mask('name == "h"', batch, "metric") == [n == "h" for n in names]
    assert mask('metric.name == "h"', batch, "metric") == [n == "h" for n in names]
    assert mask("type == METRIC_DATA_TYPE_SUM", batch, "metric") == [n == "s" for n in names]
    assert mask("aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA", batch, "metric") == [
        n == "h" for n in names
    ]
    assert mask("is_monotonic == true", batch, "metric") == [n == "s" for n in names]
    # gauge points: 1.5 (double), -7 (int), none; value_double of an int point is 0.0
    assert mask("value_double == 1.5", batch, "datapoint", "gauge") == [True, False, False]
    assert mask("value_int == -7", batch, "datapoint", "gauge") == [False, True, False]
    assert mask("value_double == 0.0", batch, "datapoint", "gauge") == [False, True, True]
    assert mask('attributes["p"] == 1', batch, "datapoint", "gauge") == [True, False, False]
    assert mask('metric.name == "g"', batch, "datapoint", "gauge") == [True] * 3
    assert mask("flags == FLAG_NO_RECORDED_VALUE", batch, "datapoint", "gauge") == [
        True,
        False,
        False,
    ]
    # count exists on histogram points only; on number points it is nil
    assert mask("count > 0", batch, "datapoint", "histogram") == [True, False]
    assert mask("count == nil", batch, "datapoint", "sum") == [True]
    assert mask("value_double == nil", batch, "datapoint", "histogram") == [True, True]
    assert mask("sum == 12.0", batch, "datapoint", "histogram") == [True, False]
    assert mask("sum == nil", batch, "datapoint", "histogram") == [False, True]
    assert mask('resource.attributes["service.name"] == "checkout"', batch, "datapoint", "sum") == [
        True
    ]


def test_resource_and_scope_contexts() -> None:
    batch = decode_traces(sample_traces())
    assert mask('attributes["service.name"] == "checkout"', batch, "resource") == [True, False]
    assert mask('name == "lib"', batch, "scope") == [True, False, False]
    assert mask('resource.attributes["s"] == "text"', batch, "scope") == [True, True, False]


# ---------------------------------------------------------------------------------------------
# converters


def value_of(expression: str, batch: Batch, context: str = "span") -> list[Any]:
    out = run([f'set(attributes["out"], {expression})'], batch, context)
    table = {"span": "spans", "log": "logs"}[context]
    return [row.get("out") for row in attributes_of(out, table)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('Concat([name, "x", 1, 2.5, true, nil], "-")', ["a-x-1-2.5-true-<nil>"]),
        ('Concat([attributes["bin"], attributes["m"]], "|")', ['0aff|{"k":1}']),
        ('Concat([], ",")', [""]),
        ('Int("42")', [42]),
        ('Int("+7")', [7]),
        ('Int("2.0")', [None]),
        ('Int("99999999999999999999")', [None]),
        ("Int(-2.9)", [-2]),
        ("Int(true)", [1]),
        ('Int(attributes["m"])', [None]),
        ('Double("1e3")', [1000.0]),
        ("Double(3)", [3.0]),
        ('Double("x")', [None]),
        ("String(5)", ["5"]),
        ("String(2.5)", ["2.5"]),
        ("String(false)", ["false"]),
        ('String(attributes["bin"])', ["0aff"]),
        ('String(attributes["missing"])', [None]),
        ("ToUpperCase(name)", ["A"]),
        ('ToLowerCase("ÀB")', ["àb"]),
        ('SHA256("text")', ["982d9e3eb996f559e633f4d194def3761d909f5a3b647d1a851fead67c32c9d1"]),
        ('IsMatch(attributes["bin"], "^Cv8=$")', [True]),
        ("1 + 2.5", [3.5]),
        ("7 / 2", [3]),
        ("-7 / 2", [-3]),
    ],
)
def test_converters(expression: str, expected: list[Any]) -> None:
    batch = traces(span("a", bin=b"\x0a\xff", m={"k": 1}))
    assert value_of(expression, batch) == expected


# ---------------------------------------------------------------------------------------------
# editors


def test_set_on_fields_and_attributes() -> None:
    batch = traces(span("a", k="v"), span("b"))
    out = run(
        [
            'set(attributes["k"], "new") where name == "a"',
            'set(attributes["n"], 5)',
            'set(name, Concat([name, "!"], ""))',
            'set(kind, SPAN_KIND_CLIENT) where name == "b!"',
            "set(status.code, STATUS_CODE_OK)",
            'set(status.message, "fine")',
            # a value of the wrong type leaves the field unchanged, as the Collector's setters
            "set(name, 5)",
            # nil does nothing
            'set(attributes["gone"], attributes["missing"])',
            "set(start_time_unix_nano, 10)",
        ],
        batch,
    )
    spans_ = out.tables["spans"]
    assert spans_.column("name").to_pylist() == ["a!", "b!"]
    assert spans_.column("kind").to_pylist() == [0, 3]
    assert spans_.column("status_code").to_pylist() == [1, 1]
    assert spans_.column("status_message").to_pylist() == ["fine", "fine"]
    assert spans_.column("start_time_unix_nano").to_pylist() == [10, 10]
    # an updated key keeps its position, a new one is appended
    assert attributes_of(out) == [{"k": "new", "n": 5}, {"n": 5}]
    assert [list(a) for a in attributes_of(out)] == [["k", "n"], ["n"]]


def test_set_copies_typed_values_between_levels() -> None:
    batch = decode_traces(sample_traces())
    out = run(
        [
            'set(attributes["svc"], resource.attributes["service.name"])',
            'set(attributes["copy_m"], attributes["m"])',
            'set(attributes["copy_y"], attributes["y"])',
            'set(attributes["scope"], instrumentation_scope.name)',
        ],
        batch,
    )
    rows = attributes_of(out)
    assert rows[0]["svc"] == "checkout" and rows[1]["svc"] == "checkout"
    assert "svc" not in rows[2]  # resource without service.name: nil, nothing set
    assert rows[0]["copy_m"] == rows[0]["m"] and rows[0]["copy_y"] == b"\x00\xff"
    assert rows[2]["scope"] == ""


def test_delete_keep_limit_truncate() -> None:
    attrs = {"a": "x", "password": "p", "db.password": "q", "b": 1, "c": "long value"}
    batch = traces(span("one", **attrs), span("two", **attrs))
    assert attributes_of(run(['delete_key(attributes, "a") where name == "one"'], batch)) == [
        {k: v for k, v in attrs.items() if k != "a"},
        attrs,
    ]
    assert attributes_of(run(['delete_matching_keys(attributes, "(?i)password")'], batch))[0] == {
        "a": "x",
        "b": 1,
        "c": "long value",
    }
    assert attributes_of(run(['keep_matching_keys(attributes, "^[ab]$")'], batch))[0] == {
        "a": "x",
        "b": 1,
    }
    assert attributes_of(run(['keep_keys(attributes, ["c", "b", "zz"])'], batch))[1] == {
        "b": 1,
        "c": "long value",
    }
    limited = attributes_of(run(['limit(attributes, 2, ["c"])'], batch))
    assert limited[0] == {"a": "x", "c": "long value"}
    assert attributes_of(run(["limit(attributes, 0, [])"], batch)) == [{}, {}]
    assert attributes_of(run(["limit(attributes, 10, [])"], batch))[0] == attrs
    truncated = attributes_of(run(["truncate_all(attributes, 4)"], batch))[0]
    assert truncated == {"a": "x", "password": "p", "db.password": "q", "b": 1, "c": "long"}
    marked = attributes_of(run(['truncate_all(attributes, 6, truncation_marker="..")'], batch))[0]
    assert marked["c"] == "long.."


def test_truncate_all_keeps_utf8_characters_whole() -> None:
    batch = traces(span("s", k="añb€c", short="é"))
    assert attributes_of(run(["truncate_all(attributes, 2)"], batch)) == [{"k": "a", "short": "é"}]
    assert attributes_of(run(["truncate_all(attributes, 3)"], batch))[0]["k"] == "añ"
    assert attributes_of(run(["truncate_all(attributes, 5)"], batch))[0]["k"] == "añb"
    assert attributes_of(run(["truncate_all(attributes, 7)"], batch))[0]["k"] == "añb€"


def test_replace_pattern_and_replace_all_patterns() -> None:
    batch = traces(
        span(
            "GET /user/1234/cart",
            url="/account/1234/x",
            cmd="run --password=secret --v",
            kube_pod_name="p",
            n=5,
        )
    )
    out = run(
        [
            'replace_pattern(name, "/user/\\\\d+", "/user/{id}")',
            'replace_pattern(attributes["cmd"], "password=[^\\\\s]*(\\\\s?)", "password=***$1")',
            'replace_all_patterns(attributes, "value", "/account/\\\\d{4}", "/account/{id4}")',
            'replace_all_patterns(attributes, "key", "^kube_([0-9A-Za-z]+_)", "k8s.$1.")',
            # named groups, ${n} and $$ as in Go's regexp.Expand
            'replace_pattern(attributes["url"], "(?P<first>/account)/(.*)", "${2}|$first|$$")',
        ],
        batch,
    )
    assert out.tables["spans"].column("name").to_pylist() == ["GET /user/{id}/cart"]
    assert attributes_of(out) == [
        {
            "url": "{id4}/x|/account|$",
            "cmd": "run --password=*** --v",
            "k8s.pod_.name": "p",
            "n": 5,
        }
    ]


def test_log_body_and_severity() -> None:
    batch = logs(
        LogRecord(body=av("user=alice password=hunter2"), severity_text="info"),
        LogRecord(body=av({"k": 1})),
    )
    out = run(
        [
            'replace_pattern(body, "password=\\\\S+", "password=***")',
            'set(severity_number, SEVERITY_NUMBER_INFO) where severity_text == "info"',
            'set(attributes["body"], body.string)',
        ],
        batch,
        "log",
    )
    table = out.tables["logs"]
    assert table.column("body").to_pylist()[0]["str"] == "user=alice password=***"
    assert table.column("body").to_pylist()[1]["type"] == 6  # a map body is left alone
    assert table.column("severity_number").to_pylist() == [9, 0]
    assert [r["body"] for r in attributes_of(out, "logs")] == [
        "user=alice password=***",
        '{"k":1}',
    ]
    out = run(['set(body, "replaced") where IsMap(body)'], batch, "log")
    assert out.tables["logs"].column("body").to_pylist()[1]["str"] == "replaced"


def test_datapoint_value_setters_switch_the_number_type() -> None:
    batch = decode_metrics(sample_metrics())
    out = run(["set(value_double, 2.25) where value_int == -7"], batch, "datapoint", "gauge")
    gauge = out.tables["gauge"]
    assert gauge.column("as_double").to_pylist() == [1.5, 2.25, None]
    assert gauge.column("as_int").to_pylist() == [None, None, None]
    assert gauge.column("value_type").to_pylist()[1] == 1
    out = run(['set(metric.name, "renamed") where name == "h"'], batch, "metric")
    assert out.tables["metrics"].column("name").to_pylist()[2] == "renamed"


def test_resource_context_edits_refresh_service_name() -> None:
    batch = decode_traces(sample_traces())
    out = run(['set(attributes["service.name"], "edited")'], batch, "resource")
    assert out.resources.column("service_name").to_pylist() == ["edited", "edited"]


def test_spanevent_edits_write_back_into_spans() -> None:
    batch = decode_traces(sample_traces())
    out = run(['set(attributes["span"], span.name) where name == "exception"'], batch, "spanevent")
    events = out.tables["spans"].column("events").to_pylist()
    assert events[0][0]["attributes"][-1]["str"] == "GET /cart"
    assert events[0][1]["attributes"] == []
    assert events[1] == [] and events[2] == []


def test_where_clause_sees_earlier_statements() -> None:
    batch = traces(span("a"))
    out = run(['set(attributes["x"], 1)', 'set(name, "seen") where attributes["x"] == 1'], batch)
    assert out.tables["spans"].column("name").to_pylist() == ["seen"]


def test_masks_are_vectorised_over_many_rows() -> None:
    many = [span(f"n{i}", i=i, s=str(i)) for i in range(5000)]
    batch = traces(*many)
    result = Condition(['attributes["i"] >= 2500 and IsMatch(attributes["s"], "7$")'], "span")
    hits = result.evaluate(Rows(batch, "span"))
    expected = np.array([i >= 2500 and str(i).endswith("7") for i in range(5000)])
    assert (hits == expected).all()


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("IsRootSpan()", [False, True, True]),
        ('HasPrefix(name, "GET")', [True, False, False]),
        ('HasSuffix(resource.attributes["service.name"], "out")', [True, True, False]),
        ('HasPrefix(attributes["i"], "-")', [False, False, False]),
    ],
)
def test_span_predicates(condition: str, expected: list[bool]) -> None:
    assert mask(condition, decode_traces(sample_traces())) == expected


def test_is_root_span_only_in_span_context() -> None:
    with pytest.raises(OttlError, match="only available in the span context"):
        Condition(["IsRootSpan()"], "log")


def test_concatenated_batches_with_chunked_columns() -> None:
    from otlp.batch_ops import concat

    batch = concat([decode_traces(sample_traces()), decode_traces(sample_traces())])
    assert batch.tables["spans"].column("attributes").num_chunks == 2
    assert mask('attributes["s"] == "text" or IsRootSpan()', batch) == [True] * 6
    assert mask('name == "bare"', batch, "spanevent") == [False, True, False, True]
    out = run(
        [
            'set(attributes["x"], 1)',
            'delete_key(attributes, "s")',
            'replace_pattern(name, "G", "g")',
        ],
        batch,
    )
    assert out.tables["spans"].column("name").to_pylist() == ["gET /cart", "root", "other"] * 2
    assert [row.get("x") for row in attributes_of(out)] == [1] * 6
    assert ["s" in row for row in attributes_of(out)] == [False] * 6


def test_empty_batches() -> None:
    from otlp.batch import empty_batch

    for signal, context in (("traces", "span"), ("logs", "log"), ("traces", "spanevent")):
        batch = empty_batch(signal)
        assert mask("true", batch, context) == []
        assert run(['set(attributes["x"], 1)'], batch, context).item_count() == 0
    metrics = empty_batch("metrics")
    assert mask("value_int == 1", metrics, "datapoint", "gauge") == []


def test_lower_contexts_write_resource_and_scope_attributes() -> None:
    batch = decode_traces(sample_traces())
    out = run(
        [
            # each span writes its resource; the last selected span's value wins
            'set(resource.attributes["last_span"], name)',
            'set(resource.attributes["server"], name) where kind == SPAN_KIND_SERVER',
            'delete_key(resource.attributes, "s") where name == "other"',
            'set(instrumentation_scope.attributes["seen"], true) where name == "root"',
            # later statements read what earlier ones wrote
            'set(attributes["from_resource"], resource.attributes["last_span"])',
        ],
        batch,
    )
    res = [
        {a["key"]: a["str"] or a["bool"] for a in items}
        for items in out.resources.column("attributes").to_pylist()
    ]
    assert res[0]["last_span"] == "root" and res[0]["server"] == "GET /cart" and "s" in res[0]
    assert res[1] == {"last_span": "other"}
    scopes = out.scopes.column("attributes").to_pylist()
    assert [any(a["key"] == "seen" for a in s) for s in scopes] == [True, False, False]
    assert [r["from_resource"] for r in attributes_of(out)] == ["root", "root", "other"]
    assert out.resources.column("service_name").to_pylist() == ["checkout", ""]


def test_has_attr_on_datapoint() -> None:
    batch = decode_metrics(sample_metrics())
    names = ["g", "s", "h", "e", "q", "nodata", "emptygauge"]
    assert mask('HasAttrKeyOnDatapoint("p")', batch, "metric") == [n == "g" for n in names]
    assert mask('HasAttrOnDatapoint("p", "1")', batch, "metric") == [n == "g" for n in names]
    assert mask('HasAttrOnDatapoint("p", "2")', batch, "metric") == [False] * 7
    with pytest.raises(OttlError, match="only available in the metric context"):
        Condition(['HasAttrKeyOnDatapoint("p")'], "datapoint")


@pytest.mark.parametrize("expression", ["1 / 0", "1.5 / 0", "2 / 0.0"])
def test_division_by_zero_is_a_runtime_error(expression: str) -> None:
    from otlp.ottl import OttlRuntimeError

    with pytest.raises(OttlRuntimeError, match="attempted to divide by 0"):
        value_of(expression, traces(span("a")))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('span.end_time - span.start_time >= Duration("500us")', [True, False, False]),
        ('(end_time - start_time) > Duration("0.5ms")', [False, False, False]),
        ('duration < Duration("1h2m3.5s")', [True, True, True]),
        ('Duration("-1.5s") == -1500000000', [True, True, True]),
    ],
)
def test_time_paths_and_durations(condition: str, expected: list[bool]) -> None:
    assert mask(condition, decode_traces(sample_traces())) == expected


def test_bad_duration() -> None:
    with pytest.raises(OttlError, match='1:21: invalid duration "5 sec"'):
        Condition(['duration > Duration("5 sec")'], "span")
