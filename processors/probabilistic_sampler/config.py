from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from otlp.component import ComponentConfig
from processors.probabilistic_sampler.sampling import MIN_PROBABILITY, NUM_HEX_DIGITS


class ProbabilisticSamplerConfig(ComponentConfig):
    """The Collector's probabilisticsamplerprocessor (contrib 0.165): same keys, defaults
    and validation messages."""

    # a float32 in the Collector: the value is rounded to float32 before any arithmetic
    sampling_percentage: float = 0.0
    hash_seed: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    # "" (unset) behaves as hash_seed, the Collector's default mode
    mode: Literal["hash_seed", "equalizing", "proportional", ""] = ""
    fail_closed: bool = True
    sampling_precision: int = 4
    # logs only
    attribute_source: Literal["traceID", "record"] = "traceID"
    from_attribute: str = ""
    sampling_priority: str = ""

    @field_validator("sampling_percentage")
    @classmethod
    def _percentage(cls, v: float) -> float:
        pct = float(np.float32(v))
        if math.isinf(pct) or math.isnan(pct):
            raise ValueError(f"sampling rate is invalid: {pct:f}%")
        ratio = pct / 100.0
        if ratio < 0:
            raise ValueError(f"sampling rate is negative: {pct:f}%")
        if 0 < ratio < MIN_PROBABILITY:
            raise ValueError(f"sampling rate is too small: {pct:g}%")
        return v

    @model_validator(mode="after")
    def _precision(self) -> ProbabilisticSamplerConfig:
        # (the Collector checks only 0; a negative precision is meaningless too)
        if self.sampling_precision <= 0:
            raise ValueError(f"invalid sampling precision: {self.sampling_precision}")
        if self.sampling_precision > NUM_HEX_DIGITS:
            raise ValueError(
                f"sampling precision is too great, should be <= 14: {self.sampling_precision}"
            )
        return self

    @property
    def percentage32(self) -> np.float32:
        return np.float32(self.sampling_percentage)
