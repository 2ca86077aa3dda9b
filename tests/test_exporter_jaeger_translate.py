"""The jaeger exporter's translation (OTLP → Jaeger api_v2) against known answers written from
the OpenTelemetry specification's Jaeger mapping, the api_v2 .proto sources against Jaeger's
IDL (field numbers) and the committed generated modules, and the exporter's config."""

from __future__ import annotations

import filecmp
import struct

import numpy as np
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from exporters.jaeger import wire
from exporters.jaeger.config import JaegerConfig
from exporters.jaeger.translate import post_spans_requests
from otlp.anyvalue import as_string, varint
from otlp.batch_ops import concat
from otlp.config import validate
from otlp.decode import decode_protobuf
from otlp.errors import ConfigError
from otlp.registry import lookup
from proto import generate
from proto.jaeger.api_v2 import collector_pb2, collector_pb2_grpc, model_pb2
from tests.otlp_samples import (
    ALL_TYPES_JSON,
    PARENT_ID,
    REQUESTS,
    SPAN_ID,
    TRACE_ID,
    kv,
    sample_traces,
)

KV = model_pb2.KeyValue


def s(key: str, value: str) -> model_pb2.KeyValue:
    return KV(key=key, v_type=model_pb2.STRING, v_str=value)


def i64(key: str, value: int) -> model_pb2.KeyValue:
    return KV(key=key, v_type=model_pb2.INT64, v_int64=value)


def requests_of(req: ExportTraceServiceRequest, **kw) -> list[collector_pb2.PostSpansRequest]:
    batch = decode_protobuf("traces", req.SerializeToString())
    return [
        collector_pb2.PostSpansRequest.FromString(r.body) for r in post_spans_requests(batch, **kw)
    ]


def all_type_tags() -> list[model_pb2.KeyValue]:
    return [
        s("s", "text"),
        KV(key="b", v_type=model_pb2.BOOL, v_bool=True),
        i64("i", -42),
        KV(key="d", v_type=model_pb2.FLOAT64, v_float64=2.5),
        KV(key="y", v_type=model_pb2.BINARY, v_binary=b"\x00\xff"),
        s("a", ALL_TYPES_JSON["a"]),
        s("m", ALL_TYPES_JSON["m"]),
        # an empty AnyValue: a STRING tag without a value, as contrib writes it
        KV(key="e"),
    ]


def ts(nanos: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=nanos // 10**9, nanos=nanos % 10**9)


def test_known_answer_full_span() -> None:
    """sample_traces(): every field of a span, its resource and scope, as the spec maps them."""
    first, second = requests_of(sample_traces())
    expected_span = model_pb2.Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        operation_name="GET /cart",
        references=[
            model_pb2.SpanRef(trace_id=TRACE_ID, span_id=PARENT_ID, ref_type=model_pb2.CHILD_OF),
            model_pb2.SpanRef(
                trace_id=bytes(range(21, 37)),
                span_id=bytes(range(21, 29)),
                ref_type=model_pb2.FOLLOWS_FROM,
            ),
        ],
        # flags 0x301: the W3C sampled bit is Jaeger's sampled flag
        flags=1,
        start_time=ts(1_700_000_000_000_000_000),
        duration=duration_pb2.Duration(nanos=500_000),
        tags=[
            s("otel.scope.name", "lib"),
            s("otel.scope.version", "1.0"),
            *all_type_tags(),
            s("span.kind", "server"),
            s("otel.status_code", "ERROR"),
            KV(key="error", v_type=model_pb2.BOOL, v_bool=True),
            s("otel.status_description", "boom"),
            s("w3c.tracestate", "k=v"),
            i64("otel.dropped_attributes_count", 4),
            i64("otel.dropped_events_count", 5),
            i64("otel.dropped_links_count", 7),
        ],
        logs=[
            model_pb2.Log(
                timestamp=ts(1_700_000_000_000_100_000),
                fields=[
                    s("event", "exception"),
                    s("exception.type", "ValueError"),
                    i64("otel.dropped_attributes_count", 1),
                ],
            ),
            model_pb2.Log(timestamp=ts(0), fields=[s("event", "bare")]),
        ],
    )
    root = model_pb2.Span(
        trace_id=TRACE_ID,
        span_id=PARENT_ID,
        operation_name="root",
        start_time=ts(0),
        duration=duration_pb2.Duration(),
        tags=[s("otel.scope.name", "lib"), s("otel.scope.version", "1.0")],
    )
    assert first == collector_pb2.PostSpansRequest(
        batch=model_pb2.Batch(
            spans=[expected_span, root],
            process=model_pb2.Process(service_name="checkout", tags=all_type_tags()),
        )
    )
    # a resource without attributes: the name the Collector's translator gives it; a missing
    # trace id is 16 zero bytes (Jaeger's TraceID{0, 0})
    assert second == collector_pb2.PostSpansRequest(
        batch=model_pb2.Batch(
            spans=[
                model_pb2.Span(
                    trace_id=bytes(16),
                    span_id=SPAN_ID,
                    operation_name="other",
                    start_time=ts(0),
                    duration=duration_pb2.Duration(),
                )
            ],
            process=model_pb2.Process(service_name="OTLPResourceNoServiceName"),
        )
    )


def one_span_request(span: Span, resource: Resource | None = None) -> ExportTraceServiceRequest:
    resource = resource or Resource(attributes=[kv("service.name", "svc")])
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[span])])]
    )


def only_span(req: ExportTraceServiceRequest) -> model_pb2.Span:
    (request,) = requests_of(req)
    (span,) = request.batch.spans
    return span


@pytest.mark.parametrize(
    ("kind", "tag"),
    [
        (Span.SPAN_KIND_UNSPECIFIED, None),
        (Span.SPAN_KIND_INTERNAL, "internal"),
        (Span.SPAN_KIND_SERVER, "server"),
        (Span.SPAN_KIND_CLIENT, "client"),
        (Span.SPAN_KIND_PRODUCER, "producer"),
        (Span.SPAN_KIND_CONSUMER, "consumer"),
    ],
)
def test_span_kind(kind: int, tag: str | None) -> None:
    span = only_span(one_span_request(Span(trace_id=TRACE_ID, span_id=SPAN_ID, kind=kind)))
    kinds = [t.v_str for t in span.tags if t.key == "span.kind"]
    assert kinds == ([tag] if tag else [])


@pytest.mark.parametrize(
    ("code", "message", "tags"),
    [
        (Status.STATUS_CODE_UNSET, "", []),
        (Status.STATUS_CODE_OK, "", [s("otel.status_code", "OK")]),
        (
            Status.STATUS_CODE_OK,
            "fine",
            [s("otel.status_code", "OK"), s("otel.status_description", "fine")],
        ),
        (
            Status.STATUS_CODE_ERROR,
            "",
            [s("otel.status_code", "ERROR"), KV(key="error", v_type=model_pb2.BOOL, v_bool=True)],
        ),
    ],
)
def test_status(code: int, message: str, tags: list[model_pb2.KeyValue]) -> None:
    span = only_span(
        one_span_request(
            Span(trace_id=TRACE_ID, span_id=SPAN_ID, status=Status(code=code, message=message))
        )
    )
    assert list(span.tags) == tags


def test_event_attribute_named_event_wins_over_the_name() -> None:
    span = Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        events=[
            Span.Event(time_unix_nano=5, name="n1", attributes=[kv("event", "from-attr")]),
            Span.Event(time_unix_nano=6, name="", attributes=[kv("x", 1)]),
        ],
    )
    logs = only_span(one_span_request(span)).logs
    assert list(logs[0].fields) == [s("event", "from-attr")]
    assert logs[0].timestamp == timestamp_pb2.Timestamp(nanos=5)
    # no name: no event field
    assert list(logs[1].fields) == [i64("x", 1)]


def test_links_reference_types() -> None:
    """Links are FOLLOWS_FROM unless opentracing.ref_type says child_of; a link to the parent
    only sets the parent reference's type."""
    other_trace, other_span = bytes(range(40, 56)), bytes(range(40, 48))
    span = Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        parent_span_id=PARENT_ID,
        links=[
            Span.Link(trace_id=other_trace, span_id=other_span),
            Span.Link(
                trace_id=other_trace,
                span_id=PARENT_ID,
                attributes=[kv("opentracing.ref_type", "child_of")],
            ),
            Span.Link(
                trace_id=TRACE_ID,
                span_id=PARENT_ID,
                attributes=[kv("opentracing.ref_type", "follows_from")],
            ),
        ],
    )
    refs = only_span(one_span_request(span)).references
    assert [(r.trace_id, r.span_id, r.ref_type) for r in refs] == [
        (TRACE_ID, PARENT_ID, model_pb2.FOLLOWS_FROM),
        (other_trace, other_span, model_pb2.FOLLOWS_FROM),
        (other_trace, PARENT_ID, model_pb2.CHILD_OF),
    ]
    # an all-zero parent id is no parent
    root = only_span(
        one_span_request(Span(trace_id=TRACE_ID, span_id=SPAN_ID, parent_span_id=bytes(8)))
    )
    assert not root.references


def test_times_and_negative_duration() -> None:
    span = only_span(
        one_span_request(
            Span(
                trace_id=TRACE_ID,
                span_id=SPAN_ID,
                start_time_unix_nano=1_700_000_001_250_000_000,
                end_time_unix_nano=1_700_000_000_000_000_001,
            )
        )
    )
    assert span.start_time == timestamp_pb2.Timestamp(seconds=1_700_000_001, nanos=250_000_000)
    # end before start: a negative duration (Go's time.Sub), seconds and nanos both negative
    assert span.duration == duration_pb2.Duration(seconds=-1, nanos=-249_999_999)


def test_service_name_and_process_tags() -> None:
    resource = Resource(attributes=[kv("host.name", "h1"), kv("service.name", 7), kv("n", 1.5)])
    (request,) = requests_of(one_span_request(Span(trace_id=TRACE_ID, span_id=SPAN_ID), resource))
    # a non-string service.name names nothing (contrib reads it with Str())
    assert request.batch.process == model_pb2.Process(
        service_name="",
        tags=[s("host.name", "h1"), KV(key="n", v_type=model_pb2.FLOAT64, v_float64=1.5)],
    )


def test_one_batch_per_resource_in_arrival_order() -> None:
    """Resources interleaved in a batch (concatenated requests) still get one Batch each."""

    def req(service: str, name: str) -> bytes:
        return one_span_request(
            Span(trace_id=TRACE_ID, span_id=SPAN_ID, name=name),
            Resource(attributes=[kv("service.name", service)]),
        ).SerializeToString()

    batches = [decode_protobuf("traces", req(svc, op)) for svc, op in [("a", "1"), ("b", "2")]]
    batch = concat(batches)
    out = [collector_pb2.PostSpansRequest.FromString(r.body) for r in post_spans_requests(batch)]
    assert [
        (r.batch.process.service_name, [s.operation_name for s in r.batch.spans]) for r in out
    ] == [
        ("a", ["1"]),
        ("b", ["2"]),
    ]


def test_large_resource_split_under_the_size_limit() -> None:
    spans = [
        Span(trace_id=TRACE_ID, span_id=struct.pack(">Q", n + 1), name="x" * 200) for n in range(50)
    ]
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", "big")]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )
    batch = decode_protobuf("traces", req.SerializeToString())
    out = list(post_spans_requests(batch, max_bytes=2000))
    assert len(out) > 1
    assert all(len(r.body) <= 2000 + 16 for r in out)
    parsed = [collector_pb2.PostSpansRequest.FromString(r.body) for r in out]
    assert sum(len(p.batch.spans) for p in parsed) == 50 == sum(r.span_count for r in out)
    assert all(p.batch.process.service_name == "big" for p in parsed)


def test_empty_batch_sends_nothing() -> None:
    assert requests_of(ExportTraceServiceRequest()) == []


VARINT_CASES = (0, 1, 127, 128, 300, 16383, 16384, 2**31, 2**63 - 1, 2**63, 2**64 - 1)


def test_varint_matches_protobuf() -> None:
    for value in VARINT_CASES:
        encoded = timestamp_pb2.Timestamp(seconds=value if value < 2**63 else value - 2**64)
        assert encoded.SerializeToString() == (b"\x08" + varint(value) if value else b"")


def test_rows_builder() -> None:
    """Rows (numpy) writes the same bytes as the scalar encoder, row by row, with pieces
    left out where `rows` is False."""
    values = np.array(VARINT_CASES, dtype=np.uint64)
    n = len(values)
    odd = np.arange(n) % 2 == 1
    ids = np.arange(n * 2, dtype=np.uint8).reshape(n, 2)
    codes = np.arange(n) % 3
    table = [b"", b"a", b"xyz"]
    built = (
        wire.Rows(n)
        .const(b"\x0a")
        .varint(values)
        .fixed(ids, odd)
        .choose(table, codes)
        .varint(values, odd)
        .build()
    )
    expected = [
        b"\x0a"
        + varint(int(v))
        + (bytes(ids[i]) if odd[i] else b"")
        + table[codes[i]]
        + (varint(int(v)) if odd[i] else b"")
        for i, v in enumerate(VARINT_CASES)
    ]
    assert built.to_pylist() == expected


# --- .proto sources and generated modules ----------------------------------------------------
# Jaeger's IDL (jaegertracing/jaeger-idl proto/api_v2): message → {field: (number, type)}
IDL = {
    "KeyValue": {
        "key": (1, "string"), "v_type": (2, "enum"), "v_str": (3, "string"),
        "v_bool": (4, "bool"), "v_int64": (5, "int64"), "v_float64": (6, "double"),
        "v_binary": (7, "bytes"),
    },
    "Log": {"timestamp": (1, "message"), "fields": (2, "message")},
    "SpanRef": {"trace_id": (1, "bytes"), "span_id": (2, "bytes"), "ref_type": (3, "enum")},
    "Process": {"service_name": (1, "string"), "tags": (2, "message")},
    "Span": {
        "trace_id": (1, "bytes"), "span_id": (2, "bytes"), "operation_name": (3, "string"),
        "references": (4, "message"), "flags": (5, "uint32"), "start_time": (6, "message"),
        "duration": (7, "message"), "tags": (8, "message"), "logs": (9, "message"),
        "process": (10, "message"), "process_id": (11, "string"), "warnings": (12, "string"),
    },
    "Batch": {"spans": (1, "message"), "process": (2, "message")},
    "DependencyLink": {
        "parent": (1, "string"), "child": (2, "string"), "call_count": (3, "uint64"),
        "source": (4, "string"),
    },
}  # fmt: skip
TYPE_NAMES = {
    1: "double", 3: "int64", 4: "uint64", 8: "bool", 9: "string", 11: "message", 12: "bytes",
    13: "uint32", 14: "enum",
}  # fmt: skip


def test_proto_matches_jaeger_idl() -> None:
    assert model_pb2.DESCRIPTOR.package == "jaeger.api_v2"
    for message, fields in IDL.items():
        descriptor = model_pb2.DESCRIPTOR.message_types_by_name[message]
        got = {f.name: (f.number, TYPE_NAMES[f.type]) for f in descriptor.fields}
        assert got == fields, message
    assert {v.name: v.number for v in model_pb2.ValueType.DESCRIPTOR.values} == {
        "STRING": 0, "BOOL": 1, "INT64": 2, "FLOAT64": 3, "BINARY": 4,
    }  # fmt: skip
    assert model_pb2.Span.DESCRIPTOR.fields_by_name["start_time"].message_type.full_name == (
        "google.protobuf.Timestamp"
    )
    assert model_pb2.Span.DESCRIPTOR.fields_by_name["duration"].message_type.full_name == (
        "google.protobuf.Duration"
    )
    service = collector_pb2.DESCRIPTOR.services_by_name["CollectorService"]
    method = service.methods_by_name["PostSpans"]
    assert method.full_name == "jaeger.api_v2.CollectorService.PostSpans"
    assert method.input_type.fields_by_name["batch"].number == 1
    assert hasattr(collector_pb2_grpc, "CollectorServiceStub")


def test_generated_modules_are_up_to_date(tmp_path) -> None:
    written = generate.generate(tmp_path)
    assert written
    for path in generate.generated_files():
        committed = generate.ROOT / path
        assert committed.exists(), f"{path} is not committed: run python -m proto.generate"
        assert filecmp.cmp(committed, tmp_path / path, shallow=False), (
            f"{path} is stale: run python -m proto.generate"
        )


# --- config and registration -----------------------------------------------------------------
def test_factory_registered_for_traces_only() -> None:
    factory = lookup("exporter", "jaeger")
    assert factory is not None
    assert factory.signals == frozenset({"traces"})


def test_config_defaults_and_protocols() -> None:
    grpc_cfg = JaegerConfig.model_validate({"endpoint": "jaeger:14250"})
    assert grpc_cfg.protocol == "grpc"
    assert grpc_cfg.compression == "none"
    assert grpc_cfg.timeout == 5.0
    assert grpc_cfg.sending_queue.enabled and grpc_cfg.retry_on_failure.enabled
    otlp_cfg = JaegerConfig.model_validate(
        {
            "endpoint": "jaeger:4317",
            "protocol": "otlp",
            "tls": {"insecure": True},
            "headers": {"x-tenant": "a"},
            "timeout": "2s",
            "sending_queue": {"num_consumers": 2, "queue_size": 10},
            "retry_on_failure": {"initial_interval": "1s"},
        }
    )
    assert otlp_cfg.compression == "gzip"
    assert otlp_cfg.timeout == 2.0 and otlp_cfg.tls.insecure
    assert otlp_cfg.sending_queue.queue_size == 10
    assert otlp_cfg.retry_on_failure.initial_interval == 1.0
    assert (
        JaegerConfig.model_validate({"endpoint": "j:14250", "compression": "gzip"}).compression
        == "gzip"
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({}, "endpoint"),
        ({"endpoint": "j:14250", "protocol": "thrift_http"}, "protocol"),
        ({"endpoint": "j:14250", "bogus": 1}, "bogus"),
    ],
)
def test_config_errors(raw: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        JaegerConfig.model_validate(raw)


# --- property: the columnar encoder against a per-message reference --------------------------
def _int64(value: int) -> int:
    """A uint64 read as Go's int64(...) conversion does."""
    return value - 2**64 if value >= 2**63 else value


def _ref_tag(key: str, value) -> model_pb2.KeyValue:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return s(key, value.string_value)
    if kind == "bool_value":
        return KV(key=key, v_type=model_pb2.BOOL, v_bool=value.bool_value)
    if kind == "int_value":
        return i64(key, value.int_value)
    if kind == "double_value":
        return KV(key=key, v_type=model_pb2.FLOAT64, v_float64=value.double_value)
    if kind == "bytes_value":
        return KV(key=key, v_type=model_pb2.BINARY, v_binary=value.bytes_value)
    if kind in ("array_value", "kvlist_value"):
        return s(key, as_string(value))
    return KV(key=key)


def _ref_time(nanos: int) -> timestamp_pb2.Timestamp:
    seconds, rest = divmod(_int64(nanos), 10**9)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest)


def _ref_duration(start: int, end: int) -> duration_pb2.Duration:
    delta = max(-(2**63), min(2**63 - 1, _int64(end) - _int64(start)))  # Go's time.Sub
    sign = -1 if delta < 0 else 1
    seconds, rest = divmod(abs(delta), 10**9)
    return duration_pb2.Duration(seconds=sign * seconds, nanos=sign * rest)


def _ref_span(span: Span, scope) -> model_pb2.Span:
    trace_id = span.trace_id or bytes(16)
    refs = []
    has_parent = span.parent_span_id and any(span.parent_span_id)
    if has_parent:
        refs.append(model_pb2.SpanRef(trace_id=trace_id, span_id=span.parent_span_id))
    for link in span.links:
        child_of = any(
            a.key == "opentracing.ref_type" and a.value.string_value == "child_of"
            for a in link.attributes
        )
        ref = model_pb2.SpanRef(
            trace_id=link.trace_id or bytes(16),
            span_id=link.span_id or bytes(8),
            ref_type=model_pb2.CHILD_OF if child_of else model_pb2.FOLLOWS_FROM,
        )
        if has_parent and ref.trace_id == trace_id and ref.span_id == span.parent_span_id:
            refs[0].ref_type = ref.ref_type
            continue
        refs.append(ref)
    tags = []
    if scope.name:
        tags.append(s("otel.scope.name", scope.name))
    if scope.version:
        tags.append(s("otel.scope.version", scope.version))
    tags += [_ref_tag(a.key, a.value) for a in span.attributes]
    kinds = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
    if span.kind in kinds:
        tags.append(s("span.kind", kinds[span.kind]))
    if span.status.code == Status.STATUS_CODE_OK:
        tags.append(s("otel.status_code", "OK"))
    if span.status.code == Status.STATUS_CODE_ERROR:
        tags.append(s("otel.status_code", "ERROR"))
        tags.append(KV(key="error", v_type=model_pb2.BOOL, v_bool=True))
    if span.status.message:
        tags.append(s("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(s("w3c.tracestate", span.trace_state))
    for key, count in (
        ("otel.dropped_attributes_count", span.dropped_attributes_count),
        ("otel.dropped_events_count", span.dropped_events_count),
        ("otel.dropped_links_count", span.dropped_links_count),
    ):
        if count:
            tags.append(i64(key, count))
    logs = []
    for event in span.events:
        fields = []
        if event.name and not any(a.key == "event" for a in event.attributes):
            fields.append(s("event", event.name))
        fields += [_ref_tag(a.key, a.value) for a in event.attributes]
        if event.dropped_attributes_count:
            fields.append(i64("otel.dropped_attributes_count", event.dropped_attributes_count))
        logs.append(model_pb2.Log(timestamp=_ref_time(event.time_unix_nano), fields=fields))
    return model_pb2.Span(
        trace_id=trace_id,
        span_id=span.span_id or bytes(8),
        operation_name=span.name,
        references=refs,
        flags=span.flags & 1,
        start_time=_ref_time(span.start_time_unix_nano),
        duration=_ref_duration(span.start_time_unix_nano, span.end_time_unix_nano),
        tags=tags,
        logs=logs,
    )


def _ref_process(resource: Resource) -> model_pb2.Process:
    if not resource.attributes:
        return model_pb2.Process(service_name="OTLPResourceNoServiceName")
    names = [a.value for a in resource.attributes if a.key == "service.name"]
    service = names[0].string_value if names else ""
    tags = [_ref_tag(a.key, a.value) for a in resource.attributes if a.key != "service.name"]
    return model_pb2.Process(service_name=service, tags=tags)


def reference(req: ExportTraceServiceRequest) -> list[model_pb2.Batch]:
    out = []
    for rs in req.resource_spans:
        spans = [_ref_span(span, ss.scope) for ss in rs.scope_spans for span in ss.spans]
        if spans:
            out.append(model_pb2.Batch(spans=spans, process=_ref_process(rs.resource)))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS["traces"])
def test_columnar_encoding_matches_reference(req: ExportTraceServiceRequest) -> None:
    got = [r.batch for r in requests_of(req)]
    assert got == reference(req)


def _collector_config(exporter: dict, signal: str = "traces") -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}},
        "exporters": {"jaeger": exporter},
        "service": {
            "pipelines": {signal: {"receivers": ["otlp"], "exporters": ["jaeger"]}},
        },
    }


def test_collector_config_loads() -> None:
    config = validate(
        _collector_config({"endpoint": "jaeger:14250", "tls": {"insecure": True}, "timeout": "3s"})
    )
    (exporter,) = config.components["exporter"].values()
    assert isinstance(exporter, JaegerConfig) and exporter.timeout == 3.0


def test_collector_config_errors() -> None:
    with pytest.raises(ConfigError, match="does not support metrics"):
        validate(_collector_config({"endpoint": "jaeger:14250"}, "metrics"))
    with pytest.raises(ConfigError, match="protocol"):
        validate(_collector_config({"endpoint": "jaeger:14250", "protocol": "http"}))
