"""bearertokenauth extension (the Collector contrib bearertokenauthextension, server side)."""

from __future__ import annotations

from extensions.bearertokenauth.config import BearerTokenAuthConfig
from extensions.bearertokenauth.extension import BearerTokenAuth
from otlp.component import EXTENSION, CreateSettings, Factory


def _create(settings: CreateSettings, config: BearerTokenAuthConfig) -> BearerTokenAuth:
    return BearerTokenAuth(str(settings.id), config)


factory = Factory(
    type="bearertokenauth",
    kind=EXTENSION,
    config_model=BearerTokenAuthConfig,
    create=_create,
    signals=frozenset(),
    description="static bearer tokens (config or file) for receivers' auth, with AIRIS RBAC",
)

__all__ = ["BearerTokenAuth", "BearerTokenAuthConfig", "factory"]
