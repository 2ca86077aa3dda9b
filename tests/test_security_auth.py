"""Authentication (bearertokenauth, oidc/JWT) and RBAC on the otlp receiver, in process with
the real extensions; JWTs are signed in the test (RS256, ES256) and keys come from a local
JWKS file or an issuer served by a tiny local HTTP server. One end-to-end run stores data in
the embedded ClickHouse to show the tenant attribute lands there."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest

from otlp import config as config_module
from otlp.errors import ConfigError
from tests.certs import SigningKey, ec_key, jwks, rsa_key
from tests.harness import Collector, base_config, free_port, ports, query_store
from tests.security_support import (
    PB,
    grpc_call,
    local_protocols,
    logs,
    resource_attributes,
    running,
    traces,
)

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED

ROLES = {
    "writer": {"signals": ["traces", "metrics", "logs"], "tenants": ["*"]},
    "logs-writer": {"signals": ["logs"], "tenants": ["*"]},
    "acme-traces": {"signals": ["traces"], "tenants": ["acme"]},
}


async def _both(r: Any, signal: str, body: bytes, header: str | None) -> tuple[Any, int]:
    """(gRPC status, HTTP status) of the same request with the same authorization value."""
    metadata = (("authorization", header),) if header is not None else ()
    code = await grpc_call(r.grpc_target, signal, body, metadata=metadata)
    headers = {**PB, **({"authorization": header} if header is not None else {})}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{r.http}/v1/{signal}", content=body, headers=headers)
    if resp.status_code == 401:
        # nothing that helps an attacker: the status text, as confighttp answers
        assert resp.content == b"Unauthorized\n"
    return code, resp.status_code


# --- bearertokenauth ---------------------------------------------------------------------


async def test_bearer_tokens() -> None:
    ext = {"bearertokenauth": {"tokens": ["s3cret-one", "s3cret-two"]}}
    auth = {"auth": {"authenticator": "bearertokenauth"}}
    async with running({"protocols": local_protocols(**auth)}, ext) as r:
        assert await _both(r, "traces", traces(), "Bearer s3cret-one") == (OK, 200)
        assert await _both(r, "traces", traces(), "Bearer s3cret-two") == (OK, 200)
        for bad in (None, "Bearer wrong", "s3cret-one", "Basic s3cret-one", "Bearer"):
            assert await _both(r, "traces", traces(), bad) == (UNAUTHENTICATED, 401), bad
        # an unknown path is hidden behind authentication too
        async with httpx.AsyncClient() as client:
            assert (await client.post(f"{r.http}/nope", content=b"")).status_code == 401
        assert r.sinks["traces"].items() == 4
        failures = r.metric(
            "airis_receiver_auth_failures_total",
            receiver="otlp",
            transport="grpc",
            reason="unauthenticated",
        )
        assert failures == 5


async def test_bearer_custom_header_and_scheme() -> None:
    ext = {"bearertokenauth/api": {"header": "X-Api-Key", "scheme": "", "token": "k-123456"}}
    auth = {"auth": {"authenticator": "bearertokenauth/api"}}
    async with running({"protocols": {"http": {"endpoint": "127.0.0.1:0", **auth}}}, ext) as r:
        async with httpx.AsyncClient() as client:
            url = f"{r.http}/v1/traces"
            ok = await client.post(url, content=traces(), headers={**PB, "x-api-key": "k-123456"})
            assert ok.status_code == 200
            bad = await client.post(
                url, content=traces(), headers={**PB, "authorization": "k-123456"}
            )
            assert bad.status_code == 401


async def test_bearer_token_file_is_reloaded(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("first-token\n")
    ext = {"bearertokenauth": {"filename": str(token_file), "reload_interval": "10ms"}}
    auth = {"auth": {"authenticator": "bearertokenauth"}}
    async with running({"protocols": local_protocols(**auth)}, ext) as r:
        assert await _both(r, "traces", traces(), "Bearer first-token") == (OK, 200)
        token_file.write_text("second-token\nthird-token\n")
        deadline = time.monotonic() + 10
        while (await _both(r, "traces", traces(), "Bearer second-token"))[1] != 200:
            assert time.monotonic() < deadline, "the rotated token file was never picked up"
            await asyncio.sleep(0.02)
        assert await _both(r, "traces", traces(), "Bearer first-token") == (UNAUTHENTICATED, 401)
        assert await _both(r, "traces", traces(), "Bearer third-token") == (OK, 200)


async def test_rbac_per_signal_and_tenant_attribute() -> None:
    ext = {
        "bearertokenauth": {
            "clients": [
                {"token": "logs-only-token", "roles": ["logs-writer"], "tenant": "acme"},
                {"token": "globex-token", "roles": ["writer"], "tenant": "globex"},
                {"token": "acme-admin-token", "roles": ["acme-traces"]},
            ],
            "authorization": {"roles": ROLES, "tenant_attribute": "tenant.id"},
        }
    }
    auth = {"auth": {"authenticator": "bearertokenauth"}}
    async with running({"protocols": local_protocols(**auth)}, ext) as r:
        # allowed logs only
        assert await _both(r, "logs", logs(), "Bearer logs-only-token") == (OK, 200)
        assert await _both(r, "traces", traces(), "Bearer logs-only-token") == (DENIED, 403)
        assert await _both(r, "metrics", b"", "Bearer logs-only-token") == (DENIED, 403)
        stored = r.sinks["logs"].batches
        assert [a["tenant.id"] for b in stored for a in resource_attributes(b)] == ["acme", "acme"]
        assert {b.context["tenant"] for b in stored} == {"acme"}

        # the authenticated tenant overrides what the client claims
        spoofed = traces(resource={"service.name": "svc", "tenant.id": "acme"})
        assert await _both(r, "traces", spoofed, "Bearer globex-token") == (OK, 200)
        assert {
            a["tenant.id"] for b in r.sinks["traces"].batches for a in resource_attributes(b)
        } == {"globex"}

        # no tenant of its own: the data's tenant must be one its roles allow
        acme = traces(resource={"service.name": "svc", "tenant.id": "acme"})
        other = traces(resource={"service.name": "svc", "tenant.id": "initech"})
        assert await _both(r, "traces", acme, "Bearer acme-admin-token") == (OK, 200)
        assert await _both(r, "traces", other, "Bearer acme-admin-token") == (DENIED, 403)
        assert await _both(r, "traces", traces(), "Bearer acme-admin-token") == (DENIED, 403)
        assert await _both(r, "logs", logs(), "Bearer acme-admin-token") == (DENIED, 403)
        assert r.sinks["traces"].items() == 4
        denied = r.metric(
            "airis_receiver_auth_failures_total",
            receiver="otlp",
            transport="http",
            reason="forbidden",
        )
        assert denied == 5


def test_auth_config_errors() -> None:
    raw: dict[str, Any] = {
        "receivers": {"otlp": {"protocols": {"grpc": {"auth": {"authenticator": "oidc"}}}}},
        "exporters": {"nop": None},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["nop"]}}},
    }
    with pytest.raises(ConfigError, match=r"receivers\.otlp\.protocols\.grpc\.auth\.authenticator"):
        config_module.validate(raw)
    raw["extensions"] = {"bearertokenauth": {"clients": [{"token": "abcd", "roles": ["ghost"]}]}}
    with pytest.raises(ConfigError, match=r"need `authorization\.roles`"):
        config_module.validate(raw)
    raw["extensions"] = {"oidc": {"issuer_url": "https://idp.example"}}
    with pytest.raises(ConfigError, match="no audience provided"):
        config_module.validate(raw)
    raw["extensions"] = {
        "oidc": {"issuer_url": "https://idp", "audience": "a", "algorithms": ["HS256"]}
    }
    with pytest.raises(ConfigError, match="algorithms"):
        config_module.validate(raw)
    raw["extensions"] = {"oidc": {"issuer_url": "https://idp.example", "audience": "airis"}}
    raw["service"]["extensions"] = ["oidc"]
    config_module.validate(raw)


# --- oidc / JWT -------------------------------------------------------------------------

ISSUER = "https://idp.test"
AUDIENCE = "airis-ingest"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-a", "iat": now, "exp": now + 300}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {"rsa": rsa_key("rsa-1"), "ec": ec_key("ec-1"), "stranger": rsa_key("rsa-1")}


@pytest.fixture
def jwks_file(tmp_path: Path, keys: dict[str, SigningKey]) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(keys["rsa"], keys["ec"])))
    return path


def _oidc(keys_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "oidc": {
            "issuer_url": ISSUER,
            "audience": AUDIENCE,
            "public_keys_file": str(keys_file),
            "clock_skew": "30s",
            **extra,
        }
    }


async def test_jwt_validation(jwks_file: Path, keys: dict[str, SigningKey]) -> None:
    auth = {"auth": {"authenticator": "oidc"}}
    rsa, ec, stranger = keys["rsa"], keys["ec"], keys["stranger"]
    now = int(time.time())
    cases = {
        "valid RS256": (rsa.sign(_claims()), OK),
        "valid ES256": (ec.sign(_claims()), OK),
        "expired within the clock skew": (rsa.sign(_claims(exp=now - 10)), OK),
        "expired": (rsa.sign(_claims(exp=now - 120)), UNAUTHENTICATED),
        "no expiry": (rsa.sign(_claims(exp=None)), UNAUTHENTICATED),
        "not yet valid": (rsa.sign(_claims(nbf=now + 600)), UNAUTHENTICATED),
        "wrong audience": (rsa.sign(_claims(aud="someone-else")), UNAUTHENTICATED),
        "wrong issuer": (rsa.sign(_claims(iss="https://evil.test")), UNAUTHENTICATED),
        # same kid, another key: the signature does not verify
        "wrong key": (stranger.sign(_claims()), UNAUTHENTICATED),
        "unknown kid": (rsa.sign(_claims(), kid="nope"), UNAUTHENTICATED),
        "alg none": (jwt.encode(_claims(), None, algorithm="none"), UNAUTHENTICATED),
        # the public key used as an HMAC secret (algorithm confusion)
        "HS256": (
            jwt.encode(_claims(), "a-shared-secret-of-enough-length!", algorithm="HS256"),
            UNAUTHENTICATED,
        ),
        "garbage": ("not.a.jwt", UNAUTHENTICATED),
    }
    async with running({"protocols": local_protocols(**auth)}, _oidc(jwks_file)) as r:
        for name, (token, expected) in cases.items():
            got = await _both(r, "traces", traces(), f"Bearer {token}")
            assert got == (expected, 200 if expected == OK else 401), name
        assert await _both(r, "traces", traces(), None) == (UNAUTHENTICATED, 401)
        assert r.sinks["traces"].items() == 6


async def test_jwt_roles_and_tenant_from_claims(
    jwks_file: Path, keys: dict[str, SigningKey]
) -> None:
    ext = _oidc(
        jwks_file,
        groups_claim="groups",
        tenant_claim="tenant",
        authorization={"roles": ROLES, "tenant_attribute": "airis.tenant"},
    )
    auth = {"auth": {"authenticator": "oidc"}}
    rsa = keys["rsa"]
    logs_only = rsa.sign(_claims(groups=["logs-writer", "unknown-group"], tenant="acme"))
    writer = rsa.sign(_claims(groups="writer", tenant="globex"))
    nobody = rsa.sign(_claims(tenant="acme"))
    async with running({"protocols": local_protocols(**auth)}, ext) as r:
        assert await _both(r, "logs", logs(), f"Bearer {logs_only}") == (OK, 200)
        assert await _both(r, "traces", traces(), f"Bearer {logs_only}") == (DENIED, 403)
        assert await _both(r, "traces", traces(), f"Bearer {writer}") == (OK, 200)
        assert await _both(r, "traces", traces(), f"Bearer {nobody}") == (DENIED, 403)
        tenants = {
            a["airis.tenant"] for b in r.sinks["traces"].batches for a in resource_attributes(b)
        }
        assert tenants == {"globex"}
        assert {a["airis.tenant"] for a in resource_attributes(r.sinks["logs"].batches[0])} == {
            "acme"
        }


class _Issuer:
    """A tiny OIDC issuer: discovery document and JWKS, keys changeable at run time."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = keys
        self.jwks_requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                if self.path == "/.well-known/openid-configuration":
                    doc: dict[str, Any] = {"issuer": base, "jwks_uri": base + "/keys"}
                elif self.path == "/keys":
                    issuer.jwks_requests += 1
                    doc = jwks(*issuer.keys)
                else:
                    self.send_error(404)
                    return
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Issuer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer(keys: dict[str, SigningKey]) -> Iterator[_Issuer]:
    with _Issuer([keys["rsa"]]) as running_issuer:
        yield running_issuer


async def test_jwt_keys_from_issuer_url_with_rotation(issuer: _Issuer) -> None:
    ext = {"oidc": {"issuer_url": issuer.url, "audience": AUDIENCE, "reload_interval": "0s"}}
    auth = {"auth": {"authenticator": "oidc"}}
    first = rsa_key("k1")
    issuer.keys = [first]
    rotated = ec_key("k2")
    async with running({"protocols": local_protocols(**auth)}, ext) as r:
        token = first.sign(_claims(iss=issuer.url))
        assert await _both(r, "traces", traces(), f"Bearer {token}") == (OK, 200)
        # the issuer starts signing with a new key: the unknown kid triggers a refetch
        issuer.keys = [first, rotated]
        token = rotated.sign(_claims(iss=issuer.url))
        assert await _both(r, "traces", traces(), f"Bearer {token}") == (OK, 200)
        wrong_aud = rotated.sign(_claims(iss=issuer.url, aud="other"))
        assert await _both(r, "traces", traces(), f"Bearer {wrong_aud}") == (UNAUTHENTICATED, 401)
        assert issuer.jwks_requests == 2


async def test_oidc_start_fails_when_issuer_says_another_name(issuer: _Issuer) -> None:
    from tests.security_support import Host, build_extensions

    ext = {"oidc": {"issuer_url": issuer.url + "/", "audience": AUDIENCE}}
    with pytest.raises(ValueError, match="issuer did not match"):
        await build_extensions(Host(), ext)


# --- end to end: the tenant lands in the store --------------------------------------------


def test_tenant_attribute_is_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = base_config(tmp_path)
    http = config["receivers"]["otlp"]["protocols"]["http"]
    http["auth"] = {"authenticator": "bearertokenauth"}
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{free_port()}"
    config["extensions"]["bearertokenauth"] = {
        "clients": [{"token": "${env:ACME_TOKEN}", "roles": ["writer"], "tenant": "acme"}],
        "authorization": {"roles": {"writer": {}}},
    }
    config["service"]["extensions"].append("bearertokenauth")
    monkeypatch.setenv("ACME_TOKEN", "acme-e2e-token")
    collector = Collector(tmp_path, config).start()
    try:
        url = f"http://{http['endpoint']}/v1/traces"
        headers = {**PB, "authorization": "Bearer acme-e2e-token"}
        assert httpx.post(url, content=traces(3), headers=headers).status_code == 200
        assert httpx.post(url, content=traces(1), headers=PB).status_code == 401
        # self-telemetry names components, never credentials
        metrics = httpx.get(ports(config)["metrics"]).text
        assert "airis_receiver_auth_failures" in metrics
        assert "acme-e2e-token" not in metrics
    finally:
        assert collector.stop() == 0
    assert "acme-e2e-token" not in collector.logs()
    rows = query_store(
        tmp_path / "store",
        "SELECT ResourceAttributes['tenant.id'] AS tenant, count() AS n FROM otel.otel_traces "
        "GROUP BY tenant",
    )
    assert rows == [{"tenant": "acme", "n": "3"}] or rows == [{"tenant": "acme", "n": 3}]


def test_each_tenant_has_its_own_clickhouse_database(tmp_path: Path) -> None:
    """clickhouse `tenant_database`: an authenticated tenant's data goes to its own database
    (created on first use); data with no tenant goes to the exporter's database."""
    config = base_config(tmp_path)
    http = config["receivers"]["otlp"]["protocols"]["http"]
    http["auth"] = {"authenticator": "bearertokenauth"}
    config["extensions"]["bearertokenauth"] = {
        "clients": [
            {"token": "acme-token", "roles": ["writer"], "tenant": "acme"},
            {"token": "globex-token", "roles": ["writer"], "tenant": "glo-bex"},
            {"token": "shared-token", "roles": ["writer"]},
        ],
        "authorization": {"roles": {"writer": {}}},
    }
    config["service"]["extensions"].append("bearertokenauth")
    config["exporters"]["clickhouse"]["tenant_database"] = "otel_{tenant}"
    collector = Collector(tmp_path, config).start()
    try:
        url = f"http://{http['endpoint']}/v1/traces"
        for token, spans in (("acme-token", 3), ("globex-token", 2), ("shared-token", 1)):
            headers = {**PB, "authorization": f"Bearer {token}"}
            assert httpx.post(url, content=traces(spans), headers=headers).status_code == 200
    finally:
        assert collector.stop() == 0
    rows = query_store(
        tmp_path / "store",
        "SELECT 'acme' AS db, count() AS n FROM otel_acme.otel_traces UNION ALL "
        "SELECT 'glo_bex', count() FROM otel_glo_bex.otel_traces UNION ALL "
        "SELECT 'otel', count() FROM otel.otel_traces",
    )
    assert {r["db"]: int(r["n"]) for r in rows} == {"acme": 3, "glo_bex": 2, "otel": 1}


def test_readme_security_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from tests.harness import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Security") : readme.index("### Hostile input")]
    example = re.findall(r"```yaml\n(.*?)```", section, re.S)[-1]
    for name in ("SHOP_TOKEN", "AUDIT_TOKEN", "GATEWAY_TOKEN"):
        monkeypatch.setenv(name, f"{name.lower()}-value")
    import yaml

    config_module.validate(config_module.expand_env(yaml.safe_load(example)))


async def test_bad_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    from tests.security_support import Host, build_extensions

    bad = tmp_path / "jwks.json"
    bad.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')  # a symmetric key only
    with pytest.raises(ConfigError, match=r"extensions\.oidc\.public_keys_file"):
        await build_extensions(Host(), _oidc(bad))
