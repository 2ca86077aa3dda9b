"""tail_sampling config: the keys of contrib's tailsamplingprocessor (v0.165).

Policies are validated at config load (the Collector does it when the processor starts):
names, types, status codes, regular expressions and OTTL conditions, so a bad policy fails
before any port is bound.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration
from otlp.ottl.runtime import ErrorMode
from processors.filter.config import TracesConditions

PolicyType = Literal[
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "rate_limiting",
    "bytes_limiting",
    "span_count",
    "trace_state",
    "boolean_attribute",
    "ottl_condition",
    "trace_flags",
    "composite",
    "and",
    "not",
    "drop",
]
STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


class LatencyCfg(ComponentConfig):
    threshold_ms: int = 0
    upper_threshold_ms: int = 0


class NumericAttributeCfg(ComponentConfig):
    key: str = ""
    min_value: int = 0
    max_value: int = 0
    invert_match: bool = False


class ProbabilisticCfg(ComponentConfig):
    hash_salt: str = ""
    sampling_percentage: float = 0.0


class StatusCodeCfg(ComponentConfig):
    status_codes: list[str] = Field(default_factory=list)


class StringAttributeCfg(ComponentConfig):
    key: str = ""
    values: list[str] = Field(default_factory=list)
    enabled_regex_matching: bool = False
    # the Collector's per-policy LRU of regex results; Arrow matches whole columns instead
    cache_max_size: int = 0
    invert_match: bool = False


class RateLimitingCfg(ComponentConfig):
    spans_per_second: int = 0
    burst_capacity: int = 0


class BytesLimitingCfg(ComponentConfig):
    bytes_per_second: int = 0
    burst_capacity: int = 0


class SpanCountCfg(ComponentConfig):
    min_spans: int = 0
    max_spans: int = 0


class TraceStateCfg(ComponentConfig):
    key: str = ""
    values: list[str] = Field(default_factory=list)


class BooleanAttributeCfg(ComponentConfig):
    key: str = ""
    value: bool = False
    invert_match: bool = False


class OttlConditionCfg(TracesConditions):
    """`span` and `spanevent` conditions, checked as the filter processor's are."""

    # unset behaves like the Collector's zero ErrorMode: failing conditions are skipped quietly
    error_mode: ErrorMode | None = None


class SharedPolicyCfg(ComponentConfig):
    """The leaf policy keys every level accepts (the Collector's sharedPolicyCfg)."""

    name: str = ""
    type: PolicyType
    latency: LatencyCfg = Field(default_factory=LatencyCfg)
    numeric_attribute: NumericAttributeCfg = Field(default_factory=NumericAttributeCfg)
    probabilistic: ProbabilisticCfg = Field(default_factory=ProbabilisticCfg)
    status_code: StatusCodeCfg = Field(default_factory=StatusCodeCfg)
    string_attribute: StringAttributeCfg = Field(default_factory=StringAttributeCfg)
    rate_limiting: RateLimitingCfg = Field(default_factory=RateLimitingCfg)
    bytes_limiting: BytesLimitingCfg = Field(default_factory=BytesLimitingCfg)
    span_count: SpanCountCfg = Field(default_factory=SpanCountCfg)
    trace_state: TraceStateCfg = Field(default_factory=TraceStateCfg)
    boolean_attribute: BooleanAttributeCfg = Field(default_factory=BooleanAttributeCfg)
    ottl_condition: OttlConditionCfg = Field(default_factory=OttlConditionCfg)

    # which composite types a level allows (the Collector's config structs differ per level)
    allowed_composites: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _check_leaf(self) -> SharedPolicyCfg:
        check_leaf(self)
        composites = {"composite", "and", "not", "drop"}
        if self.type in composites and self.type not in self.allowed_composites:
            raise ValueError(f'policy "{self.name}": type {self.type} is not allowed here')
        not_cfg = getattr(self, "not_", None)
        if self.type == "not" and (not_cfg is None or not_cfg.not_sub_policy is None):
            raise ValueError(f'policy "{self.name}": type not needs not.not_sub_policy')
        return self


def check_leaf(cfg: SharedPolicyCfg) -> None:
    """The checks the Collector's evaluator constructors make, at config load."""
    where = f'policy "{cfg.name}"'
    if cfg.type == "status_code":
        if not cfg.status_code.status_codes:
            raise ValueError(f"{where}: expected at least one status code to filter on")
        for code in cfg.status_code.status_codes:
            if code not in STATUS_CODES:
                raise ValueError(
                    f'{where}: unknown status code "{code}", supported: OK, ERROR, UNSET'
                )
    elif cfg.type == "numeric_attribute":
        if cfg.numeric_attribute.min_value == 0 and cfg.numeric_attribute.max_value == 0:
            raise ValueError(f"{where}: at least one of min_value or max_value must be set")
    elif cfg.type == "string_attribute" and cfg.string_attribute.enabled_regex_matching:
        for pattern in cfg.string_attribute.values:
            try:
                # RE2, the engine of Go's regexp package too
                pc.match_substring_regex(pa.array([""]), pattern)
            except pa.ArrowInvalid as exc:
                raise ValueError(f"{where}: invalid regex `{pattern}`: {exc}") from None
    elif cfg.type == "ottl_condition":
        if not cfg.ottl_condition.span and not cfg.ottl_condition.spanevent:
            raise ValueError(f"{where}: expected at least one OTTL condition to filter on")


class NotSubPolicyCfg(SharedPolicyCfg):
    pass


class NotCfg(ComponentConfig):
    not_sub_policy: NotSubPolicyCfg | None = None


class AndSubPolicyCfg(SharedPolicyCfg):
    allowed_composites: ClassVar[frozenset[str]] = frozenset({"not"})
    not_: NotCfg = Field(default_factory=NotCfg, alias="not")


class AndCfg(ComponentConfig):
    and_sub_policy: list[AndSubPolicyCfg] = Field(default_factory=list)


class DropCfg(ComponentConfig):
    drop_sub_policy: list[AndSubPolicyCfg] = Field(default_factory=list)


class CompositeSubPolicyCfg(SharedPolicyCfg):
    allowed_composites: ClassVar[frozenset[str]] = frozenset({"and"})
    and_: AndCfg = Field(default_factory=AndCfg, alias="and")


class RateAllocationCfg(ComponentConfig):
    policy: str = ""
    percent: int = 0


class CompositeCfg(ComponentConfig):
    max_total_spans_per_second: int = 0
    # accepted; as in the Collector, sub-policies are asked in the order they are listed
    policy_order: list[str] = Field(default_factory=list)
    composite_sub_policy: list[CompositeSubPolicyCfg] = Field(default_factory=list)
    rate_allocation: list[RateAllocationCfg] = Field(default_factory=list)


class PolicyCfg(SharedPolicyCfg):
    allowed_composites: ClassVar[frozenset[str]] = frozenset({"composite", "and", "not", "drop"})
    composite: CompositeCfg = Field(default_factory=CompositeCfg)
    and_: AndCfg = Field(default_factory=AndCfg, alias="and")
    not_: NotCfg = Field(default_factory=NotCfg, alias="not")
    drop: DropCfg = Field(default_factory=DropCfg)


class DecisionCacheCfg(ComponentConfig):
    sampled_cache_size: int = Field(0, ge=0)
    non_sampled_cache_size: int = Field(0, ge=0)


class TailSamplingConfig(ComponentConfig):
    decision_wait: Duration = 30.0
    # a root span (no parent) shortens the wait to this, when set
    decision_wait_after_root_received: Duration = 0.0
    num_traces: int = Field(50000, ge=1)
    # the Collector waits for room; an async receiver answers with backpressure instead
    block_on_overflow: bool = False
    # a sizing hint for the Collector's maps; Python dicts grow on their own
    expected_new_traces_per_sec: int = Field(0, ge=0)
    policies: list[PolicyCfg]
    decision_cache: DecisionCacheCfg = Field(default_factory=DecisionCacheCfg)
    sample_on_first_match: bool = False
    drop_pending_traces_on_shutdown: bool = False
    sampling_strategy: Literal["trace-complete"] = "trace-complete"
    maximum_trace_size_bytes: int = Field(0, ge=0)
    # one event loop holds every trace; shards would only split the same limits
    num_shards: int = Field(1, ge=1, le=256)

    @field_validator("maximum_trace_size_bytes")
    @classmethod
    def _max_size(cls, v: int) -> int:
        if v:
            raise ValueError("maximum_trace_size_bytes is not supported (only 0, the default)")
        return v

    @field_validator("policies")
    @classmethod
    def _names(cls, policies: list[PolicyCfg]) -> list[PolicyCfg]:
        seen: set[str] = set()
        for policy in policies:
            if not policy.name:
                raise ValueError("policy name cannot be empty")
            if policy.name in seen:
                raise ValueError(f'duplicate policy name "{policy.name}"')
            seen.add(policy.name)
        return policies
