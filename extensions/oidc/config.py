"""Config of the oidc extension: the contrib oidcauthextension keys (`attribute`, the legacy
single-provider keys `issuer_url`, `audience`, `ignore_audience`, `issuer_ca_path`,
`username_claim`, `groups_claim`, `public_keys_file`, and `providers`), plus AIRIS keys:
`algorithms`, `clock_skew`, `roles_claim`, `tenant_claim`, `authorization` (RBAC) and
`jwks_file` (an alias of `public_keys_file`)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

from otlp.auth import AuthorizationConfig
from otlp.component import ComponentConfig
from otlp.confmodels import Duration

# asymmetric algorithms only: an HMAC algorithm would let anyone holding the public key sign
# tokens ("alg confusion"), and "none" signs nothing
SUPPORTED_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip


class _ProviderKeys(ComponentConfig):
    """The keys of one issuer: a `providers` entry, or (legacy) the extension's top level."""

    issuer_url: str = ""
    audience: str = ""
    ignore_audience: bool = False
    issuer_ca_path: str = ""
    username_claim: str = ""
    groups_claim: str = ""
    public_keys_file: str = Field(
        "", validation_alias=AliasChoices("public_keys_file", "jwks_file")
    )


class ProviderConfig(_ProviderKeys):
    @model_validator(mode="after")
    def _check(self) -> ProviderConfig:
        if not self.audience and not self.ignore_audience:
            raise ValueError("no audience provided for the OIDC configuration")
        if not self.issuer_url:
            raise ValueError("no IssuerURL provided for the OIDC configuration")
        return self


class OIDCConfig(_ProviderKeys):
    # the header (gRPC metadata key) carrying "Bearer <jwt>"
    attribute: str = "authorization"
    providers: list[ProviderConfig] = Field(default_factory=list)
    # AIRIS
    algorithms: list[str] = Field(default_factory=lambda: list(SUPPORTED_ALGORITHMS))
    clock_skew: Duration = 0.0
    roles_claim: str = ""
    tenant_claim: str = ""
    # how often a public_keys_file is checked for changes; an issuer's keys are refetched
    # when a token names a key id not seen yet, at most this often
    reload_interval: Duration = 10.0
    http_timeout: Duration = 10.0
    authorization: AuthorizationConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> OIDCConfig:
        unknown = [a for a in self.algorithms if a not in SUPPORTED_ALGORITHMS]
        if unknown or not self.algorithms:
            raise ValueError(
                f"algorithms: {unknown or 'empty'}; supported: {', '.join(SUPPORTED_ALGORITHMS)}"
            )
        providers = self.all_providers()
        if not providers:
            raise ValueError("no IssuerURL provided for the OIDC configuration")
        issuers = [p.issuer_url for p in providers]
        duplicated = sorted({i for i in issuers if issuers.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate issuer URL found: {', '.join(duplicated)}")
        if self.clock_skew < 0:
            raise ValueError("clock_skew: must not be negative")
        return self

    def all_providers(self) -> list[ProviderConfig]:
        """The legacy top-level provider (if any key of it is set) first, then `providers`."""
        legacy_keys = list(_ProviderKeys.model_fields)
        if any(getattr(self, k) for k in legacy_keys):
            legacy = ProviderConfig.model_validate({k: getattr(self, k) for k in legacy_keys})
            return [legacy, *self.providers]
        return list(self.providers)
