"""Config of the `otlp` (gRPC) exporter: the Collector's otlpexporter keys (configgrpc client
settings plus exporterhelper's timeout / sending_queue / retry_on_failure)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration, ExporterConfig


class TLSClientConfig(ComponentConfig):
    """configtls.ClientConfig. `insecure: true` means plaintext (gRPC); HTTP decides by the
    endpoint's scheme, as the Collector does."""

    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    ca_pem: str = ""
    cert_pem: str = ""
    key_pem: str = ""
    server_name_override: str = ""
    min_version: str = ""
    max_version: str = ""
    include_system_ca_certs_pool: bool = False
    reload_interval: Duration = 0.0
    cipher_suites: list[str] = Field(default_factory=list)
    curve_preferences: list[str] = Field(default_factory=list)


class KeepaliveClientConfig(ComponentConfig):
    time: Duration = 0.0
    timeout: Duration = 0.0
    permit_without_stream: bool = False


Compression = Literal["gzip", "zstd", "snappy", "deflate", "zlib", "lz4", "none", ""]


class OTLPGrpcConfig(ExporterConfig):
    endpoint: str = ""
    tls: TLSClientConfig = Field(default_factory=TLSClientConfig)
    headers: dict[str, str] = Field(default_factory=dict)
    compression: Compression = "gzip"
    balancer_name: str = "round_robin"
    authority: str = ""
    keepalive: KeepaliveClientConfig | None = None
    read_buffer_size: int = 0
    write_buffer_size: int = 0
    wait_for_ready: bool = False
    # the Collector's client `auth` extension reference: refused below (no client auth
    # extensions in AIRIS yet), rather than silently sending without credentials
    auth: dict[str, str] | None = None

    @field_validator("endpoint")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _no_auth(self) -> OTLPGrpcConfig:
        if self.auth is not None:
            raise ValueError(
                "auth: client authenticator extensions are not supported; "
                "send credentials with `headers` (e.g. authorization: Bearer ...)"
            )
        return self

    @model_validator(mode="after")
    def _no_skip_verify(self) -> OTLPGrpcConfig:
        # grpcio has no hook to accept an unverified server certificate; verifying anyway
        # would surprise, connecting in plaintext would be worse: refuse before starting
        plaintext = self.tls.insecure or self.endpoint.startswith("http://")
        if self.tls.insecure_skip_verify and not plaintext:
            raise ValueError(
                "tls.insecure_skip_verify: grpcio cannot skip server certificate verification; "
                "set tls.ca_file to the server's CA (and tls.server_name_override if the "
                "certificate names another host)"
            )
        return self

    @model_validator(mode="after")
    def _require_endpoint(self) -> OTLPGrpcConfig:
        if not self.endpoint:
            raise ValueError("endpoint: must be set (host:port, or an http(s):// URL)")
        return self
