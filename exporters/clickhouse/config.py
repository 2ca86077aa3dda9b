"""Config of the `clickhouse` exporter: the keys and defaults of the OTel Collector contrib
clickhouseexporter v0.165.0 (config.go), plus AIRIS's `chdb://PATH` endpoint for the
embedded store and the `metrics_rollup` table.

Endpoints:

* ``chdb://PATH``: the embedded ClickHouse engine (chDB) storing under PATH; a relative
  PATH is relative to the working directory (``chdb://./data/clickhouse``), an absolute one
  is written ``chdb:///var/lib/airis``. ``chdb://:memory:`` keeps nothing on disk.
* ``http://HOST:PORT``, ``https://HOST:PORT``: a ClickHouse server's HTTP interface
  (clickhouse-connect).
* ``tcp://HOST:PORT``, ``clickhouse://HOST:PORT`` (the Collector's native-protocol forms)
  are served over the same server's HTTP interface, since clickhouse-connect speaks HTTP
  only: the native ports 9000 and 9440 become 8123 and 8443 (``secure=true`` selects
  HTTPS), any other port is used as given. Several hosts (``tcp://a:9000,b:9000``) are
  tried in order when the exporter starts, as the Go driver's ``in_order`` strategy does.

Query parameters of the endpoint and ``connection_params`` are either Go driver options
(``dial_timeout``, ``read_timeout``, ``secure``, ``skip_verify``, ``compress``, ...), which
are translated or ignored, or ClickHouse settings sent with every insert, as in the Collector.

``database`` defaults to ``otel`` (v0.165.0 changed the Collector's default to ``default``), and
``async_insert`` (default true) becomes the ``async_insert`` setting of a server
connection; the embedded store gets no async inserts (its inserts are already batched and
in-process, so the server-side buffer would only add latency).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration, ExporterConfig, parse_duration

DEFAULT_DATABASE = "default"
# the default `timeout` of chdb:// endpoints (the Collector's 5 s stays for servers)
EMBEDDED_TIMEOUT = 30.0
OTEL_DATABASE = "otel"
_NETWORK_SCHEMES = ("http", "https", "tcp", "clickhouse")
# native protocol port -> HTTP interface port of the same server
_NATIVE_TO_HTTP = {9000: 8123, 9440: 8443}
# clickhouse-go DSN options that configure the driver, not the server session
_DRIVER_PARAMS = frozenset(
    {
        "secure",
        "skip_verify",
        "compress",
        "compress_level",
        "dial_timeout",
        "read_timeout",
        "debug",
        "client_info_product",
        "block_buffer_size",
        "max_compression_buffer",
        "max_open_conns",
        "max_idle_conns",
        "conn_max_lifetime",
        "connection_open_strategy",
        "username",
        "password",
        "database",
        "http_proxy",
        "http_path",
        "http_url_path",
        "client_name",
    }
)
_COMPRESS = ("", "none", "true", "lz4", "zstd", "gzip", "deflate", "br")


class EngineSettings(ComponentConfig):
    name: str = ""
    params: str = ""


class MetricTypeTable(ComponentConfig):
    name: str = ""


class MetricsTables(ComponentConfig):
    gauge: MetricTypeTable = Field(default_factory=MetricTypeTable)
    sum: MetricTypeTable = Field(default_factory=MetricTypeTable)
    summary: MetricTypeTable = Field(default_factory=MetricTypeTable)
    histogram: MetricTypeTable = Field(default_factory=MetricTypeTable)
    exponential_histogram: MetricTypeTable = Field(default_factory=MetricTypeTable)


class TLSClientSettings(ComponentConfig):
    """configtls.ClientConfig keys; the file-based ones reach clickhouse-connect."""

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

    @model_validator(mode="after")
    def _files_only(self) -> TLSClientSettings:
        inline = [k for k in ("ca_pem", "cert_pem", "key_pem") if getattr(self, k)]
        if inline:
            raise ValueError(
                f"{', '.join(inline)}: inline PEM is not supported by this exporter's "
                "ClickHouse client; use ca_file / cert_file / key_file"
            )
        return self


class QueryUser(ComponentConfig):
    """A user of the query endpoint, as in ClickHouse's users.xml: the password is stored as
    its SHA-256 (`echo -n secret | sha256sum`); empty means no password."""

    password_sha256_hex: str = ""
    # ClickHouse's `readonly`: 1 reads only (the default), 2 reads and may change settings in
    # the query text (which also allows table functions such as file() and url()), 0 anything
    readonly: Literal[0, 1, 2] = 1

    @field_validator("password_sha256_hex")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("password_sha256_hex must be 64 hex digits (sha256 of the password)")
        return value


class QueryEndpoint(ComponentConfig):
    """AIRIS addition: serve the embedded store over ClickHouse's HTTP interface."""

    # host:port; empty disables the endpoint
    endpoint: str = ""
    # no users configured: one `default` user without a password, as a fresh ClickHouse server
    users: dict[str, QueryUser] = Field(default_factory=dict)
    # the database of unqualified table names; unset: the exporter's database
    database: str | None = None
    # 0 means unlimited, as in ClickHouse; a number is seconds (ClickHouse's unit), a string
    # a duration ("30s", "2m")
    max_execution_time: float = 60.0
    max_result_rows: int = Field(0, ge=0)
    max_result_bytes: int = Field(0, ge=0)
    max_concurrent_queries: int = Field(8, ge=1)

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        value = value.strip()
        if value:
            _host, sep, port = value.rpartition(":")
            if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ValueError(f"endpoint {value!r} must be host:port")
        return value

    @field_validator("max_execution_time", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("max_execution_time")
    @classmethod
    def _non_negative_time(cls, value: float) -> float:
        if value < 0:
            raise ValueError("max_execution_time must not be negative")
        return value

    def address(self) -> tuple[str, int]:
        host, _, port = self.endpoint.rpartition(":")
        return host.strip("[]"), int(port)

    def accounts(self) -> dict[str, QueryUser]:
        return self.users or {"default": QueryUser()}


class MetricsRollup(ComponentConfig):
    """AIRIS addition: per-minute count/sum/min/max of gauge and sum points."""

    enabled: bool = True
    table_name: str = "otel_metrics_rollup_1m"
    # unset: the exporter's `ttl`
    ttl: Duration | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed `endpoint`: either an embedded store path or HTTP server addresses."""

    kind: Literal["chdb", "http"]
    path: str = ""
    hosts: tuple[tuple[str, int], ...] = ()
    secure: bool = False
    database: str = ""
    username: str = ""
    password: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint string; ValueError names what is wrong."""
    raw = text.strip()
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise ValueError(
            f"endpoint {text!r} must be a URL: chdb://PATH, http(s)://HOST:PORT, "
            "tcp://HOST:PORT or clickhouse://HOST:PORT"
        )
    if scheme == "chdb":
        path, _, query = rest.partition("?")
        path = unquote(path)
        if not path:
            raise ValueError(
                "endpoint chdb:// needs a store path, e.g. chdb://./data/clickhouse "
                "(relative to the working directory) or chdb:///var/lib/airis"
            )
        return Endpoint(kind="chdb", path=path, params=dict(parse_qsl(query)))
    if scheme not in _NETWORK_SCHEMES:
        raise ValueError(
            f"endpoint scheme {scheme!r} is not supported: use chdb, http, https, tcp or clickhouse"
        )
    # the Collector also accepts "tcp://a:9000,tcp://b:9000": drop the repeated schemes
    rest = re.sub(rf",\s*(?:{'|'.join(_NETWORK_SCHEMES)})://", ",", rest, flags=re.I)
    parts = urlsplit(f"{scheme}://{rest}")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    secure = scheme == "https" or params.get("secure", "").lower() in ("true", "1")
    netloc = parts.netloc
    username = password = ""
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, pw = userinfo.partition(":")
        username, password = unquote(user), unquote(pw)
    hosts = []
    for item in netloc.split(","):
        item = item.strip()
        if not item:
            continue
        hosts.append(_host_port(item, scheme, secure, text))
    if not hosts:
        raise ValueError(f"endpoint {text!r} names no host")
    database = unquote(parts.path.strip("/"))
    return Endpoint(
        kind="http",
        hosts=tuple(hosts),
        secure=secure,
        database=database,
        username=username,
        password=password,
        params=params,
    )


def _host_port(item: str, scheme: str, secure: bool, text: str) -> tuple[str, int]:
    if item.startswith("["):  # [ipv6]:port
        host, _, tail = item[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError(f"endpoint {text!r}: empty host in {item!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"endpoint {text!r}: invalid port {port_text!r}")
        port = int(port_text)
    elif scheme in ("http", "https"):
        port = 8443 if secure else 8123
    else:
        port = 9440 if secure else 9000
    if scheme in ("tcp", "clickhouse"):
        port = _NATIVE_TO_HTTP.get(port, port)
    return host, port


class ClickHouseConfig(ExporterConfig):
    endpoint: str
    username: str = ""
    password: SecretStr = SecretStr("")
    # unset: the endpoint's database (`http://host:8123/db`), else `otel` (AIRIS's default,
    # the Collector's before v0.165 — v0.165 changed it to `default`)
    database: str | None = None
    database_engine: EngineSettings = Field(default_factory=EngineSettings)
    # AIRIS addition: data of an authenticated tenant (see the auth extensions' authorization)
    # goes to this database, `{tenant}` replaced by the tenant's name (letters, digits and _
    # kept, anything else as _); data with no tenant goes to `database`. Empty: off.
    tenant_database: str = ""
    tls: TLSClientSettings = Field(default_factory=TLSClientSettings)
    connection_params: dict[str, str] = Field(default_factory=dict)
    logs_table_name: str = "otel_logs"
    traces_table_name: str = "otel_traces"
    # accepted for config compatibility: AIRIS has no profiles pipeline
    profiles_table_name: str = "otel_profiles"
    # deprecated in the Collector: base name for the metric tables when metrics_tables is unset
    metrics_table_name: str = ""
    ttl: Duration = 0.0
    table_engine: EngineSettings = Field(default_factory=EngineSettings)
    cluster_name: str = ""
    create_schema: bool = True
    compress: str = ""
    async_insert: bool = True
    # the Collector's JSON-column schema variant; AIRIS writes the default Map schema only
    json_columns: bool = Field(False, alias="json")
    metrics_tables: MetricsTables = Field(default_factory=MetricsTables)
    metrics_rollup: MetricsRollup = Field(default_factory=MetricsRollup)
    # AIRIS addition: ClickHouse's HTTP interface over the embedded (chdb://) store
    query_endpoint: QueryEndpoint = Field(default_factory=QueryEndpoint)

    _endpoint: Endpoint = PrivateAttr()

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("endpoint must be specified")
        parse_endpoint(value)
        return value.strip()

    @field_validator("compress")
    @classmethod
    def _check_compress(cls, value: str) -> str:
        if value.lower() not in _COMPRESS:
            raise ValueError(f"compress must be one of {', '.join(c for c in _COMPRESS if c)}")
        return value.lower()

    @field_validator("json_columns")
    @classmethod
    def _map_schema_only(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "json: true (JSON attribute columns) is not supported; AIRIS writes the "
                "exporter's default Map(LowCardinality(String), String) schema"
            )
        return value

    @field_validator("ttl")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("ttl must not be negative")
        return value

    @model_validator(mode="after")
    def _derive(self) -> ClickHouseConfig:
        self._endpoint = parse_endpoint(self.endpoint)
        if self.query_endpoint.endpoint and self._endpoint.kind != "chdb":
            raise ValueError(
                "query_endpoint serves the embedded store only (a chdb:// endpoint); "
                "a ClickHouse server answers queries itself"
            )
        for key in ("dial_timeout", "read_timeout"):
            if key in self.params():
                try:
                    parse_duration(self.params()[key])
                except ValueError as exc:
                    raise ValueError(f"endpoint/connection_params {key}: {exc}") from None
        # buildMetricTableNames: unset names derive from metrics_table_name or otel_metrics
        tables = self.metrics_tables
        named = any(
            getattr(tables, kind).name
            for kind in ("gauge", "sum", "summary", "histogram", "exponential_histogram")
        )
        base = self.metrics_table_name if self.metrics_table_name and not named else "otel_metrics"
        for kind in ("gauge", "sum", "summary", "histogram", "exponential_histogram"):
            table = getattr(tables, kind)
            if not table.name:
                table.name = f"{base}_{kind}"
        if self._endpoint.kind == "chdb" and "timeout" not in self.model_fields_set:
            # the embedded engine shares the collector's cores: under load an insert (grouped,
            # see coalesce.py) can outlast 5 s, and a timed-out insert that then succeeds is
            # inserted again by the retry
            self.timeout = EMBEDDED_TIMEOUT
        return self

    # --- derived values ---------------------------------------------------------------
    @property
    def target(self) -> Endpoint:
        return self._endpoint

    def params(self) -> dict[str, str]:
        """Endpoint query parameters overridden by connection_params."""
        return {**self._endpoint.params, **self.connection_params}

    def settings(self) -> dict[str, str]:
        """ClickHouse settings sent with inserts: every non-driver parameter, plus
        async_insert from the config unless a parameter sets it."""
        settings = {k: v for k, v in self.params().items() if k not in _DRIVER_PARAMS}
        if "async_insert" not in settings and self._endpoint.kind == "http":
            settings["async_insert"] = "1" if self.async_insert else "0"
        return settings

    @field_validator("tenant_database")
    @classmethod
    def _tenant_placeholder(cls, value: str) -> str:
        if value and "{tenant}" not in value:
            raise ValueError("must contain {tenant}, e.g. otel_{tenant}")
        return value

    def database_name(self) -> str:
        """The config's database, else the endpoint's, else `otel`."""
        return self.database or self._endpoint.database or OTEL_DATABASE

    def compression(self) -> str | bool:
        value = self.params().get("compress", self.compress).lower()
        if value in ("", "true"):
            return "lz4"
        if value in ("none", "false"):
            return False
        return value

    def metric_table(self, kind: str) -> str:
        return getattr(self.metrics_tables, kind).name
