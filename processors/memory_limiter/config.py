from __future__ import annotations

from pydantic import Field, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration


class MemoryLimiterConfig(ComponentConfig):
    """The Collector's memorylimiterprocessor keys. Limits apply to the process's resident
    memory (the Collector measures the Go heap; a Python process has no separate heap)."""

    check_interval: Duration = 0.0
    limit_mib: int = Field(0, ge=0)
    spike_limit_mib: int = Field(0, ge=0)
    limit_percentage: int = Field(0, ge=0, le=100)
    spike_limit_percentage: int = Field(0, ge=0, le=100)
    min_gc_interval_when_soft_limited: Duration = 10.0
    min_gc_interval_when_hard_limited: Duration = 0.0

    @model_validator(mode="after")
    def _check(self) -> MemoryLimiterConfig:
        if self.check_interval <= 0:
            raise ValueError("check_interval must be greater than zero")
        if self.limit_mib == 0 and self.limit_percentage == 0:
            raise ValueError("either limit_mib or limit_percentage must be set")
        if self.limit_mib and self.spike_limit_mib >= self.limit_mib:
            raise ValueError("spike_limit_mib must be smaller than limit_mib")
        if self.limit_percentage and self.spike_limit_percentage >= self.limit_percentage:
            raise ValueError("spike_limit_percentage must be smaller than limit_percentage")
        return self
