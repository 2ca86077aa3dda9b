"""oidc extension (the Collector contrib oidcauthextension): JWT bearer tokens checked
against an OIDC issuer's keys (discovered from issuer_url, or a local JWKS file)."""

from __future__ import annotations

from extensions.oidc.config import OIDCConfig
from extensions.oidc.extension import OIDCAuth
from otlp.component import EXTENSION, CreateSettings, Factory


def _create(settings: CreateSettings, config: OIDCConfig) -> OIDCAuth:
    return OIDCAuth(str(settings.id), config)


factory = Factory(
    type="oidc",
    kind=EXTENSION,
    config_model=OIDCConfig,
    create=_create,
    signals=frozenset(),
    description="JWT (RS*/PS*/ES*/EdDSA) validation against an OIDC issuer, with AIRIS RBAC",
)

__all__ = ["OIDCAuth", "OIDCConfig", "factory"]
