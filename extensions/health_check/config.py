"""Config of the health_check extension: the contrib healthcheckextension's legacy (v1) keys."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from otlp.component import ComponentConfig


class ResponseBody(ComponentConfig):
    """Static bodies replacing the default JSON answer."""

    healthy: str = ""
    unhealthy: str = ""


class CheckCollectorPipeline(ComponentConfig):
    """Accepted for compatibility only: the Collector ignores it too (it never worked there)."""

    enabled: bool = False
    interval: str = "5m"
    exporter_failure_threshold: int = 5


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) → (host, port)."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected host:port, got {endpoint!r}")
    return host.removeprefix("[").removesuffix("]"), int(port_text)


class HealthCheckConfig(ComponentConfig):
    # the Collector's default is localhost:13133; 127.0.0.1 avoids binding ::1 only
    endpoint: str = "127.0.0.1:13133"
    path: str = "/"
    response_body: ResponseBody | None = None
    check_collector_pipeline: CheckCollectorPipeline = Field(default_factory=CheckCollectorPipeline)
    # opt-in to healthcheckv2 behaviour, which AIRIS does not implement
    use_v2: bool = False

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value:
            raise ValueError("endpoint must be specified")
        split_endpoint(value)
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with /")
        return value

    @model_validator(mode="after")
    def _v1_only(self) -> HealthCheckConfig:
        if self.use_v2:
            raise ValueError("use_v2: the healthcheckv2 behaviour is not supported; remove it")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        return split_endpoint(self.endpoint)
