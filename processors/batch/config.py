from __future__ import annotations

from pydantic import Field, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration


class BatchConfig(ComponentConfig):
    """The Collector's batchprocessor keys and defaults."""

    send_batch_size: int = Field(8192, ge=0)
    # 0: no upper bound
    send_batch_max_size: int = Field(0, ge=0)
    timeout: Duration = 0.2
    # request metadata keys (e.g. tenant) whose distinct values get separate batches
    metadata_keys: list[str] = Field(default_factory=list)
    metadata_cardinality_limit: int = Field(1000, ge=0)

    @model_validator(mode="after")
    def _max_not_below_size(self) -> BatchConfig:
        if self.send_batch_max_size and self.send_batch_max_size < self.send_batch_size:
            raise ValueError("send_batch_max_size must be greater or equal to send_batch_size")
        return self
