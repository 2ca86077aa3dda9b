"""Server authentication and authorisation (RBAC) shared by the auth extensions and receivers.

An authenticator extension (`bearertokenauth`, `oidc`) turns request headers into a
`Principal` or raises `Unauthenticated`. Receivers reference it as the Collector does
(`protocols.grpc.auth.authenticator: bearertokenauth`). RBAC is an AIRIS addition configured
under the extension's `authorization:` key: roles grant signals and tenants; a principal's
roles come from its token entry (bearer) or a claim (JWT). Without `authorization:` a
principal may send every signal and the data is left as sent (the Collector's behaviour).

Tenancy: a principal bound to a tenant has that tenant written into every resource of its
requests (`tenant_attribute`, overriding what the client sent, so it cannot be spoofed); a
principal without one may only send resources whose tenant attribute its roles allow
("*" allows any, including none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pyarrow as pa
from pydantic import Field, model_validator

from otlp.batch import ATTRIBUTES, V_STRING, Batch
from otlp.component import ComponentConfig

ANY = "*"
Signal = Literal["traces", "metrics", "logs", "*"]


class Unauthenticated(Exception):
    """Missing or invalid credentials. The message is for logs only, never for the client."""


class PermissionDenied(Exception):
    """Authenticated, but not allowed this signal or tenant (gRPC PERMISSION_DENIED / 403)."""


class RoleConfig(ComponentConfig):
    signals: list[Signal] = Field(default_factory=lambda: [ANY])
    tenants: list[str] = Field(default_factory=lambda: [ANY])


class AuthorizationConfig(ComponentConfig):
    """AIRIS RBAC: role name → the signals and tenants it may write."""

    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    # granted to every authenticated principal, in addition to its own roles
    default_roles: list[str] = Field(default_factory=list)
    # resource attribute carrying the tenant ("" = leave resources untouched)
    tenant_attribute: str = "tenant.id"

    @model_validator(mode="after")
    def _known_roles(self) -> AuthorizationConfig:
        unknown = [r for r in self.default_roles if r not in self.roles]
        if unknown:
            raise ValueError(f"default_roles: unknown role(s) {unknown}")
        return self


@dataclass(frozen=True, slots=True)
class Policy:
    config: AuthorizationConfig

    def roles_of(self, names: Iterable[str]) -> frozenset[str]:
        """The principal's effective roles: its known roles plus the default ones."""
        return frozenset(n for n in names if n in self.config.roles) | frozenset(
            self.config.default_roles
        )

    def allows(self, roles: frozenset[str], signal: str, tenant: str | None) -> bool:
        """tenant None: any tenant for this signal will do (the pre-decode check)."""
        for name in roles:
            role = self.config.roles[name]
            if ANY not in role.signals and signal not in role.signals:
                continue
            if tenant is None or ANY in role.tenants or tenant in role.tenants:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    roles: frozenset[str] = frozenset()
    tenant: str = ""
    policy: Policy | None = None
    # claims or token entry details worth carrying (not secrets)
    attributes: Mapping[str, str] = field(default_factory=dict)

    def check_signal(self, signal: str) -> None:
        """Before decoding: may this principal send this signal at all?"""
        policy = self.policy
        if policy is None:
            return
        if not policy.allows(self.roles, signal, self.tenant or None):
            raise PermissionDenied(f"{self.subject!r} may not send {signal}")

    def apply(self, batch: Batch) -> None:
        """After decoding: stamp the tenant, or check the tenants the data claims."""
        policy = self.policy
        if policy is None:
            return
        name = policy.config.tenant_attribute
        if self.tenant:
            batch.context["tenant"] = self.tenant
            if name:
                batch.resources = set_resource_attribute(batch.resources, name, self.tenant)
            return
        if not name:
            return
        for tenant in resource_strings(batch.resources, name):
            if not policy.allows(self.roles, batch.signal, tenant):
                raise PermissionDenied(
                    f"{self.subject!r} may not send {batch.signal} of {tenant!r}"
                )


class ServerAuthenticator(Protocol):
    """What receivers need from an auth extension. Header names are lower case."""

    async def authenticate(self, headers: Mapping[str, list[str]]) -> Principal: ...


def is_authenticator(obj: object) -> bool:
    return callable(getattr(obj, "authenticate", None))


def resource_strings(resources: pa.Table, key: str) -> list[str]:
    """The string value of one attribute per resource ("" when absent or not a string)."""
    out = []
    for attrs in resources.column("attributes").to_pylist():
        value = ""
        for kv in attrs or ():
            if kv["key"] == key:
                value = kv["str"] if kv["type"] == V_STRING else ""
        out.append(value or "")
    return out


def set_resource_attribute(resources: pa.Table, key: str, value: str) -> pa.Table:
    """Every resource gets `key` = value (replacing any value the client sent). Resources are
    few per request (one per SDK process), so a Python pass is cheap here."""
    item = {"key": key, "type": V_STRING, "str": value}
    item.update({"int": None, "double": None, "bool": None, "bytes": None})
    rows = [
        [kv for kv in (attrs or ()) if kv["key"] != key] + [item]
        for attrs in resources.column("attributes").to_pylist()
    ]
    index = resources.schema.get_field_index("attributes")
    return resources.set_column(index, "attributes", pa.array(rows, ATTRIBUTES))


def lower_headers(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, list[str]]:
    """gRPC metadata or ASGI headers → {lower-case name: [values]} (binary metadata skipped)."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.decode("latin-1") if isinstance(name, bytes) else name
        if key.endswith("-bin"):  # binary gRPC metadata carries no credentials we read
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        out.setdefault(key.lower(), []).append(text)
    return out
