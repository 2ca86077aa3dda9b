"""Config of the `otlphttp` exporter: the Collector's otlphttpexporter keys (confighttp client
settings, per-signal endpoints, encoding, plus exporterhelper's queue / retry / timeout)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from exporters.otlp.config import Compression, TLSClientConfig
from otlp.confmodels import Duration, ExporterConfig


class OTLPHttpConfig(ExporterConfig):
    # base URL; /v1/traces, /v1/metrics, /v1/logs are appended per signal
    endpoint: str = ""
    traces_endpoint: str = ""
    metrics_endpoint: str = ""
    logs_endpoint: str = ""
    # accepted for config compatibility: AIRIS has no profiles pipeline
    profiles_endpoint: str = ""
    encoding: Literal["proto", "json"] = "proto"
    tls: TLSClientConfig = Field(default_factory=TLSClientConfig)
    headers: dict[str, str] = Field(default_factory=dict)
    compression: Compression = "gzip"
    timeout: Duration = 30.0
    max_idle_conns: int | None = None
    max_idle_conns_per_host: int | None = None
    max_conns_per_host: int | None = None
    idle_conn_timeout: Duration | None = None
    read_buffer_size: int = 0
    write_buffer_size: int = 0
    disable_keep_alives: bool = False
    proxy_url: str = ""
    # the Collector's client `auth` extension reference: refused below (no client auth
    # extensions in AIRIS yet), rather than silently sending without credentials
    auth: dict[str, str] | None = None

    @model_validator(mode="after")
    def _no_auth(self) -> OTLPHttpConfig:
        if self.auth is not None:
            raise ValueError(
                "auth: client authenticator extensions are not supported; "
                "send credentials with `headers` (e.g. authorization: Bearer ...)"
            )
        return self

    @model_validator(mode="after")
    def _check_endpoints(self) -> OTLPHttpConfig:
        keys = ("endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint")
        if not any(getattr(self, key) for key in keys):
            raise ValueError("endpoint: must be set (or a per-signal *_endpoint)")
        for key in keys:
            value = getattr(self, key)
            if value and not value.startswith(("http://", "https://")):
                raise ValueError(f"{key}: {value!r} must be an http:// or https:// URL")
        return self

    def url(self, signal: str) -> str:
        """The signal's URL: its own *_endpoint, else endpoint + /v1/<signal>."""
        own = getattr(self, f"{signal}_endpoint")
        if own:
            return own
        return self.endpoint.rstrip("/") + "/v1/" + signal if self.endpoint else ""
