"""OTLP/JSON: the spec's deviations from proto3 JSON, leniency, refusals, and responses."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from otlp_samples import SAMPLES, assert_batches_equal

from otlp import batch as b
from otlp.decode import decode_json, decode_protobuf
from otlp.errors import InvalidRequestError
from otlp.jsonpb import message_to_dict, message_to_json, parse_request

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"


def traces_json(span: dict[str, Any], **top: Any) -> bytes:
    return orjson.dumps(
        {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": [span]}]}], **top}
    )


def one_span(body: bytes) -> dict[str, Any]:
    return decode_json("traces", body).tables["spans"].to_pylist()[0]


def test_hex_ids_enum_ints_and_strings_for_int64() -> None:
    span = one_span(
        traces_json(
            {
                "traceId": TRACE_HEX,
                "spanId": SPAN_HEX,
                "parentSpanId": "",
                "name": "x",
                "kind": 2,
                "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": 1544712661000000000,
                "status": {"code": 2, "message": "m"},
                "attributes": [
                    {"key": "i", "value": {"intValue": "9007199254740993"}},
                    {"key": "j", "value": {"intValue": 12}},
                    {"key": "y", "value": {"bytesValue": "AQI="}},
                ],
            }
        )
    )
    assert span["trace_id"].hex() == TRACE_HEX and span["span_id"].hex() == SPAN_HEX
    assert span["parent_span_id"] is None
    assert span["kind"] == 2 and span["status_code"] == 2
    assert span["start_time_unix_nano"] == 1544712660000000000
    assert span["end_time_unix_nano"] == 1544712661000000000
    assert [a["int"] for a in span["attributes"][:2]] == [9007199254740993, 12]
    assert span["attributes"][2]["bytes"] == b"\x01\x02"  # AnyValue bytes stay base64


def test_enum_names_and_original_field_names() -> None:
    body = orjson.dumps(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": TRACE_HEX,
                                    "span_id": SPAN_HEX,
                                    "kind": "SPAN_KIND_CLIENT",
                                    "status": {"code": "STATUS_CODE_OK"},
                                    "start_time_unix_nano": "5",
                                    "links": [{"trace_id": TRACE_HEX, "span_id": SPAN_HEX}],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    span = one_span(body)
    assert span["kind"] == 3 and span["status_code"] == 1 and span["start_time_unix_nano"] == 5
    assert span["links"][0]["trace_id"].hex() == TRACE_HEX


def test_unknown_fields_are_ignored() -> None:
    span = one_span(
        traces_json(
            {
                "traceId": TRACE_HEX,
                "name": "x",
                "futureField": {"nested": [1, 2, {"deep": True}]},
                "attributes": [
                    {"key": "k", "value": {"stringValue": "v", "newKind": 1}, "extra": 1}
                ],
            },
            somethingNew=42,
        )
    )
    assert span["name"] == "x" and span["attributes"][0]["str"] == "v"


def test_logs_and_metrics_ids() -> None:
    logs = orjson.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "traceId": TRACE_HEX,
                                    "spanId": SPAN_HEX,
                                    "severityNumber": "SEVERITY_NUMBER_WARN",
                                    "body": {
                                        "kvlistValue": {
                                            "values": [{"key": "a", "value": {"intValue": "1"}}]
                                        }
                                    },
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    record = decode_json("logs", logs).tables["logs"].to_pylist()[0]
    assert record["trace_id"].hex() == TRACE_HEX and record["span_id"].hex() == SPAN_HEX
    assert record["severity_number"] == 13
    assert (record["body"]["type"], record["body"]["str"]) == (b.V_KVLIST, '{"a":1}')
    point = {
        "asDouble": 1.0,
        "exemplars": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX, "asInt": "3"}],
    }
    metrics = orjson.dumps(
        {
            "resourceMetrics": [
                {"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": [point]}}]}]}
            ]
        }
    )
    ex = decode_json("metrics", metrics).tables["gauge"].to_pylist()[0]["exemplars"][0]
    assert ex["trace_id"].hex() == TRACE_HEX and ex["as_int"] == 3


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"x"',
        b'{"resourceSpans": 5}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}',
        traces_json({"kind": "NOT_A_KIND_AT_ALL", "name": 5}),
        traces_json({"traceId": "AAECAwQFBgcICQoLDA0ODw=="}),  # base64 is not OTLP/JSON
        traces_json({"traceId": "abc"}),  # odd length
        traces_json({"traceId": "00" * 15}),  # wrong size
        traces_json({"spanId": "zz" * 8}),
        traces_json({"spanId": "0102 0304 0506 0708"}),  # whitespace inside hex
        traces_json({"name": {"not": "a string"}}),
        traces_json({"startTimeUnixNano": -1}),  # out of range for fixed64
        traces_json({"droppedAttributesCount": True}),
        traces_json({"attributes": {"key": "k"}}),  # object where an array belongs
        traces_json({"attributes": [{"key": "k", "value": {"intValue": "1.5"}}]}),
        traces_json({"attributes": [{"key": "k", "value": {"bytesValue": "!!"}}]}),
        traces_json({"startTimeUnixNano": "soon"}),
        b"\xff\xfe",
    ],
)
def test_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        decode_json("traces", body)


def test_response_json() -> None:
    response = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=5, error_message="dropped")
    )
    assert json.loads(message_to_json(response)) == {
        "partialSuccess": {"rejectedSpans": "5", "errorMessage": "dropped"}
    }
    assert json.loads(message_to_json(ExportTraceServiceResponse())) == {}
    assert json.loads(message_to_json(RpcStatus(code=3, message="bad"))) == {
        "code": 3,
        "message": "bad",
    }


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_message_to_json_roundtrip(signal: str) -> None:
    request = SAMPLES[signal]()
    body = message_to_json(request)
    assert parse_request(signal, body) == request
    assert_batches_equal(
        decode_json(signal, body), decode_protobuf(signal, request.SerializeToString())
    )


def test_message_to_json_writes_hex_ids_and_int_enums() -> None:
    data = message_to_dict(SAMPLES["traces"]())
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == bytes(range(1, 17)).hex()
    assert span["links"][0]["spanId"] == bytes(range(21, 29)).hex()
    assert span["kind"] == 2 and span["status"]["code"] == 2


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[Any] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_real_sdk_json_exporter_payload() -> None:
    """What opentelemetry-exporter-otlp-json-http posts for real SDK spans."""
    collect = _Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": "json-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(collect))
    tracer = provider.get_tracer("t", "0.1")
    with tracer.start_as_current_span("parent") as parent:
        with tracer.start_as_current_span(
            "child", attributes={"n": 3, "tags": ["a", "b"]}
        ) as child:
            child.add_event("ev", {"ok": True})
    body = encode_spans(collect.spans).to_json().encode()
    batch = decode_json("traces", body)
    assert batch.resources.column("service_name").to_pylist() == ["json-svc"]
    spans = {s["name"]: s for s in batch.tables["spans"].to_pylist()}
    ctx = child.get_span_context()
    assert spans["child"]["trace_id"] == ctx.trace_id.to_bytes(16, "big")
    assert spans["child"]["span_id"] == ctx.span_id.to_bytes(8, "big")
    assert spans["child"]["parent_span_id"] == parent.get_span_context().span_id.to_bytes(8, "big")
    attrs = {a["key"]: a for a in spans["child"]["attributes"]}
    assert attrs["n"]["int"] == 3 and attrs["tags"]["str"] == '["a","b"]'
    assert spans["child"]["events"][0]["name"] == "ev"
    assert batch.scopes.column("name").to_pylist() == ["t"]
