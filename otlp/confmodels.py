"""Config types shared by components: Go-style durations and sizes, exporter queue/retry keys."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from otlp.component import ComponentConfig

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Go's time.ParseDuration ("1h30m", "200ms", "0") → seconds. Numbers are nanoseconds,
    as when the Collector decodes an integer into a time.Duration."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5s or 200ms")
    if isinstance(value, int | float):
        return float(value) / 1e9
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 5s or 200ms")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r}: expected a duration such as 5s or 200ms")
    return sign * total


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds as float, written in config as a Go duration string."""


class TimeoutSettings(ComponentConfig):
    timeout: Duration = 5.0


class QueueBatchSettings(ComponentConfig):
    """exporterhelper's `sending_queue.batch`: consumers merge queued batches into exports of
    at least `min_size` (or what `flush_timeout` after the first one gathered) and at most
    `max_size` (0: no limit), in `sizer` units (items or bytes)."""

    flush_timeout: Duration = 0.2
    # default: the queue's sizer when that is set to items or bytes, else items
    sizer: str = Field("items", pattern="^(items|bytes)$")
    min_size: int = Field(8192, ge=0)
    max_size: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> QueueBatchSettings:
        if self.flush_timeout <= 0:
            raise ValueError("flush_timeout must be positive")
        if self.max_size and self.max_size < self.min_size:
            raise ValueError("max_size must be greater or equal to min_size")
        return self


class QueueSettings(ComponentConfig):
    """exporterhelper's `sending_queue`."""

    enabled: bool = True
    num_consumers: int = Field(10, ge=1)
    queue_size: int = Field(1000, ge=1)
    # what queue_size counts: requests (batches), items (spans/points/records) or bytes
    sizer: str = Field("requests", pattern="^(requests|items|bytes)$")
    # id of a storage extension (file_storage) making the queue persistent
    storage: str | None = None
    # block the caller instead of refusing when full (the Collector's `block_on_overflow`)
    block_on_overflow: bool = False
    wait_for_result: bool = False
    # absent: each queued batch is exported as it is (the Collector's default)
    batch: QueueBatchSettings | None = None

    @model_validator(mode="after")
    def _batch_sizer(self) -> QueueSettings:
        batch = self.batch
        if batch is None:
            return self
        if "sizer" in self.model_fields_set and "sizer" not in batch.model_fields_set:
            if self.sizer not in ("items", "bytes"):
                raise ValueError("batch supports only the items or bytes sizer; set batch.sizer")
            batch.sizer = self.sizer
        if batch.sizer == self.sizer and batch.min_size > self.queue_size:
            raise ValueError("batch.min_size must be less than or equal to queue_size")
        return self


class RetrySettings(ComponentConfig):
    """exporterhelper's `retry_on_failure` (exponential backoff with jitter)."""

    enabled: bool = True
    initial_interval: Duration = 5.0
    randomization_factor: float = Field(0.5, ge=0, le=1)
    multiplier: float = Field(1.5, ge=1)
    max_interval: Duration = 30.0
    # 0 means retry forever
    max_elapsed_time: Duration = 300.0


class CircuitBreakerSettings(ComponentConfig):
    """AIRIS addition (the Collector has no circuit breaker): stop calling a backend that
    keeps failing, and let the queue hold the data meanwhile.

    Closed: every export goes through; `failure_threshold` failed attempts in a row (errors
    or timeouts, not data the backend rejects as invalid) open it. Open: no export is tried
    for `open_interval`; batches wait in the queue and the wait does not count against
    `retry_on_failure.max_elapsed_time`. Half-open: `half_open_probes` exports are let
    through; when all succeed it closes, when one fails it opens again. One breaker guards
    each exporter, shared by the signals it exports.
    """

    enabled: bool = True
    failure_threshold: int = Field(5, ge=1)
    open_interval: Duration = Field(10.0, gt=0)
    half_open_probes: int = Field(1, ge=1)


class ExporterConfig(ComponentConfig):
    """Base for exporters that sit behind the runtime's queue and retry helper."""

    timeout: Duration = 5.0
    sending_queue: QueueSettings = Field(default_factory=QueueSettings)
    retry_on_failure: RetrySettings = Field(default_factory=RetrySettings)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
