"""Config of the debug exporter (the Collector's debugexporter keys and defaults)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import QueueSettings, RetrySettings

VERBOSITIES = ("basic", "normal", "detailed")


class DebugConfig(ComponentConfig):
    verbosity: str = "basic"
    # zap's sampler: per message and second, the first `sampling_initial` are written, then
    # every `sampling_thereafter`-th (1 = no sampling)
    sampling_initial: int = 2
    sampling_thereafter: int = 1
    use_internal_logger: bool = True
    # only without the internal logger; "stdout", "stderr" or file paths (default ["stdout"])
    output_paths: list[str] | None = None
    # the Collector's debug exporter has a queue only when the key is present
    sending_queue: QueueSettings = Field(default_factory=lambda: QueueSettings(enabled=False))

    # what the runtime's QueuedExporter reads besides sending_queue; not config keys here,
    # since the Collector's debug exporter has neither (it never times out nor retries)
    timeout: ClassVar[float] = 0.0
    retry_on_failure: ClassVar[RetrySettings] = RetrySettings(enabled=False)

    @field_validator("verbosity", mode="before")
    @classmethod
    def _verbosity(cls, value: object) -> object:
        # configtelemetry.Level is case-insensitive; "none" parses there but is refused here
        text = str(value).lower()
        if text not in VERBOSITIES:
            raise ValueError(
                f"verbosity level {value!r} is not supported (basic, normal, detailed)"
            )
        return text

    @model_validator(mode="after")
    def _outputs(self) -> DebugConfig:
        if self.output_paths is not None:
            if self.use_internal_logger:
                raise ValueError("output_paths is not supported when use_internal_logger is true")
            if not self.output_paths:
                raise ValueError("output_paths must not be empty when use_internal_logger is false")
        return self
