"""Config of the `elasticsearch` exporter: the OTel Collector contrib elasticsearchexporter's
keys (v0.165) where they apply, plus exporterhelper's timeout / sending_queue /
retry_on_failure so the runtime's queue, retries and circuit breaker sit in front of it.

AIRIS additions: `bearer_token` (the Collector would use a bearertokenauth extension) and
`templates` (index/component templates installed at start). Differences from the
Collector's defaults: `retry.retry_on_status` also retries 5xx per document (the Collector
retries only 429 by default), and `flush` coalesces the batches of concurrent queue workers
into one bulk request but never returns before the documents are indexed (at-least-once
with the sending queue, as the Collector's `batcher` mode does).
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from exporters.otlp.config import TLSClientConfig
from otlp.component import ComponentConfig
from otlp.confmodels import Duration, ExporterConfig

MAPPING_MODES = ("otel", "ecs", "raw", "none", "bodymap")
ENV_ENDPOINTS = "ELASTICSEARCH_URL"


class DynamicIndexSettings(ComponentConfig):
    """Deprecated in the Collector (dynamic routing is the default when `*_index` is empty);
    accepted so existing configs load."""

    enabled: bool = False


class FlushSettings(ComponentConfig):
    # a bulk request is sent once this many bytes of NDJSON are buffered ...
    bytes: int = Field(5_000_000, ge=1)
    # ... or the oldest buffered document is this old
    interval: Duration = Field(10.0, ge=0)


class BulkRetrySettings(ComponentConfig):
    """`retry`: the bulk request and each document in it (by its item status)."""

    enabled: bool = True
    max_retries: int = Field(2, ge=0)
    # deprecated in the Collector (max_requests = max_retries + 1)
    max_requests: int = Field(0, ge=0)
    initial_interval: Duration = 0.1
    max_interval: Duration = 60.0
    retry_on_status: list[int] = Field(default_factory=lambda: [429, 500, 502, 503, 504])

    @model_validator(mode="after")
    def _requests(self) -> BulkRetrySettings:
        if self.max_requests and "max_retries" in self.model_fields_set:
            raise ValueError("must not specify both retry::max_requests and retry::max_retries")
        if self.max_requests:
            self.max_retries = self.max_requests - 1
        return self


class MappingSettings(ComponentConfig):
    mode: str = "otel"
    allowed_modes: list[str] = Field(default_factory=lambda: list(MAPPING_MODES))
    # deprecated no-ops in the Collector
    dedup: bool | None = None
    dedot: bool | None = None

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        mode = value.lower() or "none"
        mode = "none" if mode == "no" else mode
        if mode not in MAPPING_MODES:
            raise ValueError(f"unknown mapping mode {value!r}: expected one of {MAPPING_MODES}")
        return mode


class DiscoverSettings(ComponentConfig):
    on_start: bool = False
    interval: Duration = 0.0


class TemplatesSettings(ComponentConfig):
    """AIRIS addition: install a component template and per-signal index templates at start
    (keyword dynamic templates for attributes, a text body with a keyword sub-field, 5 s
    refresh, best_compression, the Korean `nori` analyzer when the cluster has it)."""

    create: bool = False
    # index template priority: above Elasticsearch's built-in logs-*-* / traces-*-* (100)
    priority: int = Field(200, ge=0)
    refresh_interval: str = "5s"
    codec: str = "best_compression"
    number_of_shards: int | None = Field(None, ge=1)
    number_of_replicas: int | None = Field(None, ge=0)
    # nori when the cluster has the analysis-nori plugin (detected), standard otherwise;
    # set to a name to force an analyzer
    analyzer: str = "auto"


class AuthExtension(ComponentConfig):
    authenticator: str = ""


class ElasticsearchConfig(ExporterConfig):
    endpoint: str = ""
    endpoints: list[str] = Field(default_factory=list)
    cloudid: str = ""
    num_workers: int = Field(0, ge=0)  # 0: the number of CPUs
    logs_index: str = ""
    logs_dynamic_index: DynamicIndexSettings = Field(default_factory=DynamicIndexSettings)
    metrics_index: str = ""
    metrics_dynamic_index: DynamicIndexSettings = Field(default_factory=DynamicIndexSettings)
    traces_index: str = ""
    traces_dynamic_index: DynamicIndexSettings = Field(default_factory=DynamicIndexSettings)
    pipeline: str = ""
    # HTTP client settings (confighttp subset) and the Collector's auth shortcuts
    user: str = ""
    password: str = ""
    api_key: str = ""
    bearer_token: str = ""
    auth: AuthExtension | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    tls: TLSClientConfig = Field(default_factory=TLSClientConfig)
    compression: Literal["gzip", "none", ""] = "gzip"
    timeout: Duration = 90.0
    discover: DiscoverSettings = Field(default_factory=DiscoverSettings)
    retry: BulkRetrySettings = Field(default_factory=BulkRetrySettings)
    flush: FlushSettings = Field(default_factory=FlushSettings)
    mapping: MappingSettings = Field(default_factory=MappingSettings)
    templates: TemplatesSettings = Field(default_factory=TemplatesSettings)
    include_source_on_error: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> ElasticsearchConfig:
        self.resolved_endpoints()  # raises on a bad endpoint
        if self.auth is not None:
            raise ValueError(
                "auth: client authenticator extensions are not supported; use user/password, "
                "api_key or bearer_token"
            )
        if sum(bool(x) for x in (self.user or self.password, self.api_key, self.bearer_token)) > 1:
            raise ValueError("set only one of user/password, api_key and bearer_token")
        for signal in ("logs", "metrics", "traces"):
            index = getattr(self, f"{signal}_index")
            dynamic = getattr(self, f"{signal}_dynamic_index")
            if index and dynamic.enabled:
                raise ValueError(
                    f"must not specify both {signal}_index and {signal}_dynamic_index; "
                    f"{signal}_index should be empty unless all documents should be sent "
                    "to the same index"
                )
        if self.mapping.mode not in [m.lower() for m in self.mapping.allowed_modes]:
            raise ValueError(f"mapping::mode {self.mapping.mode!r} is not in allowed_modes")
        return self

    def resolved_endpoints(self) -> list[str]:
        """Exactly one of endpoint, endpoints, cloudid; else $ELASTICSEARCH_URL."""
        given = [x for x in (self.endpoint, self.endpoints, self.cloudid) if x]
        if len(given) > 1:
            raise ValueError("exactly one of [endpoint, endpoints, cloudid] must be specified")
        if self.endpoint:
            urls = [self.endpoint]
        elif self.endpoints:
            urls = list(self.endpoints)
        elif self.cloudid:
            urls = [_cloud_url(self.cloudid)]
        else:
            env = os.environ.get(ENV_ENDPOINTS, "")
            urls = [u.strip() for u in env.split(",") if u.strip()]
            if not urls:
                raise ValueError(
                    "exactly one of [endpoint, endpoints, cloudid] must be specified "
                    f"(or ${ENV_ENDPOINTS})"
                )
        for url in urls:
            if not url:
                raise ValueError("endpoint must not be empty")
            scheme = urlsplit(url).scheme
            if scheme not in ("http", "https"):
                raise ValueError(f'invalid endpoint {url!r}: scheme must be "http" or "https"')
        return urls


def _cloud_url(cloudid: str) -> str:
    import base64
    import binascii

    _, sep, encoded = cloudid.partition(":")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode() if sep else ""
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    host, sep2, rest = decoded.partition("$")
    if not sep2:
        raise ValueError(f"invalid cloudid {cloudid!r}")
    es_id = rest.split("$", 1)[0]
    return f"https://{es_id}.{host}"
