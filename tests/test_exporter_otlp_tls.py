"""TLS settings of the `otlp` and `otlphttp` exporters (ca_file, cert_file/key_file for mutual
TLS, server_name_override, insecure_skip_verify) against stand-in TLS servers with
certificates made by openssl for the test."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from exporters.otlp import OTLPGrpcConfig, OTLPGrpcExporter
from exporters.otlphttp import OTLPHttpConfig, OTLPHttpExporter
from otlp import decode
from otlp.errors import RetryableError
from otlp.telemetry import Telemetry
from tests.certs import PKI, make_pki
from tests.otlp_samples import sample_traces

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"), ["gateway.test", "127.0.0.1"])


@pytest.fixture
async def grpc_mtls(pki: PKI) -> AsyncIterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        received.append(request)
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
            ),
        )
    )
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key.read_bytes(), pki.server.cert.read_bytes())],
        root_certificates=pki.ca.cert.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield port, received
    await server.stop(None)


async def _grpc_export(settings: dict[str, Any]) -> None:
    exporter = OTLPGrpcExporter(
        "otlp", OTLPGrpcConfig.model_validate({"timeout": "3s", **settings}), Telemetry()
    )
    await exporter.start()
    try:
        await exporter.export(decode.decode_traces(sample_traces()))
    finally:
        await exporter.shutdown()


async def test_grpc_mutual_tls(pki: PKI, grpc_mtls: tuple[int, list[bytes]]) -> None:
    port, received = grpc_mtls
    client = {"cert_file": str(pki.client.cert), "key_file": str(pki.client.key)}
    tls = {"ca_file": str(pki.ca.cert), **client}
    await _grpc_export({"endpoint": f"127.0.0.1:{port}", "tls": tls})
    # the name the certificate was issued for, while connecting to an address
    await _grpc_export(
        {"endpoint": f"127.0.0.1:{port}", "tls": {**tls, "server_name_override": "gateway.test"}}
    )
    assert len(received) == 2
    # no client certificate: the server refuses the handshake
    with pytest.raises(RetryableError):
        await _grpc_export({"endpoint": f"127.0.0.1:{port}", "tls": {"ca_file": str(pki.ca.cert)}})
    # a name the certificate does not carry
    with pytest.raises(RetryableError):
        await _grpc_export(
            {"endpoint": f"127.0.0.1:{port}", "tls": {**tls, "server_name_override": "other.test"}}
        )
    # plaintext against a TLS server
    with pytest.raises(RetryableError):
        await _grpc_export({"endpoint": f"127.0.0.1:{port}", "tls": {"insecure": True}})
    assert len(received) == 2


@pytest.fixture
async def https_server(pki: PKI) -> AsyncIterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        received.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server.cert, pki.server.key)
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], received
    server.close()


async def _http_export(settings: dict[str, Any]) -> None:
    exporter = OTLPHttpExporter(
        "otlphttp", OTLPHttpConfig.model_validate({"timeout": "3s", **settings}), Telemetry()
    )
    await exporter.start()
    try:
        await exporter.export(decode.decode_traces(sample_traces()))
    finally:
        await exporter.shutdown()


async def test_https_ca_and_skip_verify(pki: PKI, https_server: tuple[int, list[bytes]]) -> None:
    port, received = https_server
    url = f"https://127.0.0.1:{port}"
    await _http_export({"endpoint": url, "tls": {"ca_file": str(pki.ca.cert)}})
    await _http_export({"endpoint": url, "tls": {"insecure_skip_verify": True}})
    assert len(received) == 2
    with pytest.raises(RetryableError):  # the system roots do not know the test CA
        await _http_export({"endpoint": url})
