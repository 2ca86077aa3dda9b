"""attributes processor: the Collector's actions (known answers, including the SHA-256
hashes of each value type) and include/exclude matching."""

from __future__ import annotations

import hashlib
import struct

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp.batch import Batch
from otlp.config import validate
from otlp.decode import decode_metrics, decode_traces
from otlp.encode import encode
from otlp.errors import ConfigError
from otlp.telemetry import Telemetry
from processors.attributes.config import AttributesConfig
from processors.attributes.processor import AttributesProcessor
from tests.otlp_samples import av, kv, sample_metrics
from tests.test_ottl import logs


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


async def process(config: dict, batch: Batch, signal: str = "traces") -> Batch:
    processor = AttributesProcessor(
        "attributes", AttributesConfig.model_validate(config), Telemetry(), {signal}
    )
    sink = Sink()
    processor.next = sink
    await processor.consume(batch)
    return sink.batches[0]


def attrs(message) -> dict:
    out = {}
    for item in message.attributes:
        kind = item.value.WhichOneof("value")
        out[item.key] = getattr(item.value, kind) if kind else None
    return out


def spans_of(batch: Batch) -> list[dict]:
    request = encode(batch)
    return [attrs(s) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def traces(*groups: tuple[str, str, list[Span]]) -> Batch:
    """(service, library, spans) per resource."""
    return decode_traces(
        ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[kv("service.name", service), kv("env", "prod")]),
                    scope_spans=[ScopeSpans(scope=InstrumentationScope(name=lib), spans=spans)],
                )
                for service, lib, spans in groups
            ]
        )
    )


def span(name: str, kind: int = 0, **attributes: object) -> Span:
    return Span(name=name, kind=kind, attributes=[kv(k, v) for k, v in attributes.items()])


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


async def test_insert_update_upsert_delete() -> None:
    batch = traces(("svc", "lib", [span("a", k="old", src=7), span("b")]))
    out = await process(
        {
            "actions": [
                {"key": "k", "value": "inserted", "action": "insert"},
                {"key": "new", "value": 1.5, "action": "insert"},
                {"key": "src_copy", "from_attribute": "src", "action": "upsert"},
                {"key": "k", "value": True, "action": "update"},
                {"key": "missing", "value": "x", "action": "update"},
                {"key": "up", "value": 3, "action": "upsert"},
                {"key": "src", "action": "delete"},
            ]
        },
        batch,
    )
    assert spans_of(out) == [
        {"k": True, "new": 1.5, "src_copy": 7, "up": 3},
        # k was inserted by the first action, so the update reaches it too
        {"k": True, "new": 1.5, "up": 3},
    ]


async def test_delete_and_hash_by_pattern() -> None:
    batch = traces(("svc", "lib", [span("a", **{"http.url": "u", "http.method": "GET", "x": 1})]))
    out = await process({"actions": [{"pattern": "^http\\.", "action": "delete"}]}, batch)
    assert spans_of(out) == [{"x": 1}]
    out = await process({"actions": [{"pattern": "method$", "action": "hash"}]}, batch)
    assert spans_of(out) == [{"http.url": "u", "http.method": sha(b"GET"), "x": 1}]


async def test_hash_of_each_type_matches_the_collector() -> None:
    batch = traces(("svc", "lib", [span("a", s="value", i=-1, d=2.5, b=True, f=False, y=b"raw")]))
    out = await process(
        {"actions": [{"key": k, "action": "hash"} for k in ("s", "i", "d", "b", "f", "y")]},
        batch,
    )
    assert spans_of(out) == [
        {
            "s": sha(b"value"),
            "i": sha(struct.pack("<q", -1)),
            "d": sha(struct.pack("<d", 2.5)),
            "b": sha(b"\x01"),
            "f": sha(b"\x00"),
            # bytes, maps and slices have no hash input: the Collector sets ""
            "y": "",
        }
    ]
    assert spans_of(out)[0]["s"] == (
        "cd42404d52ad55ccfa9aca4adc828aa5800ad9d385a0671fbcbf724118320619"
    )


async def test_extract_named_groups() -> None:
    batch = traces(("svc", "lib", [span("a", url="https://example.com/path/x"), span("b", url=3)]))
    out = await process(
        {
            "actions": [
                {
                    "key": "url",
                    "pattern": "^(?P<scheme>[a-z]+)://(?P<host>[^/]+)(?P<path>/.*)$",
                    "action": "extract",
                }
            ]
        },
        batch,
    )
    assert spans_of(out) == [
        {
            "url": "https://example.com/path/x",
            "scheme": "https",
            "host": "example.com",
            "path": "/path/x",
        },
        {"url": 3},
    ]


@pytest.mark.parametrize(
    ("value", "converted_type", "expected"),
    [
        ("42", "int", 42),
        ("4.2", "int", "4.2"),  # does not parse: unchanged
        (4.9, "int", 4),
        (True, "int", 1),
        ("4.5", "double", 4.5),
        (3, "double", 3.0),
        ("x", "double", "x"),
        (3, "string", "3"),
        (2.5, "string", "2.5"),
        (True, "string", "true"),
        (b"\x01", "string", "AQ=="),
        ({"a": 1}, "string", '{"a":1}'),
    ],
)
async def test_convert(value: object, converted_type: str, expected: object) -> None:
    batch = traces(("svc", "lib", [span("a", v=value)]))
    out = await process(
        {"actions": [{"key": "v", "action": "convert", "converted_type": converted_type}]}, batch
    )
    assert spans_of(out) == [{"v": expected}]


async def test_from_context_reads_request_metadata() -> None:
    batch = traces(("svc", "lib", [span("a")]))
    batch.context["x-tenant"] = "acme"
    out = await process(
        {"actions": [{"key": "tenant", "from_context": "metadata.x-tenant", "action": "insert"}]},
        batch,
    )
    assert spans_of(out) == [{"tenant": "acme"}]


MARK = {"actions": [{"key": "hit", "value": True, "action": "insert"}]}


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ({"match_type": "strict", "services": ["api"]}, None, [True, True, False]),
        ({"match_type": "regexp", "services": ["^ap"]}, None, [True, True, False]),
        ({"match_type": "strict", "span_names": ["a", "c"]}, None, [True, False, True]),
        ({"match_type": "regexp", "span_names": ["[bc]"]}, None, [False, True, True]),
        ({"match_type": "strict", "span_kinds": ["SPAN_KIND_SERVER"]}, None, [True, False, False]),
        (
            {"match_type": "strict", "attributes": [{"key": "code", "value": 500}]},
            None,
            [False, True, False],
        ),
        ({"match_type": "strict", "attributes": [{"key": "code"}]}, None, [True, True, False]),
        (
            {"match_type": "regexp", "attributes": [{"key": "route", "value": "^/v1"}]},
            None,
            [True, False, False],
        ),
        (
            {"match_type": "strict", "resources": [{"key": "env", "value": "prod"}]},
            None,
            [True, True, True],
        ),
        ({"match_type": "strict", "libraries": [{"name": "other"}]}, None, [False, False, True]),
        (
            {"match_type": "strict", "services": ["api"]},
            {"match_type": "strict", "span_names": ["b"]},
            [True, False, False],
        ),
        (None, {"match_type": "regexp", "span_names": ["^a$"]}, [False, True, True]),
        # all properties must match
        (
            {"match_type": "strict", "services": ["api"], "span_names": ["b"]},
            None,
            [False, True, False],
        ),
    ],
)
async def test_include_exclude(
    include: dict | None, exclude: dict | None, expected: list[bool]
) -> None:
    batch = traces(
        (
            "api",
            "lib",
            [span("a", kind=2, code=200, route="/v1/x"), span("b", code=500, route="/v2")],
        ),
        ("db", "other", [span("c")]),
    )
    config = dict(MARK)
    if include:
        config["include"] = include
    if exclude:
        config["exclude"] = exclude
    out = await process(config, batch)
    assert ["hit" in a for a in spans_of(out)] == expected


async def test_logs_matching_body_and_severity() -> None:
    batch = logs(
        LogRecord(body=av("disk full"), severity_number=17, severity_text="ERROR", attributes=[]),
        LogRecord(body=av("ok"), severity_number=9),
        LogRecord(body=av("disk ok")),
    )
    out = await process(
        {
            **MARK,
            "include": {
                "match_type": "regexp",
                "log_bodies": ["^disk"],
                "log_severity_number": {"min": "WARN", "match_undefined": True},
            },
        },
        batch,
        "logs",
    )
    records = encode(out).resource_logs[0].scope_logs[0].log_records
    assert ["hit" in attrs(r) for r in records] == [True, False, True]


async def test_metrics_apply_to_datapoints_of_matching_metrics() -> None:
    out = await process(
        {**MARK, "include": {"match_type": "strict", "metric_names": ["g", "h"]}},
        decode_metrics(sample_metrics()),
        "metrics",
    )
    metrics = encode(out).resource_metrics[0].scope_metrics[0].metrics
    by_name = {m.name: m for m in metrics}
    assert [attrs(p).get("hit") for p in by_name["g"].gauge.data_points] == [True, True, True]
    assert [attrs(p).get("hit") for p in by_name["h"].histogram.data_points] == [True, True]
    assert attrs(by_name["s"].sum.data_points[0]) == {}


def test_span_properties_are_refused_for_logs() -> None:
    config = AttributesConfig.model_validate(
        {**MARK, "include": {"match_type": "strict", "span_names": ["a"]}}
    )
    with pytest.raises(ValueError, match="not supported for logs"):
        AttributesProcessor("attributes", config, Telemetry(), {"logs"})


def _config(processor: dict) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "processors": {"attributes": processor},
        "exporters": {"nop": {}},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["attributes"],
                    "exporters": ["nop"],
                }
            }
        },
    }


@pytest.mark.parametrize(
    ("processor", "message"),
    [
        (
            {"actions": [{"key": "a", "action": "insert"}]},
            'processors.attributes.actions.0: Value error, action "insert" needs one of '
            '"value", "from_attribute" or "from_context"',
        ),
        (
            {"actions": [{"key": "a", "value": 1, "from_attribute": "b", "action": "upsert"}]},
            "processors.attributes.actions.0: Value error, multiple value sources are set",
        ),
        (
            {"actions": [{"action": "delete"}]},
            'processors.attributes.actions.0: Value error, missing required field "key" '
            '(or "pattern")',
        ),
        (
            {"actions": [{"key": "a", "action": "extract", "pattern": "(x)"}]},
            'processors.attributes.actions.0: Value error, field "pattern" contains no named '
            "matcher groups",
        ),
        (
            {"actions": [{"key": "a", "action": "rename"}]},
            'processors.attributes.actions.0.action: Value error, unsupported action "rename"',
        ),
        (
            {"actions": [{"key": "a", "action": "convert"}]},
            'processors.attributes.actions.0: Value error, action "convert" needs "converted_type"',
        ),
        (
            {"actions": [{"pattern": "(", "action": "delete"}]},
            "processors.attributes.actions.0.pattern: Value error, invalid regex '('",
        ),
        (
            {**MARK, "include": {"services": ["a"]}},
            "processors.attributes.include.match_type: required key is missing",
        ),
        (
            {**MARK, "include": {"match_type": "strict"}},
            "processors.attributes.include: Value error, at least one property to match on "
            "must be specified",
        ),
        ({"actions": []}, "processors.attributes.actions: List should have at least 1 item"),
    ],
)
def test_config_errors(processor: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(_config(processor))
    assert str(info.value).startswith(message), str(info.value)
