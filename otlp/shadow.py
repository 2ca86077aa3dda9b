"""Wire-compatible "shadow" variants of the OTLP request messages, used by the Python decoder.

(Requests normally take the compiled decoder ``otlp._wire``; the Python decoder is its reference
and handles what it defers. The encoder builds its requests with these classes too.)

Touching each attribute through upb's Python objects costs about a microsecond per key-value
(a wrapper object for the KeyValue, another for the AnyValue, then the field reads). The
shadow messages declare every ``repeated KeyValue`` attribute list, ``LogRecord.body`` and
``Span.status`` as ``bytes`` instead: a length-delimited message and a ``bytes`` field look
the same on the wire, so upb hands us each KeyValue as raw bytes and ``otlp.anyvalue`` parses
all of a request's attributes at once with numpy.

Everything else keeps its real type, so upb still validates UTF-8 in names and the request
structure. The shadow classes live in their own descriptor pool and never leak out of the
codec: callers only see the real ``opentelemetry.proto`` messages and Arrow batches.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp.batch import LOGS_SIGNAL, METRICS_SIGNAL, TRACES

_KEYVALUE = ".opentelemetry.proto.common.v1.KeyValue"
# AnyValue's own containers stay real messages: nested values are rare and parsed by upb.
_KEEP_REAL = {"AnyValue", "ArrayValue", "KeyValueList", "KeyValue"}

_F = descriptor_pb2.FieldDescriptorProto


def _to_bytes(field: Any) -> None:
    field.type = _F.TYPE_BYTES
    field.ClearField("type_name")


def _rewrite(message: Any) -> None:
    for field in message.field:
        if field.type_name == _KEYVALUE and message.name not in _KEEP_REAL:
            _to_bytes(field)
        elif message.name == "LogRecord" and field.name == "body":
            # proto3 `optional` keeps presence: an absent body (null) differs from an empty one
            _to_bytes(field)
            field.proto3_optional = True
            field.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name="_body")
        elif message.name == "Span" and field.name == "status":
            _to_bytes(field)
    for nested in message.nested_type:
        _rewrite(nested)


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    modules: list[ModuleType] = [
        common_pb2,
        resource_pb2,
        trace_pb2,
        metrics_pb2,
        logs_pb2,
        trace_service_pb2,
        metrics_service_pb2,
        logs_service_pb2,
    ]
    for module in modules:
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        for message in proto.message_type:
            _rewrite(message)
        pool.Add(proto)
    return pool


_POOL: Final = _build_pool()


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(name))


REQUEST: Final[dict[str, Any]] = {
    TRACES: _cls("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"),
    METRICS_SIGNAL: _cls("opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"),
    LOGS_SIGNAL: _cls("opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"),
}

REAL_REQUEST: Final[dict[str, Any]] = {
    TRACES: trace_service_pb2.ExportTraceServiceRequest,
    METRICS_SIGNAL: metrics_service_pb2.ExportMetricsServiceRequest,
    LOGS_SIGNAL: logs_service_pb2.ExportLogsServiceRequest,
}

# message classes the encoder builds directly
Resource: Final = _cls("opentelemetry.proto.resource.v1.Resource")
Scope: Final = _cls("opentelemetry.proto.common.v1.InstrumentationScope")
EntityRef: Final = _cls("opentelemetry.proto.common.v1.EntityRef")
Span: Final = _cls("opentelemetry.proto.trace.v1.Span")
Event: Final = _cls("opentelemetry.proto.trace.v1.Span.Event")
Link: Final = _cls("opentelemetry.proto.trace.v1.Span.Link")
LogRecord: Final = _cls("opentelemetry.proto.logs.v1.LogRecord")
Metric: Final = _cls("opentelemetry.proto.metrics.v1.Metric")
NumberDataPoint: Final = _cls("opentelemetry.proto.metrics.v1.NumberDataPoint")
HistogramDataPoint: Final = _cls("opentelemetry.proto.metrics.v1.HistogramDataPoint")
ExponentialHistogramDataPoint: Final = _cls(
    "opentelemetry.proto.metrics.v1.ExponentialHistogramDataPoint"
)
SummaryDataPoint: Final = _cls("opentelemetry.proto.metrics.v1.SummaryDataPoint")
Exemplar: Final = _cls("opentelemetry.proto.metrics.v1.Exemplar")
