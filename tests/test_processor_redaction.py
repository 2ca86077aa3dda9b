"""redaction: known answers from the Collector's redactionprocessor tests (contrib 0.165:
summary attributes at debug/info/silent, hashes, config order, chained processors, log
bodies of every type), every attribute location, the built-in pattern sets and config
errors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pydantic import ValidationError

from otlp.batch import Batch
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.encode import encode
from otlp.telemetry import Telemetry
from processors.redaction.builtin import luhn
from processors.redaction.config import RedactionConfig
from processors.redaction.processor import RedactionProcessor
from tests.otlp_samples import av, kv, sample_logs, sample_metrics, sample_traces


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


async def run(config: dict, batch: Batch) -> Batch:
    processor = RedactionProcessor("redaction", RedactionConfig.model_validate(config), Telemetry())
    sink = Sink()
    processor.next = sink
    await processor.consume(batch)
    (out,) = sink.batches
    return out


def as_dict(attributes: Any) -> dict[str, Any]:
    return {a.key: next(iter(MessageToDict(a.value).values()), None) for a in attributes}


def kvs(values: dict[str, Any]) -> list:
    return [kv(k, v) for k, v in values.items()]


def everywhere(values: dict[str, Any], body: Any = None) -> tuple[Batch, Batch, Batch]:
    """Traces, logs and metrics (all five point kinds) with ``values`` as the attributes of
    every resource, scope, span, span event, span link, log record and data point."""
    a = kvs(values)
    resource = Resource(attributes=a)
    scope = InstrumentationScope(name="s", attributes=a)
    span = Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="op",
        attributes=a,
        events=[Span.Event(name="e", attributes=a)],
        links=[Span.Link(trace_id=b"\x03" * 16, span_id=b"\x04" * 8, attributes=a)],
    )
    traces = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=[span])])
        ]
    )
    record = LogRecord(attributes=a, body=av(body if body is not None else values))
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource, scope_logs=[ScopeLogs(scope=scope, log_records=[record])]
            )
        ]
    )
    point_kinds = [
        ("gauge", m.Gauge, m.NumberDataPoint, {"as_int": 1}),
        ("sum", m.Sum, m.NumberDataPoint, {"as_double": 1.0}),
        ("histogram", m.Histogram, m.HistogramDataPoint, {"count": 1}),
        ("exponential_histogram", m.ExponentialHistogram, m.ExponentialHistogramDataPoint,
         {"count": 1}),
        ("summary", m.Summary, m.SummaryDataPoint, {"count": 1}),
    ]  # fmt: skip
    metric_list = [
        m.Metric(name=kind, **{kind: data(data_points=[point(attributes=a, **fields)])})
        for kind, data, point, fields in point_kinds
    ]
    metrics = ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=resource,
                scope_metrics=[m.ScopeMetrics(scope=scope, metrics=metric_list)],
            )
        ]
    )
    return decode_traces(traces), decode_logs(logs), decode_metrics(metrics)


def all_attribute_maps(traces: Batch, logs: Batch, metrics: Batch) -> list[dict[str, Any]]:
    t = encode(traces).resource_spans[0]
    span = t.scope_spans[0].spans[0]
    lg = encode(logs).resource_logs[0]
    me = encode(metrics).resource_metrics[0]
    points = []
    for metric in me.scope_metrics[0].metrics:
        data = getattr(metric, metric.WhichOneof("data"))
        points.append(data.data_points[0].attributes)
    return [
        as_dict(x)
        for x in [
            t.resource.attributes,
            t.scope_spans[0].scope.attributes,
            span.attributes,
            span.events[0].attributes,
            span.links[0].attributes,
            lg.resource.attributes,
            lg.scope_logs[0].scope.attributes,
            lg.scope_logs[0].log_records[0].attributes,
            me.resource.attributes,
            me.scope_metrics[0].scope.attributes,
            *points,
        ]
    ]


async def run_everywhere(config: dict, values: dict[str, Any]) -> list[dict[str, Any]]:
    traces, logs, metrics = everywhere(values)
    return all_attribute_maps(
        await run(config, traces), await run(config, logs), await run(config, metrics)
    )


# --- the Collector's TestRedactSummaryDebug / ...HashMD5 / TestRedactSummaryInfo

SUMMARY_VALUES = {
    "id": 5,
    "group.id": "some.valid.id",
    "member (id)": "some other valid id",
    "name": "placeholder 4111111111111111",
    "safe_attribute": "harmless 4111111111111112",
    "safeRE_attribute_id": "safe id",
    "safeRE_attribute_source": "safe source",
    "credit_card": "4111111111111111",
    "token_some": "tokenize",
    "api_key_some": "apinize",
    "email": "user@mycompany.com",
}
SUMMARY_CONFIG = {
    "allowed_keys": ["id", "group", "name", "group.id", "member (id)", "token_some",
                     "api_key_some", "email"],
    "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?"],
    "ignored_keys": ["safe_attribute"],
    "ignored_key_patterns": ["safeRE_attribute.*"],
    "blocked_key_patterns": [".*(token|api_key).*"],
    "allowed_values": [".+@mycompany.com"],
    "summary": "debug",
}  # fmt: skip


async def test_summary_debug_everywhere() -> None:
    for attrs in await run_everywhere(SUMMARY_CONFIG, SUMMARY_VALUES):
        assert "credit_card" not in attrs
        assert attrs["redaction.redacted.keys"] == "credit_card"
        assert attrs["redaction.redacted.count"] == "1"
        assert attrs["redaction.ignored.count"] == "3"
        assert attrs["redaction.masked.keys"] == "api_key_some,name,token_some"
        assert attrs["redaction.masked.count"] == "3"
        assert attrs["name"] == "placeholder ****"
        assert attrs["redaction.allowed.keys"] == "email"
        assert attrs["redaction.allowed.count"] == "1"
        assert attrs["email"] == "user@mycompany.com"
        assert attrs["api_key_some"] == attrs["token_some"] == "****"
        assert attrs["safe_attribute"] == "harmless 4111111111111112"
        assert attrs["id"] == "5"  # (int64 rendered as a JSON string by MessageToDict)


async def test_summary_debug_md5_hashes() -> None:
    config = {**SUMMARY_CONFIG, "hash_function": "MD5",
              "blocked_key_patterns": [".*token.*", ".*api_key.*"]}  # fmt: skip
    for attrs in await run_everywhere(config, SUMMARY_VALUES):
        assert attrs["name"] == "placeholder 5910f4ea0062a0e29afd3dccc741e3ce"
        assert attrs["api_key_some"] == "93a699237950bde9eb9d25c7ead025f3"
        assert attrs["token_some"] == "77e9ef3680c5518785ef0121d3884c3d"
        assert attrs["redaction.masked.count"] == "3"


@pytest.mark.parametrize(
    ("function", "key", "digest"),
    [
        ("sha1", "", hashlib.sha1),
        ("sha3", "", hashlib.sha3_256),
        ("hmac-sha256", "k" * 32, None),
        ("hmac-sha512", "k" * 64, None),
    ],
)
async def test_other_hash_functions(function: str, key: str, digest: Any) -> None:
    import hmac

    config = {"allow_all_keys": True, "blocked_values": ["4[0-9]{15}"],
              "hash_function": function, "hmac_key": key}  # fmt: skip
    (attrs, *_) = await run_everywhere(config, {"card": "x 4111111111111111 y"})
    match = b"4111111111111111"
    if digest:
        want = digest(match).hexdigest()
    else:
        algo = hashlib.sha256 if function == "hmac-sha256" else hashlib.sha512
        want = hmac.new(key.encode(), match, algo).hexdigest()
    assert attrs["card"] == f"x {want} y"


async def test_summary_info_counts_only() -> None:
    config = {
        "allowed_keys": ["id", "name", "group", "email"],
        "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?"],
        "ignored_keys": ["safe_attribute"],
        "ignored_key_patterns": ["safeRE_attribute.*"],
        "allowed_values": [".+@mycompany.com"],
        "summary": "info",
    }
    values = {
        "id": 5,
        "safe_attribute": "harmless but suspicious 4111111111111141",
        "safeRE_attribute_id": "safe id",
        "safeRE_attribute_source": "safe source",
        "name": "placeholder 4111111111111111",
        "credit_card": "4111111111111111",
        "email": "user@mycompany.com",
    }
    for attrs in await run_everywhere(config, values):
        assert "redaction.redacted.keys" not in attrs
        assert "redaction.masked.keys" not in attrs
        assert attrs["redaction.redacted.count"] == "1"
        assert attrs["redaction.masked.count"] == "1"
        assert attrs["redaction.allowed.count"] == "1"
        assert attrs["redaction.ignored.count"] == "3"
        assert attrs["name"] == "placeholder ****"
        assert attrs["safe_attribute"] == "harmless but suspicious 4111111111111141"


@pytest.mark.parametrize("summary", ["silent", None])
async def test_summary_silent_and_default_add_nothing(summary: str | None) -> None:
    config = {"allowed_keys": ["name"], "blocked_values": ["4[0-9]{15}"]}
    if summary:
        config["summary"] = summary
    for attrs in await run_everywhere(config, {"name": "4111111111111111", "other": "x"}):
        assert attrs == {"name": "****"}


@pytest.mark.parametrize(
    ("order", "expected"),
    [(("email", "postal"), "****"), (("postal", "email"), "****@example.com")],
)
async def test_blocked_values_applied_in_config_order(order: tuple, expected: str) -> None:
    patterns = {
        "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
        "postal": r"\b\d{3}-\d{4}\b",
    }
    config = {"allow_all_keys": True, "blocked_values": [patterns[p] for p in order]}
    traces, logs, _ = everywhere({"email": "777-7777@example.com"}, body="777-7777@example.com")
    out = encode(await run(config, traces))
    assert as_dict(out.resource_spans[0].resource.attributes)["email"] == expected
    record = encode(await run(config, logs)).resource_logs[0].scope_logs[0].log_records[0]
    assert record.body.string_value == expected


async def test_applied_twice_accumulates() -> None:
    # the Collector's TestProcessAttrsAppliedTwice
    config = {"allowed_keys": ["id", "credit_card", "mystery"],
              "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?"], "summary": "debug"}  # fmt: skip
    values = {
        "id": 5,
        "redundant": 1.2,
        "mystery": "mystery ****",
        "credit_card": "4111111111111111",
        "redaction.redacted.keys": "dropped_attr1,dropped_attr2",
        "redaction.redacted.count": 2,
        "redaction.masked.keys": "mystery",
        "redaction.masked.count": 1,
    }
    (attrs, *_) = await run_everywhere(config, values)
    assert len(attrs) == 7
    assert attrs["redaction.redacted.keys"] == "dropped_attr1,dropped_attr2,redundant"
    assert attrs["redaction.redacted.count"] == "3"
    assert attrs["redaction.masked.count"] == "2"
    assert attrs["redaction.masked.keys"] == "credit_card,mystery"


async def test_silent_processor_strips_an_upstream_audit_trail() -> None:
    values = {"name": "x", "redaction.masked.count": 4, "redaction.allowed.keys": "a"}
    (attrs, *_) = await run_everywhere({"allowed_keys": ["name"], "summary": "silent"}, values)
    assert attrs == {"name": "x"}


async def test_redact_all_types() -> None:
    values = {"card_int": 4111111111111111, "card_str": "4111111111111111", "n": 5}
    config = {"allow_all_keys": True, "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?"]}
    (attrs, *_) = await run_everywhere(config, values)
    assert attrs == {"card_int": "4111111111111111", "card_str": "****", "n": "5"}
    (attrs, *_) = await run_everywhere({**config, "redact_all_types": True}, values)
    assert attrs == {"card_int": "****", "card_str": "****", "n": "5"}


async def test_masking_string() -> None:
    config = {"allow_all_keys": True, "blocked_values": ["secret"], "masking_string": r"[\1]"}
    for attrs in await run_everywhere(config, {"a": "my secret!"}):
        assert attrs == {"a": r"my [\1]!"}


# --- log bodies (the Collector's TestLogBodyRedactionDifferentTypes and friends)


def one_log(body: Any) -> Batch:
    record = LogRecord(body=av(body))
    return decode_logs(
        ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
        )
    )


def log_of(batch: Batch) -> LogRecord:
    return encode(batch).resource_logs[0].scope_logs[0].log_records[0]


async def test_string_body() -> None:
    config = {"allowed_keys": ["id"], "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?"],
              "summary": "debug"}  # fmt: skip
    record = log_of(await run(config, one_log("placeholder 4111111111111111")))
    assert record.body.string_value == "placeholder ****"
    attrs = as_dict(record.attributes)
    assert attrs["redaction.body.masked.keys"] == "body"
    assert attrs["redaction.body.masked.count"] == "1"


async def test_structured_body() -> None:
    body = {
        "credit_card": "4111111111111111",
        "not_allowed_key": "temp",
        "id": "user123",
        "nested": {
            "credit_card": "4111111111111111",
            "not_allowed_key": "temp",
            "id": "user123",
            "safe_attribute": "4111111111111111",
            "email": "user@mycompany.com",
        },
        "slice": ["4111111111111111", "user123"],
    }
    config = {
        "allowed_keys": ["id", "email", "credit_card", "nested", "slice"],
        "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?"],
        "ignored_keys": ["safe_attribute"],
        "allowed_values": [".+@mycompany.com"],
        "summary": "debug",
    }
    out = await run(config, one_log(body))
    record = log_of(out)
    got = MessageToDict(record.body)
    kv_of = {e["key"]: e["value"] for e in got["kvlistValue"]["values"]}
    assert kv_of["credit_card"] == {"stringValue": "****"}
    assert "not_allowed_key" not in kv_of
    assert kv_of["id"] == {"stringValue": "user123"}
    nested = {e["key"]: e["value"] for e in kv_of["nested"]["kvlistValue"]["values"]}
    assert nested["credit_card"] == {"stringValue": "****"}
    assert nested["safe_attribute"] == {"stringValue": "4111111111111111"}
    assert "not_allowed_key" not in nested
    assert kv_of["slice"]["arrayValue"]["values"][0] == {"stringValue": "****"}
    attrs = as_dict(record.attributes)
    assert attrs == {
        "redaction.body.redacted.keys": "nested.not_allowed_key,not_allowed_key",
        "redaction.body.redacted.count": "2",
        "redaction.body.masked.keys": "credit_card,nested.credit_card,slice.[0]",
        "redaction.body.masked.count": "3",
        "redaction.body.allowed.keys": "nested.email",
        "redaction.body.allowed.count": "1",
        "redaction.body.ignored.count": "1",
    }
    # the JSON rendering (what ClickHouse stores as Body) follows the edited value
    body_json = out.tables["logs"].column("body").combine_chunks().field("str")[0].as_py()
    assert "4111111111111111" not in body_json.replace('"safe_attribute":"4111111111111111"', "")
    assert "not_allowed_key" not in body_json


async def test_blocked_key_patterns_in_body() -> None:
    body = {"secret_token": "4111111111111111", "id": "user123",
            "nested": {"secret_id": "some-secret", "id": "user123"}}  # fmt: skip
    config = {"allow_all_keys": True, "blocked_key_patterns": ["^secret_"], "summary": "debug"}
    record = log_of(await run(config, one_log(body)))
    attrs = as_dict(record.attributes)
    assert attrs["redaction.body.masked.keys"] == "nested.secret_id,secret_token"
    assert attrs["redaction.body.masked.count"] == "2"


async def test_multiline_value_of_blocked_key_is_masked_once() -> None:
    text = "-----BEGIN PRIVATE KEY-----\nsecret\n\n-----END PRIVATE KEY-----"
    config = {"allow_all_keys": True, "blocked_key_patterns": ["private_key"]}
    for attrs in await run_everywhere(config, {"private_key": text}):
        assert attrs == {"private_key": "****"}


# --- built-in pattern sets (AIRIS extension)


def test_luhn() -> None:
    assert luhn("4111 1111 1111 1111")
    assert luhn("5500-0000-0000-0004")
    assert not luhn("4111111111111112")
    assert not luhn("123")


SET_CASES = [
    ("credit_card", "pay 4111 1111 1111 1111 now", "pay **** now"),
    ("credit_card", "order 4111111111111112", "order 4111111111111112"),  # Luhn fails
    ("credit_card", "amex 378282246310005.", "amex ****."),
    ("email", "to: Jane.Doe+x@mail.example.co.kr;", "to: ****;"),
    ("ipv4", "from 192.168.10.254:8080", "from ****:8080"),
    ("ipv4", "version 1.2.3", "version 1.2.3"),
    ("ipv6", "peer 2001:db8::8a2e:370:7334 port", "peer **** port"),
    ("ipv6", "at 12:30:45", "at 12:30:45"),
    ("jwt", "t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_x ok", "t=**** ok"),
    ("bearer_token", "Authorization: Bearer abc.DEF-123~", "Authorization: ****"),
    ("aws_access_key", "key AKIAIOSFODNN7EXAMPLE used", "key **** used"),
    ("gcp_api_key", "AIzaSyA-1234567890abcdefghijklmnopqrstu", "****"),
    ("github_token", "ghp_" + "a" * 36, "****"),
    ("phone", "call +82 10-1234-5678 or 02-123-4567", "call **** or ****"),
    ("phone", "(555) 123-4567", "****"),
    ("phone", "id 1700000000123", "id 1700000000123"),
    ("kr_rrn", "rrn 900101-1234567", "rrn ****"),
    ("kr_rrn", "rrn 901301-1234567", "rrn 901301-1234567"),
]


@pytest.mark.parametrize(("name", "text", "expected"), SET_CASES)
async def test_builtin_sets(name: str, text: str, expected: str) -> None:
    config = {"allow_all_keys": True, "blocked_value_sets": [name]}
    traces, logs, _ = everywhere({"v": text}, body=text)
    (attrs, *_) = all_attribute_maps(await run(config, traces), *everywhere({})[1:])
    assert attrs == {"v": expected}
    assert log_of(await run(config, logs)).body.string_value == expected


async def test_builtin_sets_with_hash() -> None:
    config = {"allow_all_keys": True, "blocked_value_sets": ["credit_card", "email"],
              "hash_function": "sha3"}  # fmt: skip
    (attrs, *_) = await run_everywhere(config, {"v": "a@b.io 4111111111111111 4111111111111112"})
    sha = lambda s: hashlib.sha3_256(s.encode()).hexdigest()  # noqa: E731
    assert attrs["v"] == f"{sha('a@b.io')} {sha('4111111111111111')} 4111111111111112"


# --- samples, grouping, config


@pytest.mark.parametrize(
    ("decode", "sample"),
    [(decode_traces, sample_traces), (decode_logs, sample_logs), (decode_metrics, sample_metrics)],
)
async def test_allow_all_without_patterns_changes_nothing(decode: Any, sample: Any) -> None:
    batch = decode(sample())
    out = await run({"allow_all_keys": True}, batch)
    assert encode(out) == encode(batch)


async def test_removing_service_name_refreshes_the_derived_column() -> None:
    out = await run({"allowed_keys": ["x"]}, decode_traces(sample_traces()))
    assert set(out.resources.column("service_name").to_pylist()) == {""}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"hash_function": "sha256"}, "unknown HashFunction sha256, allowed functions are"),
        ({"hash_function": "hmac-sha256"},
         'hmac_key must not be empty when hash_function is "hmac-sha256"'),
        ({"hash_function": "hmac-sha512", "hmac_key": "short"},
         'hmac_key must be at least 64 bytes long for "hmac-sha512", got 5 bytes'),
        ({"hash_function": "md5", "masking_string": "x"},
         "masking_string must not be set when hash_function is defined"),
        ({"blocked_values": ["(ab"]}, "error compiling regex in list"),
        ({"blocked_value_sets": ["passport"]}, "unknown pattern set 'passport'"),
        ({"summary": "verbose"}, "summary"),
        ({"url_sanitizer": {"enabled": True}}, "not supported"),
        ({"allowed_key": ["x"]}, "allowed_key"),
    ],
)  # fmt: skip
def test_config_errors(config: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        RedactionConfig.model_validate(config)
