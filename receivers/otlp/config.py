"""Config of the `otlp` receiver: the Collector's otlpreceiver keys, with configgrpc's and
confighttp's server settings (and configtls for `tls`).

A protocol is enabled by naming it, even with no settings (`grpc:` alone means "on, with
defaults"), exactly as the Collector's `configoptional` does; naming neither is an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration
from otlp.limits import LimitsConfig

TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
TRANSPORTS = ("tcp", "tcp4", "tcp6", "unix")

# confighttp's default list; snappy, lz4 and x-snappy-framed have no decoder here (a request
# using them gets 400), they are accepted in config so Collector configs load unchanged
COLLECTOR_COMPRESSION = ("", "gzip", "zstd", "zlib", "snappy", "deflate", "lz4", "x-snappy-framed")
SUPPORTED_COMPRESSION = frozenset({"", "identity", "gzip", "zstd", "zlib", "deflate"})

DEFAULT_MAX_REQUEST_BODY_SIZE = 20 * 1024 * 1024  # confighttp's default


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` → (host, port); host "" means every interface."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid endpoint {endpoint!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Endpoint(ComponentConfig):
    # transport first: the endpoint check depends on it
    transport: str = "tcp"
    endpoint: str

    @field_validator("transport")
    @classmethod
    def _check_transport(cls, transport: str) -> str:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        return transport

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, endpoint: str, info: ValidationInfo) -> str:
        if info.data.get("transport", "tcp") == "unix":
            if not endpoint:
                raise ValueError("a unix socket path is required")
        else:
            split_endpoint(endpoint)
        return endpoint


class TLSServerConfig(ComponentConfig):
    """configtls.ServerConfig. Client certificates are required when client_ca_file is set."""

    # for a server the Collector loads ca_file into RootCAs, which only clients use
    ca_file: str = ""
    ca_pem: str = ""
    cert_file: str = ""
    cert_pem: str = ""
    key_file: str = ""
    key_pem: str = ""
    client_ca_file: str = ""
    min_version: str = ""
    max_version: str = ""
    include_system_ca_certs_pool: bool = False
    # re-read the certificate, key and client CA files this often (0: never); a changed
    # file set is used for new connections without a restart
    reload_interval: Duration = 0.0

    @model_validator(mode="after")
    def _check(self) -> TLSServerConfig:
        if self.cert_file and self.cert_pem:
            raise ValueError("provide either cert_file or cert_pem, not both")
        if self.key_file and self.key_pem:
            raise ValueError("provide either key_file or key_pem, not both")
        if not (self.cert_file or self.cert_pem) or not (self.key_file or self.key_pem):
            raise ValueError("a TLS server needs both a certificate and a key")
        for key in ("min_version", "max_version"):
            value = getattr(self, key)
            if value and value not in TLS_VERSIONS:
                raise ValueError(f"{key}: expected one of {', '.join(TLS_VERSIONS)}")
        if self.min_version and self.max_version and self.min_version > self.max_version:
            raise ValueError("min_version is greater than max_version")
        return self


class AuthConfig(ComponentConfig):
    """configauth.Config: the id of an authenticator extension listed in service.extensions."""

    authenticator: str = Field(min_length=1)
    # confighttp: query parameters also handed to the authenticator (as headers)
    request_params: list[str] = Field(default_factory=list)


class KeepaliveServerParameters(ComponentConfig):
    max_connection_idle: Duration = 0.0
    max_connection_age: Duration = 0.0
    max_connection_age_grace: Duration = 0.0
    time: Duration = 0.0
    timeout: Duration = 0.0


class KeepaliveEnforcementPolicy(ComponentConfig):
    min_time: Duration = 0.0
    permit_without_stream: bool = False


class KeepaliveServerConfig(ComponentConfig):
    server_parameters: KeepaliveServerParameters = Field(default_factory=KeepaliveServerParameters)
    enforcement_policy: KeepaliveEnforcementPolicy = Field(
        default_factory=KeepaliveEnforcementPolicy
    )


class GRPCServerConfig(_Endpoint):
    """configgrpc.ServerConfig with otlpreceiver's defaults (endpoint bound to localhost)."""

    endpoint: str = "127.0.0.1:4317"
    tls: TLSServerConfig | None = None
    # 0 means grpc's default of 4 MiB, as in the Collector
    max_recv_msg_size_mib: int = Field(4, ge=0)
    max_concurrent_streams: int = Field(0, ge=0)
    read_buffer_size: int = Field(512 * 1024, ge=0)
    write_buffer_size: int = Field(0, ge=0)
    keepalive: KeepaliveServerConfig = Field(default_factory=KeepaliveServerConfig)
    auth: AuthConfig | None = None
    include_metadata: bool = False
    # AIRIS: caps against floods (0 = grpc's default: no cap / 8 KiB of metadata)
    max_connections: int = Field(0, ge=0)
    max_header_bytes: int = Field(0, ge=0)

    @field_validator("keepalive", mode="before")
    @classmethod
    def _null_keepalive(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _check_tls(self) -> GRPCServerConfig:
        # grpcio speaks TLS 1.2 and 1.3 and exposes no knob to pin a version
        if self.tls and (self.tls.min_version == "1.3" or self.tls.max_version):
            raise ValueError("tls: min_version 1.3 and max_version are not supported for gRPC")
        return self

    def max_recv_bytes(self) -> int:
        return (self.max_recv_msg_size_mib or 4) * 1024 * 1024


class CORSConfig(ComponentConfig):
    # an origin may contain `*` standing for any run of characters; "*" allows every origin
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_headers: list[str] = Field(default_factory=list)
    exposed_headers: list[str] = Field(default_factory=list)
    max_age: int = 0


def _sanitize_path(value: Any) -> Any:
    """SanitizedURLPath: the path part of a URL, made absolute."""
    if not isinstance(value, str):
        return value
    path = urlsplit(value).path
    return path if path.startswith("/") else "/" + path


class HTTPServerConfig(_Endpoint):
    """confighttp.ServerConfig plus otlpreceiver's URL paths."""

    endpoint: str = "127.0.0.1:4318"
    tls: TLSServerConfig | None = None
    cors: CORSConfig | None = None
    auth: AuthConfig | None = None
    # <= 0 means the default, as in confighttp; applies to the body as sent and decompressed
    max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE
    include_metadata: bool = False
    response_headers: dict[str, str] = Field(default_factory=dict)
    compression_algorithms: list[str] = Field(default_factory=lambda: list(COLLECTOR_COMPRESSION))
    # confighttp's timeouts. 0 keeps the Collector's "no timeout" for write_timeout only:
    # AIRIS guards against slow clients by default (see DEFAULT_* in receivers/otlp/guard.py).
    # read_header_timeout: from connection (or the request's first byte) to the end of its
    # headers; read_timeout: from the end of the headers to the end of the body;
    # idle_timeout: a keep-alive connection's wait for its next request.
    read_timeout: Duration = 0.0
    read_header_timeout: Duration = 0.0
    write_timeout: Duration = 0.0
    idle_timeout: Duration = 0.0
    keep_alives_enabled: bool = True
    # AIRIS: open connections beyond this are closed at once (0 = no cap); request line and
    # headers larger than max_header_bytes get 431 (Go's http.Server default: 1 MiB)
    max_connections: int = Field(0, ge=0)
    max_header_bytes: int = Field(1024 * 1024, ge=1024)
    traces_url_path: str = "/v1/traces"
    metrics_url_path: str = "/v1/metrics"
    logs_url_path: str = "/v1/logs"

    _paths = field_validator("traces_url_path", "metrics_url_path", "logs_url_path", mode="before")(
        _sanitize_path
    )

    @field_validator("cors", mode="before")
    @classmethod
    def _null_cors(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("compression_algorithms")
    @classmethod
    def _check_compression(cls, value: list[str]) -> list[str]:
        known = SUPPORTED_COMPRESSION | set(COLLECTOR_COMPRESSION)
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown compression algorithm(s) {unknown}")
        return value

    def body_limit(self) -> int:
        size = self.max_request_body_size
        return size if size > 0 else DEFAULT_MAX_REQUEST_BODY_SIZE

    def url_paths(self) -> dict[str, str]:
        return {
            "traces": self.traces_url_path,
            "metrics": self.metrics_url_path,
            "logs": self.logs_url_path,
        }


class Protocols(ComponentConfig):
    grpc: GRPCServerConfig | None = None
    http: HTTPServerConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _named_means_enabled(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ("grpc", "http") else v) for k, v in data.items()}
        return data


class OTLPReceiverConfig(ComponentConfig):
    protocols: Protocols = Field(default_factory=Protocols)
    # AIRIS: hostile-input limits and SDK-style truncation, for both protocols
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @field_validator("limits", mode="before")
    @classmethod
    def _null_limits(cls, value: Any) -> Any:
        return {} if value is None else value

    def extension_refs(self) -> list[tuple[str, str]]:
        """(key path, extension id) of every extension this receiver uses."""
        refs = []
        for name in ("grpc", "http"):
            proto = getattr(self.protocols, name)
            if proto is not None and proto.auth is not None:
                refs.append((f"protocols.{name}.auth.authenticator", proto.auth.authenticator))
        return refs

    @field_validator("protocols", mode="before")
    @classmethod
    def _null_protocols(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _at_least_one(self) -> OTLPReceiverConfig:
        if self.protocols.grpc is None and self.protocols.http is None:
            raise ValueError("must specify at least one protocol when using the OTLP receiver")
        return self
