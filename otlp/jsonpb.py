"""OTLP/JSON <-> protobuf messages.

OTLP/JSON is proto3's JSON mapping with one exception: trace and span ids are hex strings,
not base64 (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding). So we parse
with orjson, rewrite the ids to base64 where the OTLP structure puts them, and hand the dict
to ``json_format.ParseDict``, which already accepts everything else the spec asks for:
lowerCamelCase and original field names, enums as integers or names, 64-bit integers as
strings or numbers, and (with ``ignore_unknown_fields``) unknown fields. One strictness is
added: a non-object where a message belongs is refused (ParseDict would take it as empty).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from otlp.batch import LOGS_SIGNAL, METRICS_SIGNAL, TRACES
from otlp.errors import InvalidRequestError
from otlp.shadow import REAL_REQUEST

_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})*")
_ID_KEYS: Final = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_POINT_KEYS: Final = (
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "exponential_histogram",
    "summary",
)

# nesting allowed in a request (ParseDict's default); nested AnyValues count two levels each
_MAX_DEPTH: Final = 100

Convert = Callable[[str, str], str]


def _items(obj: Any, *names: str) -> Iterator[dict[str, Any]]:
    """The dict elements of the list under any of ``names``; other shapes are left to ParseDict."""
    if not isinstance(obj, dict):
        return
    for name in names:
        value = obj.get(name)
        if isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))


def _fix_ids(obj: dict[str, Any], convert: Convert) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            obj[key] = convert(key, value)


def _hex_to_base64(key: str, value: str) -> str:
    if not _HEX.fullmatch(value):
        raise InvalidRequestError(f"OTLP/JSON {key} must be a hex string, got {value[:40]!r}")
    return base64.b64encode(bytes.fromhex(value)).decode()


def _base64_to_hex(key: str, value: str) -> str:
    return base64.b64decode(value).hex()


def _walk_traces(data: dict[str, Any], convert: Convert) -> None:
    for resource in _items(data, "resourceSpans", "resource_spans"):
        for scope in _items(resource, "scopeSpans", "scope_spans"):
            for span in _items(scope, "spans"):
                _fix_ids(span, convert)
                for link in _items(span, "links"):
                    _fix_ids(link, convert)


def _walk_logs(data: dict[str, Any], convert: Convert) -> None:
    for resource in _items(data, "resourceLogs", "resource_logs"):
        for scope in _items(resource, "scopeLogs", "scope_logs"):
            for record in _items(scope, "logRecords", "log_records"):
                _fix_ids(record, convert)


def _walk_metrics(data: dict[str, Any], convert: Convert) -> None:
    for resource in _items(data, "resourceMetrics", "resource_metrics"):
        for scope in _items(resource, "scopeMetrics", "scope_metrics"):
            for metric in _items(scope, "metrics"):
                for key in _POINT_KEYS:
                    for point in _items(metric.get(key), "dataPoints", "data_points"):
                        for exemplar in _items(point, "exemplars"):
                            _fix_ids(exemplar, convert)


class _StrictParser(json_format._Parser):  # type: ignore[name-defined,misc]
    """ParseDict's parser, refusing non-objects where a message belongs.

    json_format iterates whatever it is given as a message, so a string or a list in a message
    position silently becomes an empty message; the Collector refuses such requests.
    """

    def _ConvertFieldValuePair(self, js: Any, message: Message, path: str) -> None:
        if not isinstance(js, dict):
            raise json_format.ParseError(f"{path}: expected a JSON object, got {type(js).__name__}")
        super()._ConvertFieldValuePair(js, message, path)


_WALKERS: Final[dict[str, Callable[[dict[str, Any], Convert], None]]] = {
    TRACES: _walk_traces,
    LOGS_SIGNAL: _walk_logs,
    METRICS_SIGNAL: _walk_metrics,
}
_SIGNAL_OF: Final = {cls.DESCRIPTOR.full_name: signal for signal, cls in REAL_REQUEST.items()}


def parse_request(signal: str, body: bytes | str) -> Message:
    """An OTLP/JSON Export*ServiceRequest body -> the opentelemetry.proto message."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"invalid JSON in OTLP/JSON {signal} request: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequestError(f"OTLP/JSON {signal} request must be a JSON object")
    _WALKERS[signal](data, _hex_to_base64)
    message = REAL_REQUEST[signal]()
    try:
        _StrictParser(True, None, _MAX_DEPTH).ConvertMessage(data, message, "")
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidRequestError(f"invalid OTLP/JSON {signal} request: {exc}") from exc
    return message


def message_to_dict(message: Message) -> dict[str, Any]:
    """A message as its OTLP/JSON object (hex ids, integer enums, lowerCamelCase names)."""
    data = json_format.MessageToDict(
        message, use_integers_for_enums=True, preserving_proto_field_name=False
    )
    signal = _SIGNAL_OF.get(message.DESCRIPTOR.full_name)
    if signal is not None:
        _WALKERS[signal](data, _base64_to_hex)
    return data


def message_to_json(message: Message) -> bytes:
    """A message (request, response with partial_success, google.rpc.Status) as OTLP/JSON."""
    return orjson.dumps(message_to_dict(message))
