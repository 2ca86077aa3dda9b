"""The `jaeger` exporter's api_v2 client against a stand-in CollectorService (the generated
servicer on a real grpc server): what the real Jaeger in test_exporter_jaeger.py cannot be
made to do — answer with chosen error codes, demand client certificates, show the metadata it
received."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from exporters.jaeger import JaegerConfig, JaegerExporter
from otlp.decode import decode_protobuf
from otlp.errors import PermanentError, RetryableError
from otlp.telemetry import Telemetry
from proto.jaeger.api_v2 import collector_pb2, collector_pb2_grpc
from tests.certs import PKI, make_pki
from tests.otlp_samples import kv


@dataclass
class Backend:
    port: int
    received: list[collector_pb2.PostSpansRequest] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    # status codes to answer with, per service name (absent: OK)
    fail: dict[str, grpc.StatusCode] = field(default_factory=dict)


class Servicer(collector_pb2_grpc.CollectorServiceServicer):
    def __init__(self, backend_ref: list[Backend]) -> None:
        self.backend_ref = backend_ref

    async def PostSpans(self, request, context):
        backend = self.backend_ref[0]
        backend.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        code = backend.fail.get(request.batch.process.service_name)
        if code is not None:
            await context.abort(code, "refused by the test")
        backend.received.append(request)
        return collector_pb2.PostSpansResponse()


async def serve(credentials: grpc.ServerCredentials | None = None) -> tuple[Any, Backend]:
    server = grpc.aio.server()
    ref: list[Backend] = []
    collector_pb2_grpc.add_CollectorServiceServicer_to_server(Servicer(ref), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    ref.append(Backend(port))
    await server.start()
    return server, ref[0]


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server, state = await serve()
    yield state
    await server.stop(None)


def two_resources() -> ExportTraceServiceRequest:
    def rs(service: str, count: int) -> ResourceSpans:
        spans = [
            Span(trace_id=bytes(range(1, 17)), span_id=bytes([n + 1] * 8), name=f"{service}-{n}")
            for n in range(count)
        ]
        return ResourceSpans(
            resource=Resource(attributes=[kv("service.name", service)]),
            scope_spans=[ScopeSpans(spans=spans)],
        )

    return ExportTraceServiceRequest(resource_spans=[rs("a", 2), rs("b", 3)])


async def export(settings: dict[str, Any], req: ExportTraceServiceRequest) -> None:
    config = JaegerConfig.model_validate({"timeout": "3s", **settings})
    exporter = JaegerExporter("jaeger", config, Telemetry())
    await exporter.start()
    try:
        await exporter.export(decode_protobuf("traces", req.SerializeToString()))
    finally:
        await exporter.shutdown()


async def test_one_request_per_resource_headers_gzip(backend: Backend) -> None:
    await export(
        {
            "endpoint": f"127.0.0.1:{backend.port}",
            "tls": {"insecure": True},
            "headers": {"X-Tenant": "acme"},
            "compression": "gzip",
        },
        two_resources(),
    )
    got = sorted(
        (r.batch.process.service_name, [s.operation_name for s in r.batch.spans])
        for r in backend.received
    )
    assert got == [("a", ["a-0", "a-1"]), ("b", ["b-0", "b-1", "b-2"])]
    # (grpc servers decompress before the handler and hide grpc-encoding: a gzip request is
    # checked by it arriving intact)
    assert all(m.get("x-tenant") == "acme" for m in backend.metadata)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, RetryableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, RetryableError),
        (grpc.StatusCode.INVALID_ARGUMENT, PermanentError),
    ],
)
async def test_errors_are_typed(backend: Backend, code: grpc.StatusCode, error: type) -> None:
    backend.fail["b"] = code
    with pytest.raises(error) as caught:
        await export({"endpoint": f"http://127.0.0.1:{backend.port}"}, two_resources())
    # the other resource's request went through
    assert [r.batch.process.service_name for r in backend.received] == ["a"]
    if error is PermanentError:
        # only the refused resource's spans are counted as rejected
        assert caught.value.rejected == 3


async def test_nothing_listening_is_retryable() -> None:
    server, state = await serve()
    port = state.port
    await server.stop(None)
    with pytest.raises(RetryableError):
        await export({"endpoint": f"127.0.0.1:{port}", "tls": {"insecure": True}}, two_resources())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"), ["jaeger.test", "127.0.0.1"])


async def test_mutual_tls(pki: PKI) -> None:
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key.read_bytes(), pki.server.cert.read_bytes())],
        root_certificates=pki.ca.cert.read_bytes(),
        require_client_auth=True,
    )
    server, state = await serve(credentials)
    try:
        tls = {
            "ca_file": str(pki.ca.cert),
            "cert_file": str(pki.client.cert),
            "key_file": str(pki.client.key),
            "server_name_override": "jaeger.test",
        }
        await export({"endpoint": f"127.0.0.1:{state.port}", "tls": tls}, two_resources())
        assert len(state.received) == 2
        # without the client certificate the server refuses the handshake
        with pytest.raises(RetryableError):
            await export(
                {"endpoint": f"127.0.0.1:{state.port}", "tls": {"ca_file": tls["ca_file"]}},
                two_resources(),
            )
        assert len(state.received) == 2
    finally:
        await server.stop(None)
