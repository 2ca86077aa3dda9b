"""In-process harness for the security tests: the otlp receiver with real auth extensions
(built from their config like the service does) in front of a collecting consumer, and raw
gRPC / HTTP clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp import registry
from otlp.batch import Batch
from otlp.component import EXTENSION, RECEIVER, ComponentID, CreateSettings
from otlp.telemetry import Telemetry
from receivers.otlp import factory
from receivers.otlp.config import OTLPReceiverConfig
from receivers.otlp.receiver import OTLPReceiver

SIGNALS = ("traces", "metrics", "logs")
SERVICES = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
PB = {"content-type": "application/x-protobuf"}


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)

    def items(self) -> int:
        return sum(b.item_count() for b in self.batches)


@dataclass
class Host:
    telemetry: Telemetry = field(default_factory=Telemetry)
    extensions: dict[str, Any] = field(default_factory=dict)

    def extension(self, component_id: str) -> Any:
        return self.extensions.get(component_id)


@dataclass
class Running:
    receiver: OTLPReceiver
    sinks: dict[str, Sink]
    host: Host

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.receiver.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.receiver.grpc_port}"

    def metric(self, name: str, **labels: str) -> float:
        return self.host.telemetry.value(name, **labels)


async def build_extensions(host: Host, extensions: dict[str, dict[str, Any]]) -> None:
    for name, raw in extensions.items():
        cid = ComponentID.parse(name)
        ext_factory = registry.lookup(EXTENSION, cid.type)
        assert ext_factory is not None, name
        settings = CreateSettings(id=cid, kind=EXTENSION, telemetry=host.telemetry)
        ext = ext_factory.create(settings, ext_factory.config_model.model_validate(raw))
        await ext.start(host)
        host.extensions[name] = ext


@contextlib.asynccontextmanager
async def running(
    receiver: dict[str, Any], extensions: dict[str, dict[str, Any]] | None = None
) -> AsyncIterator[Running]:
    host = Host()
    await build_extensions(host, extensions or {})
    config = OTLPReceiverConfig.model_validate(receiver)
    settings = CreateSettings(
        id=ComponentID("otlp"), kind=RECEIVER, telemetry=host.telemetry, signals=set(SIGNALS)
    )
    rx = factory.create(settings, config)
    assert isinstance(rx, OTLPReceiver)
    sinks = {s: Sink() for s in SIGNALS}
    rx.consumers.update(sinks)
    await rx.start(host)
    try:
        yield Running(rx, sinks, host)
    finally:
        await rx.shutdown()
        for ext in host.extensions.values():
            await ext.shutdown()


def local_protocols(**extra: Any) -> dict[str, Any]:
    """Both protocols on free loopback ports, `extra` merged into each."""
    return {
        "grpc": {"endpoint": "127.0.0.1:0", **extra},
        "http": {"endpoint": "127.0.0.1:0", **extra},
    }


def kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def traces(spans: int = 1, resource: dict[str, str] | None = None) -> bytes:
    attrs = [kv(k, v) for k, v in (resource or {"service.name": "svc"}).items()]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=attrs),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        spans=[
                            trace_pb2.Span(
                                trace_id=bytes(range(16)),
                                span_id=(i + 1).to_bytes(8, "big"),
                                name="op",
                                start_time_unix_nano=1,
                                end_time_unix_nano=2,
                            )
                            for i in range(spans)
                        ]
                    )
                ],
            )
        ]
    ).SerializeToString()


def logs(records: int = 1) -> bytes:
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource_pb2.Resource(attributes=[kv("service.name", "svc")]),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        log_records=[
                            logs_pb2.LogRecord(
                                time_unix_nano=1, body=common_pb2.AnyValue(string_value="hi")
                            )
                            for _ in range(records)
                        ]
                    )
                ],
            )
        ]
    ).SerializeToString()


async def grpc_call(
    target: str,
    signal: str,
    body: bytes,
    metadata: tuple[tuple[str, str], ...] = (),
    credentials: grpc.ChannelCredentials | None = None,
    options: tuple[tuple[str, Any], ...] = (),
) -> grpc.StatusCode:
    """The status code of one Export call (OK on success)."""
    if credentials is None:
        channel = grpc.aio.insecure_channel(target, options=options)
    else:
        channel = grpc.aio.secure_channel(target, credentials, options=options)
    async with channel:
        try:
            await channel.unary_unary(SERVICES[signal])(body, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def resource_attributes(batch: Batch) -> list[dict[str, Any]]:
    return [
        {kv["key"]: kv["str"] for kv in attrs}
        for attrs in batch.resources.column("attributes").to_pylist()
    ]
