"""TLS on the otlp receiver and exporters with certificates made by `cryptography` for the
test: the OTel Python SDK exporters over TLS and mutual TLS (gRPC and HTTP), certificate
rotation picked up through reload_interval, and the exporter-side settings."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import requests
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from exporters.otlp import OTLPGrpcConfig
from exporters.otlphttp import OTLPHttpConfig, OTLPHttpExporter
from otlp import decode
from otlp.errors import ConfigError
from otlp.telemetry import Telemetry
from receivers.otlp.config import OTLPReceiverConfig
from tests.certs import PKI, make_ca, make_pki
from tests.security_support import PB, grpc_call, running, traces


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _spans() -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("tls").start_as_current_span("secured"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _server_tls(pki: PKI, mutual: bool) -> dict[str, str]:
    tls = {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key)}
    if mutual:
        tls["client_ca_file"] = str(pki.ca.cert)
    return tls


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
async def test_sdk_exporters_connect_with_tls(pki: PKI, mutual: bool) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    tls = _server_tls(pki, mutual)
    protocols = {
        "grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
        "http": {"endpoint": "127.0.0.1:0", "tls": tls},
    }
    spans = _spans()
    async with running({"protocols": protocols}) as r:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pki.ca.cert.read_bytes(),
            private_key=pki.client.key.read_bytes() if mutual else None,
            certificate_chain=pki.client.cert.read_bytes() if mutual else None,
        )
        grpc_exporter = GrpcExporter(
            endpoint=r.grpc_target, credentials=credentials, insecure=False, timeout=5
        )
        client = {"client_certificate_file": str(pki.client.cert)} if mutual else {}
        if mutual:
            client["client_key_file"] = str(pki.client.key)
        # requests lets REQUESTS_CA_BUNDLE (set on these machines) override a session's own
        # CA file (psf/requests#3829): the exporter's certificate_file needs trust_env off
        session = requests.Session()
        session.trust_env = False
        http_exporter = HttpExporter(
            endpoint=f"{r.https}/v1/traces",
            certificate_file=str(pki.ca.cert),
            timeout=5,
            session=session,
            **client,
        )
        for exporter in (grpc_exporter, http_exporter):
            try:
                result = await asyncio.to_thread(exporter.export, spans)
            finally:
                exporter.shutdown()
            assert result == SpanExportResult.SUCCESS
        assert r.sinks["traces"].items() == 2


async def test_mtls_refuses_clients_without_a_certificate_then_serves(pki: PKI) -> None:
    tls = _server_tls(pki, mutual=True)
    protocols = {
        "grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
        "http": {"endpoint": "127.0.0.1:0", "tls": tls},
    }
    # a client certificate from another CA is no better than none
    other = make_ca(pki.server.cert.parent / "other", "other-ca")
    stranger = other.issue(pki.server.cert.parent / "other", "stranger", client=True)
    ca = pki.ca.cert.read_bytes()
    async with running({"protocols": protocols}) as r:
        for key, chain in ((None, None), (stranger.key, stranger.cert)):
            creds = grpc.ssl_channel_credentials(
                root_certificates=ca,
                private_key=key.read_bytes() if key else None,
                certificate_chain=chain.read_bytes() if chain else None,
            )
            assert await grpc_call(r.grpc_target, "traces", traces(), credentials=creds) == (
                grpc.StatusCode.UNAVAILABLE
            )
            ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
            if key and chain:
                ctx.load_cert_chain(str(chain), str(key))
            with pytest.raises(httpx.HTTPError):
                async with httpx.AsyncClient(verify=ctx) as client:
                    await client.post(f"{r.https}/v1/traces", content=traces(), headers=PB)
        good = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=pki.client.key.read_bytes(),
            certificate_chain=pki.client.cert.read_bytes(),
        )
        assert await grpc_call(r.grpc_target, "traces", traces(), credentials=good) == (
            grpc.StatusCode.OK
        )
        assert r.sinks["traces"].items() == 1


def _touch_later(*paths: Path) -> None:
    """Make sure a rewritten file's modification time differs from the one loaded."""
    later = time.time() + 5
    for path in paths:
        os.utime(path, (later, later))


async def test_certificate_rotation_is_picked_up(tmp_path: Path) -> None:
    """The server certificate is replaced on disk by one from a new CA: new connections get
    it (a client trusting only the new CA succeeds), without a restart."""
    old = make_ca(tmp_path / "old", "old-ca")
    new = make_ca(tmp_path / "new", "new-ca")
    live = tmp_path / "live"
    live.mkdir()
    first = old.issue(tmp_path / "old", "server")
    cert, key = live / "server.crt", live / "server.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    tls = {"cert_file": str(cert), "key_file": str(key), "reload_interval": "10ms"}
    protocols = {
        "grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
        "http": {"endpoint": "127.0.0.1:0", "tls": tls},
    }

    def grpc_creds(ca: Path) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())

    async def http_ok(ca: Path) -> bool:
        try:
            async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca))) as c:
                resp = await c.post(f"{r.https}/v1/traces", content=traces(), headers=PB)
                return resp.status_code == 200
        except httpx.HTTPError:
            return False

    async with running({"protocols": protocols}) as r:
        assert await http_ok(old.cert)
        assert not await http_ok(new.cert)
        # grpc channels are not reused across calls here, so each call is a new handshake
        assert await grpc_call(
            r.grpc_target, "traces", traces(), credentials=grpc_creds(old.cert)
        ) == (grpc.StatusCode.OK)

        second = new.issue(tmp_path / "new", "server")
        cert.write_bytes(second.cert.read_bytes())
        key.write_bytes(second.key.read_bytes())
        _touch_later(cert, key)

        deadline = time.monotonic() + 20
        while not await http_ok(new.cert):
            assert time.monotonic() < deadline, "HTTP never served the rotated certificate"
            await asyncio.sleep(0.05)
        assert not await http_ok(old.cert)
        while (
            await grpc_call(r.grpc_target, "traces", traces(), credentials=grpc_creds(new.cert))
            != grpc.StatusCode.OK
        ):
            assert time.monotonic() < deadline, "gRPC never served the rotated certificate"
            await asyncio.sleep(0.05)


async def test_broken_rotation_keeps_the_old_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    live = tmp_path / "live.crt"
    live.write_bytes(pki.server.cert.read_bytes())
    tls = {"cert_file": str(live), "key_file": str(pki.server.key), "reload_interval": "10ms"}
    async with running({"protocols": {"http": {"endpoint": "127.0.0.1:0", "tls": tls}}}) as r:
        live.write_text("not a certificate")
        _touch_later(live)
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
        for _ in range(3):
            async with httpx.AsyncClient(verify=ctx) as client:
                resp = await client.post(f"{r.https}/v1/traces", content=traces(), headers=PB)
            assert resp.status_code == 200


def test_receiver_tls_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"min_version 1\.3"):
        OTLPReceiverConfig.model_validate(
            {
                "protocols": {
                    "grpc": {"tls": {"cert_file": "a", "key_file": "b", "min_version": "1.3"}}
                }
            }
        )
    with pytest.raises(ValueError, match="reload_interval"):
        OTLPReceiverConfig.model_validate(
            {
                "protocols": {
                    "http": {"tls": {"cert_file": "a", "key_file": "b", "reload_interval": "x"}}
                }
            }
        )


def test_grpc_exporter_refuses_insecure_skip_verify() -> None:
    with pytest.raises(ValueError, match="grpcio cannot skip"):
        OTLPGrpcConfig.model_validate(
            {"endpoint": "gateway:4317", "tls": {"insecure_skip_verify": True}}
        )
    # plaintext has nothing to verify: the flag is harmless there
    OTLPGrpcConfig.model_validate(
        {"endpoint": "gateway:4317", "tls": {"insecure": True, "insecure_skip_verify": True}}
    )
    from otlp import config as config_module

    raw = {
        "receivers": {"otlp": {"protocols": {"grpc": None}}},
        "exporters": {"otlp": {"endpoint": "gw:4317", "tls": {"insecure_skip_verify": True}}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp"]}}},
    }
    with pytest.raises(
        ConfigError, match=r"exporters\.otlp: .*tls\.insecure_skip_verify: grpcio cannot skip"
    ):
        config_module.validate(raw)


async def test_otlphttp_exporter_mtls_and_server_name_override(tmp_path: Path) -> None:
    """server_name_override: the certificate names `gateway.test` while the exporter dials an
    address; inline PEM client certificates work as files do."""
    ca = make_ca(tmp_path)
    server = ca.issue(tmp_path, "gateway", sans=["gateway.test"])
    client = ca.issue(tmp_path, "client", client=True)
    tls = {
        "cert_file": str(server.cert),
        "key_file": str(server.key),
        "client_ca_file": str(ca.cert),
    }
    async with running({"protocols": {"http": {"endpoint": "127.0.0.1:0", "tls": tls}}}) as r:

        async def export(client_tls: dict[str, Any]) -> None:
            config = OTLPHttpConfig.model_validate(
                {"endpoint": r.https, "timeout": "5s", "tls": client_tls}
            )
            exporter = OTLPHttpExporter("otlphttp", config, Telemetry())
            await exporter.start()
            try:
                await exporter.export(decode.decode_protobuf("traces", traces()))
            finally:
                await exporter.shutdown()

        base = {"ca_file": str(ca.cert), "server_name_override": "gateway.test"}
        await export({**base, "cert_file": str(client.cert), "key_file": str(client.key)})
        await export(
            {**base, "cert_pem": client.cert.read_text(), "key_pem": client.key.read_text()}
        )
        with pytest.raises(Exception, match=r"(?i)certificate|hostname|verify"):
            await export(
                {
                    "ca_file": str(ca.cert),
                    "cert_file": str(client.cert),
                    "key_file": str(client.key),
                }
            )
        assert r.sinks["traces"].items() == 2
