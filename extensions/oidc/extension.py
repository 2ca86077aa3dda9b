"""The oidc extension: `Authorization: Bearer <JWT>` checked with PyJWT.

Per provider (selected by the token's `iss`): the signature against the provider's keys
(by `kid` when the token names one), the algorithm against `algorithms` (asymmetric only),
`iss`, `aud` (unless ignore_audience), `exp` (required), `nbf` and `iat`, all with
`clock_skew` of leeway. Keys come from a local JWKS file (public_keys_file, re-read when it
changes) or from the issuer: `<issuer_url>/.well-known/openid-configuration` → `jwks_uri`,
fetched at start (the Collector also fails to start when the issuer is unreachable) and again
when a token names a key id not seen yet (key rotation), at most once per reload_interval.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from extensions.oidc.config import OIDCConfig, ProviderConfig
from otlp.auth import Policy, Principal, Unauthenticated
from otlp.component import Component, Host
from otlp.errors import ConfigError

log = logging.getLogger("airis.extension.oidc")

# a JWT is a few hundred bytes to a few KiB; anything far larger is not worth parsing
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(slots=True)
class _Key:
    kid: str | None
    alg: str | None
    key: Any


def parse_jwks(doc: Any) -> list[_Key]:
    """Signature keys of a JWKS document; keys for encryption or of unknown types are skipped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWKS document (expected an object with a `keys` list)")
    keys = []
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        # public keys only: a symmetric ("oct") key has no place in a JWKS an IdP publishes
        if entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        keys.append(_Key(entry.get("kid"), entry.get("alg"), parsed.key))
    if not keys:
        raise ValueError("no supported public keys")
    return keys


@dataclass(slots=True)
class _Provider:
    config: ProviderConfig
    keys: list[_Key] = field(default_factory=list)
    fetched: float = float("-inf")
    stamp: tuple[int, int] | None = None


class OIDCAuth(Component):
    def __init__(self, component_id: str, config: OIDCConfig) -> None:
        self.id = component_id
        self.config = config
        self.attribute = config.attribute.lower()
        self.policy = Policy(config.authorization) if config.authorization else None
        self.providers = {p.issuer_url: _Provider(p) for p in config.all_providers()}
        # a bad local key file is a configuration error: fail at construction (before ports)
        for provider in self.providers.values():
            if provider.config.public_keys_file:
                self._load_file(provider, force=True)

    async def start(self, host: Host) -> None:
        for provider in self.providers.values():
            if not provider.config.public_keys_file:
                await asyncio.to_thread(self._discover, provider)

    # --- keys ---------------------------------------------------------------------------
    def _load_file(self, provider: _Provider, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - provider.fetched < self.config.reload_interval:
            return
        provider.fetched = now
        path = Path(provider.config.public_keys_file)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == provider.stamp:
                return
            provider.keys = parse_jwks(json.loads(path.read_bytes()))
            provider.stamp = stamp
        except (OSError, ValueError) as exc:
            if force:
                raise ConfigError(
                    f"extensions.{self.id}.public_keys_file: invalid JWKS file {path}: {exc}"
                ) from exc
            log.error("cannot reload public keys", extra={"extension": self.id, "error": str(exc)})

    def _discover(self, provider: _Provider) -> None:
        cfg = provider.config
        verify: Any = cfg.issuer_ca_path or True
        base = cfg.issuer_url.rstrip("/")
        with httpx.Client(verify=verify, timeout=self.config.http_timeout) as client:
            meta = client.get(base + "/.well-known/openid-configuration")
            meta.raise_for_status()
            doc = meta.json()
            # as go-oidc: the discovery document must name the configured issuer exactly
            if doc.get("issuer") != cfg.issuer_url:
                raise ValueError(
                    f"oidc {self.id}: issuer did not match: expected {cfg.issuer_url!r}, "
                    f"got {doc.get('issuer')!r}"
                )
            keys = client.get(doc["jwks_uri"])
            keys.raise_for_status()
            provider.keys = parse_jwks(keys.json())
        provider.fetched = time.monotonic()

    async def _refresh(self, provider: _Provider) -> bool:
        """New keys for a token whose key id is unknown; False when refreshed too recently."""
        if provider.config.public_keys_file:
            before = provider.stamp
            self._load_file(provider)
            return provider.stamp != before
        if time.monotonic() - provider.fetched < self.config.reload_interval:
            return False
        provider.fetched = time.monotonic()
        try:
            await asyncio.to_thread(self._discover, provider)
        except Exception as exc:
            log.warning(
                "cannot refresh issuer keys", extra={"extension": self.id, "error": str(exc)}
            )
            return False
        return True

    # --- tokens -------------------------------------------------------------------------
    async def authenticate(self, headers: Mapping[str, list[str]]) -> Principal:
        values = headers.get(self.attribute)
        if not values:
            raise Unauthenticated("no credentials")
        scheme, _, token = values[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated("not a bearer token")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if alg not in self.config.algorithms:
            raise Unauthenticated(f"algorithm {alg!r} not allowed")
        provider = self.providers.get(unverified.get("iss"))  # type: ignore[arg-type]
        if provider is None:
            raise Unauthenticated("unknown issuer")
        if provider.config.public_keys_file:
            self._load_file(provider)
        kid = header.get("kid")
        claims = self._verify(provider, token, alg, kid)
        if claims is None and await self._refresh(provider):
            claims = self._verify(provider, token, alg, kid)
        if claims is None:
            raise Unauthenticated("no key verifies the token")
        return self._principal(provider.config, claims)

    def _verify(self, provider: _Provider, token: str, alg: str, kid: Any) -> dict[str, Any] | None:
        cfg = provider.config
        candidates = [
            k for k in provider.keys if (kid is None or k.kid == kid) and k.alg in (None, alg)
        ]
        last: Exception | None = None
        for key in candidates:
            try:
                return jwt.decode(  # type: ignore[no-any-return]
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=None if cfg.ignore_audience else cfg.audience,
                    issuer=cfg.issuer_url,
                    leeway=self.config.clock_skew,
                    options={"require": ["exp", "iss"], "verify_aud": not cfg.ignore_audience},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError, jwt.InvalidAlgorithmError):
                continue  # another key may verify it
            except jwt.PyJWTError as exc:
                # signature fine, claims wrong (expired, audience, ...): no other key helps
                raise Unauthenticated(f"invalid token: {exc}") from None
            except (ValueError, TypeError) as exc:  # a key of the wrong type for alg
                last = exc
        if last is not None:
            log.debug("token key mismatch", extra={"extension": self.id, "error": str(last)})
        return None

    def _principal(self, cfg: ProviderConfig, claims: dict[str, Any]) -> Principal:
        subject = str(claims.get(cfg.username_claim or "sub", ""))
        if cfg.username_claim and not subject:
            raise Unauthenticated(f"token has no {cfg.username_claim!r} claim")
        roles: frozenset[str] = frozenset()
        tenant = ""
        if self.policy is not None:
            roles = self.policy.roles_of(
                _strings(claims.get(self.config.roles_claim or cfg.groups_claim))
            )
            if self.config.tenant_claim:
                value = claims.get(self.config.tenant_claim)
                tenant = value if isinstance(value, str) else ""
        attributes = {"subject": subject, "issuer": cfg.issuer_url}
        if cfg.groups_claim:
            attributes["membership"] = ",".join(_strings(claims.get(cfg.groups_claim)))
        return Principal(subject, roles, tenant, self.policy, attributes)


def _strings(value: Any) -> list[str]:
    """A claim holding names: a list of strings, or one string of space/comma separated ones."""
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
