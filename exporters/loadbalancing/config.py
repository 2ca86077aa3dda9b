"""Config of the `loadbalancing` exporter: the Collector contrib loadbalancingexporter keys
(routing_key, protocol.otlp, resolver.static / resolver.dns) plus exporterhelper's queue,
retry and timeout, and one AIRIS addition, `backend_health`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from exporters.otlp.config import OTLPGrpcConfig
from otlp.component import ComponentConfig
from otlp.confmodels import Duration, ExporterConfig

RoutingKey = Literal["", "traceID", "service", "resource", "metric", "streamID", "attributes"]
# what the Collector routes by when routing_key is not set
DEFAULT_ROUTING = {"traces": "traceID", "logs": "service", "metrics": "service"}
ALLOWED_ROUTING = {
    "traces": {"traceID", "service", "resource", "attributes"},
    "logs": {"traceID", "service", "resource", "attributes"},
    "metrics": {"service", "resource", "metric", "streamID", "attributes"},
}


class BackendOTLPConfig(OTLPGrpcConfig):
    """protocol.otlp: every otlp exporter key; the endpoint comes from the resolver."""

    @model_validator(mode="after")
    def _require_endpoint(self) -> BackendOTLPConfig:
        return self


class ProtocolSettings(ComponentConfig):
    otlp: BackendOTLPConfig = Field(default_factory=BackendOTLPConfig)


class StaticResolver(ComponentConfig):
    hostnames: list[str] = Field(min_length=1)


class DNSResolver(ComponentConfig):
    hostname: str = Field(min_length=1)
    port: str = "4317"
    interval: Duration = 5.0
    timeout: Duration = 1.0


class ResolverSettings(ComponentConfig):
    static: StaticResolver | None = None
    dns: DNSResolver | None = None
    # accepted so a Collector config names them clearly in the error below
    k8s: dict[str, object] | None = None
    aws_cloud_map: dict[str, object] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ResolverSettings:
        set_ = [n for n in ("static", "dns", "k8s", "aws_cloud_map") if getattr(self, n)]
        if len(set_) != 1:
            raise ValueError(
                f"exactly one resolver must be configured (static or dns), found {set_ or 'none'}"
            )
        if set_[0] in ("k8s", "aws_cloud_map"):
            raise ValueError(
                f"{set_[0]}: not supported by AIRIS; use resolver.dns with the headless "
                "Service's name (it returns every ready pod's address)"
            )
        return self


class BackendHealth(ComponentConfig):
    """AIRIS addition: a backend whose sends fail `failure_threshold` times in a row because
    it cannot be reached (gRPC UNAVAILABLE: refused, reset, no route) leaves the ring for `cooldown`
    (doubling up to `max_cooldown` while it keeps failing), so its share is re-routed to
    the others instead of waiting in the queue. A slow backend (timeouts) keeps its keys.
    With a static resolver this is the only
    way a dead backend's share moves; with dns, re-resolution also removes it. Set
    `enabled: false` for the Collector's behaviour (keys stay on their backend)."""

    enabled: bool = True
    failure_threshold: int = Field(2, ge=1)
    cooldown: Duration = Field(5.0, gt=0)
    max_cooldown: Duration = Field(60.0, gt=0)


class LoadBalancingConfig(ExporterConfig):
    routing_key: RoutingKey = ""
    routing_attributes: list[str] = Field(default_factory=list)
    protocol: ProtocolSettings = Field(default_factory=ProtocolSettings)
    resolver: ResolverSettings
    backend_health: BackendHealth = Field(default_factory=BackendHealth)

    @model_validator(mode="after")
    def _attributes(self) -> LoadBalancingConfig:
        if self.routing_key == "attributes" and not self.routing_attributes:
            raise ValueError(
                "routing_attributes: must list attributes when routing_key is attributes"
            )
        return self
