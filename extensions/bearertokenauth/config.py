"""Config of the bearertokenauth extension: the contrib keys (`header`, `scheme`, `token`,
`tokens`, `filename`) plus AIRIS's `clients` (a token with its roles and tenant) and
`authorization` (RBAC, see otlp/auth.py)."""

from __future__ import annotations

from pydantic import Field, model_validator

from otlp.auth import AuthorizationConfig
from otlp.component import ComponentConfig
from otlp.confmodels import Duration


class BearerClient(ComponentConfig):
    token: str = Field(min_length=1)
    # a name for logs (never the token itself)
    name: str = ""
    roles: list[str] = Field(default_factory=list)
    tenant: str = ""


class BearerTokenAuthConfig(ComponentConfig):
    header: str = "Authorization"
    scheme: str = "Bearer"
    token: str = ""
    tokens: list[str] = Field(default_factory=list)
    # one token per line; re-read when it changes (checked at most every reload_interval)
    filename: str = ""
    reload_interval: Duration = 1.0
    clients: list[BearerClient] = Field(default_factory=list)
    authorization: AuthorizationConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> BearerTokenAuthConfig:
        if not (self.token or self.tokens or self.filename or self.clients):
            raise ValueError("no bearer token provided (token, tokens, filename or clients)")
        if not self.header:
            raise ValueError("header: must not be empty")
        if self.authorization is not None:
            roles = self.authorization.roles
            for i, client in enumerate(self.clients):
                unknown = [r for r in client.roles if r not in roles]
                if unknown:
                    raise ValueError(f"clients[{i}].roles: unknown role(s) {unknown}")
        elif any(c.roles or c.tenant for c in self.clients):
            raise ValueError("clients with roles or a tenant need `authorization.roles`")
        return self
