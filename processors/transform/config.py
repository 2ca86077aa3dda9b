from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from otlp.component import ComponentConfig
from otlp.ottl import Condition, Statement
from otlp.ottl.contexts import PARENTS, PREFIXES, SIGNAL_CONTEXTS
from otlp.ottl.parser import _Parser
from otlp.ottl.runtime import ErrorMode

ContextName = Literal["resource", "scope", "span", "spanevent", "metric", "datapoint", "log"]


class StatementGroup(ComponentConfig):
    """One ``*_statements`` entry of the advanced form. Without ``context`` the context is
    inferred from the path prefixes (``span.name``, ``resource.attributes[...]``)."""

    context: ContextName | None = None
    conditions: list[str] = Field(default_factory=list)
    statements: list[str] = Field(min_length=1)
    error_mode: ErrorMode | None = None


def _prefixes(text: str) -> set[str]:
    """Context names used as path prefixes in a statement or condition."""
    try:
        tokens = _Parser(text).tokens
    except Exception:
        return set()
    found = set()
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if (
            tok.kind == "ident"
            and tok.text in PREFIXES
            and nxt is not None
            and nxt.text == "."
            and not (prev is not None and prev.text == ".")
        ):
            found.add(PREFIXES[tok.text])
    return found


def infer_context(signal: str, texts: list[str]) -> str:
    """The deepest context any path prefix names (a span path beats a resource path)."""
    allowed = SIGNAL_CONTEXTS[signal]
    named: set[str] = set()
    for text in texts:
        named |= _prefixes(text)
    unknown = named - set(allowed)
    if unknown:
        raise ValueError(
            f"context {sorted(unknown)[0]!r} is not available for {signal} "
            f"(use one of {', '.join(allowed)})"
        )
    if not named:
        raise ValueError(
            f'unable to infer a context from "{texts[0]}": prefix paths with the context '
            f"name ({', '.join(allowed)})"
        )
    return max(named, key=lambda c: len(PARENTS[c]))


class CompiledGroup:
    def __init__(self, signal: str, group: StatementGroup, error_mode: ErrorMode) -> None:
        self.context = group.context or infer_context(
            signal, [*group.statements, *group.conditions]
        )
        if self.context not in SIGNAL_CONTEXTS[signal]:
            raise ValueError(f"context {self.context!r} is not available for {signal}")
        self.conditions = Condition(group.conditions, self.context)
        self.statements = [Statement(text, self.context) for text in group.statements]
        self.error_mode: ErrorMode = group.error_mode or error_mode


_SIGNAL_OF = {
    "trace_statements": "traces",
    "metric_statements": "metrics",
    "log_statements": "logs",
}


class TransformConfig(ComponentConfig):
    """The Collector's transformprocessor keys. Each ``*_statements`` list mixes the basic
    form (a statement string, context inferred) and the advanced form (a group with
    optional ``context``, ``conditions``, ``statements``, ``error_mode``)."""

    error_mode: ErrorMode = "propagate"
    trace_statements: list[StatementGroup | str] = Field(default_factory=list)
    metric_statements: list[StatementGroup | str] = Field(default_factory=list)
    log_statements: list[StatementGroup | str] = Field(default_factory=list)
    # 0.1xx keys for flat statements lists; accepted for compatibility
    flatten_data: bool = False

    def groups(self, key: str) -> list[CompiledGroup]:
        signal = _SIGNAL_OF[key]
        out = []
        for entry in getattr(self, key):
            group = StatementGroup(statements=[entry]) if isinstance(entry, str) else entry
            out.append(CompiledGroup(signal, group, self.error_mode))
        return out

    @field_validator("trace_statements", "metric_statements", "log_statements")
    @classmethod
    def _compile(
        cls, entries: list[StatementGroup | str], info: ValidationInfo
    ) -> list[StatementGroup | str]:
        signal = _SIGNAL_OF[info.field_name or ""]
        for i, entry in enumerate(entries):
            group = StatementGroup(statements=[entry]) if isinstance(entry, str) else entry
            try:
                CompiledGroup(signal, group, "propagate")
            except ValueError as exc:
                raise ValueError(f"[{i}]: {exc}") from None
        return entries
