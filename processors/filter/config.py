from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from otlp.component import ComponentConfig
from otlp.ottl import Condition
from otlp.ottl.contexts import SIGNAL_CONTEXTS
from otlp.ottl.runtime import ErrorMode
from processors.transform.config import infer_context

ContextName = Literal["resource", "scope", "span", "spanevent", "metric", "datapoint", "log"]


def _compile(texts: list[str], context: str) -> Condition:
    # OttlError is a ValueError: pydantic reports it under the key path of the list
    return Condition(texts, context)


class TracesConditions(ComponentConfig):
    span: list[str] = Field(default_factory=list)
    spanevent: list[str] = Field(default_factory=list)

    @field_validator("span")
    @classmethod
    def _span(cls, v: list[str]) -> list[str]:
        _compile(v, "span")
        return v

    @field_validator("spanevent")
    @classmethod
    def _spanevent(cls, v: list[str]) -> list[str]:
        _compile(v, "spanevent")
        return v


class MetricsConditions(ComponentConfig):
    metric: list[str] = Field(default_factory=list)
    datapoint: list[str] = Field(default_factory=list)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: list[str]) -> list[str]:
        _compile(v, "metric")
        return v

    @field_validator("datapoint")
    @classmethod
    def _datapoint(cls, v: list[str]) -> list[str]:
        _compile(v, "datapoint")
        return v


class LogsConditions(ComponentConfig):
    log_record: list[str] = Field(default_factory=list)

    @field_validator("log_record")
    @classmethod
    def _log_record(cls, v: list[str]) -> list[str]:
        _compile(v, "log")
        return v


class ConditionGroup(ComponentConfig):
    """An entry of ``trace_conditions``/``metric_conditions``/``log_conditions`` in the
    advanced form; without ``context`` it is inferred from the path prefixes."""

    context: ContextName | None = None
    conditions: list[str] = Field(min_length=1)
    error_mode: ErrorMode | None = None


class CompiledConditions:
    def __init__(
        self, signal: str, context: str | None, texts: list[str], error_mode: ErrorMode
    ) -> None:
        self.context = context or infer_context(signal, texts)
        if self.context not in SIGNAL_CONTEXTS[signal]:
            raise ValueError(f"context {self.context!r} is not available for {signal}")
        self.condition = Condition(texts, self.context)
        self.error_mode: ErrorMode = error_mode


_SIGNAL_OF = {
    "trace_conditions": "traces",
    "metric_conditions": "metrics",
    "log_conditions": "logs",
}


def compile_entries(
    key: str, entries: list[ConditionGroup | str], error_mode: ErrorMode
) -> list[CompiledConditions]:
    signal = _SIGNAL_OF[key]
    out = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(CompiledConditions(signal, None, [entry], error_mode))
        else:
            out.append(
                CompiledConditions(
                    signal, entry.context, entry.conditions, entry.error_mode or error_mode
                )
            )
    return out


class FilterConfig(ComponentConfig):
    """The Collector's filterprocessor OTTL keys: items matching any condition are dropped.
    Both the context blocks (``traces.span``, ...) and the newer lists with context
    inference (``trace_conditions``, ...) are accepted. (The legacy include/exclude keys
    are not supported and fail config load.)"""

    error_mode: ErrorMode = "propagate"
    traces: TracesConditions = Field(default_factory=TracesConditions)
    metrics: MetricsConditions = Field(default_factory=MetricsConditions)
    logs: LogsConditions = Field(default_factory=LogsConditions)
    trace_conditions: list[ConditionGroup | str] = Field(default_factory=list)
    metric_conditions: list[ConditionGroup | str] = Field(default_factory=list)
    log_conditions: list[ConditionGroup | str] = Field(default_factory=list)

    @field_validator("trace_conditions", "metric_conditions", "log_conditions")
    @classmethod
    def _compile_entries(
        cls, entries: list[ConditionGroup | str], info: ValidationInfo
    ) -> list[ConditionGroup | str]:
        for i, entry in enumerate(entries):
            try:
                compile_entries(info.field_name or "", [entry], "propagate")
            except ValueError as exc:
                raise ValueError(f"[{i}]: {exc}") from None
        return entries

    def compiled(self, signal: str) -> list[CompiledConditions]:
        """Every condition group for ``signal``, the context blocks first."""
        mode = self.error_mode
        blocks: list[tuple[str, list[str]]] = {
            "traces": [("span", self.traces.span), ("spanevent", self.traces.spanevent)],
            "metrics": [("metric", self.metrics.metric), ("datapoint", self.metrics.datapoint)],
            "logs": [("log", self.logs.log_record)],
        }[signal]
        out = [CompiledConditions(signal, ctx, texts, mode) for ctx, texts in blocks if texts]
        key = {
            "traces": "trace_conditions",
            "metrics": "metric_conditions",
            "logs": "log_conditions",
        }
        return out + compile_entries(key[signal], getattr(self, key[signal]), mode)
