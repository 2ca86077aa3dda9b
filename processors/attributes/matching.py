"""include/exclude matching of the Collector's attributes processor (filterconfig
MatchProperties): which spans, log records or data points the actions apply to.

Within one property any listed value may match; all given properties must match; every
listed attribute/resource attribute must match. ``regexp`` patterns match anywhere in the
value (Go's regexp.MatchString), ``strict`` needs equality."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from otlp.batch import METRICS_SIGNAL, TRACES, V_STRING
from otlp.columns import as_array, value_to_string
from otlp.component import ComponentConfig
from otlp.ottl import Rows
from otlp.ottl.attrs import lookup
from otlp.ottl.contexts import ENUMS
from otlp.ottl.values import Const, compare
from processors.attributes.actions import check_regex

_SPAN_KINDS = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
]
_SEVERITY = {name.removeprefix("SEVERITY_NUMBER_"): n for name, n in ENUMS["log"].items()}


class AttributeMatch(ComponentConfig):
    key: str
    value: Any = None


class LibraryMatch(ComponentConfig):
    name: str
    version: str | None = None


class SeverityNumberMatch(ComponentConfig):
    min: int | str
    match_undefined: bool = False

    @field_validator("min")
    @classmethod
    def _min(cls, v: int | str) -> int:
        if isinstance(v, int):
            return v
        number = _SEVERITY.get(v.upper())
        if number is None:
            raise ValueError(f"unknown severity {v!r}")
        return number


class RegexpCache(ComponentConfig):
    cacheenabled: bool = False
    cachemaxnumentries: int = 0


class MatchProperties(ComponentConfig):
    match_type: Literal["strict", "regexp"]
    regexp: RegexpCache | None = None
    services: list[str] = Field(default_factory=list)
    span_names: list[str] = Field(default_factory=list)
    span_kinds: list[str] = Field(default_factory=list)
    log_bodies: list[str] = Field(default_factory=list)
    log_severity_texts: list[str] = Field(default_factory=list)
    log_severity_number: SeverityNumberMatch | None = None
    metric_names: list[str] = Field(default_factory=list)
    attributes: list[AttributeMatch] = Field(default_factory=list)
    resources: list[AttributeMatch] = Field(default_factory=list)
    libraries: list[LibraryMatch] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> MatchProperties:
        if self.match_type == "regexp":
            for pattern in [
                *self.services,
                *self.span_names,
                *self.log_bodies,
                *self.log_severity_texts,
                *self.metric_names,
                *(a.value for a in [*self.attributes, *self.resources] if a.value is not None),
                *(lib.name for lib in self.libraries),
            ]:
                if not isinstance(pattern, str):
                    raise ValueError(f"match_type regexp needs string values (got {pattern!r})")
                check_regex(pattern)
        for kind in self.span_kinds:
            if kind not in _SPAN_KINDS:
                raise ValueError(f"unknown span kind {kind!r} (expected one of {_SPAN_KINDS})")
        if not any(
            (
                self.services,
                self.span_names,
                self.span_kinds,
                self.log_bodies,
                self.log_severity_texts,
                self.log_severity_number,
                self.metric_names,
                self.attributes,
                self.resources,
                self.libraries,
            )
        ):
            raise ValueError("at least one property to match on must be specified")
        return self

    def check_signal(self, signal: str) -> None:
        span_only = self.services or self.span_names or self.span_kinds
        log_only = self.log_bodies or self.log_severity_texts or self.log_severity_number
        if signal != TRACES and span_only:
            raise ValueError(f"services, span_names and span_kinds are not supported for {signal}")
        if signal != "logs" and log_only:
            raise ValueError(f"log_* properties are not supported for {signal}")
        if signal != METRICS_SIGNAL and self.metric_names:
            raise ValueError(f"metric_names is not supported for {signal}")


def _strings(values: pa.Array, patterns: list[str], regexp: bool) -> np.ndarray:
    values = as_array(values)
    if regexp:
        joined = "|".join(f"(?:{p})" for p in patterns)
        hit = pc.match_substring_regex(values, joined)
    else:
        hit = pc.is_in(values, value_set=pa.array(patterns, pa.string()))
    return pc.fill_null(hit, False).to_numpy(zero_copy_only=False)


def _attributes(lists: pa.Array, wanted: list[AttributeMatch], regexp: bool) -> np.ndarray:
    n = len(lists)
    out = np.ones(n, np.bool_)
    for want in wanted:
        vals = lookup(lists, want.key)
        if want.value is None:
            out &= vals.types != 0
        elif regexp:
            hit = pc.fill_null(pc.match_substring_regex(vals.column("str"), want.value), False)
            out &= (vals.types == V_STRING) & hit.to_numpy(zero_copy_only=False)
        else:
            out &= compare("==", vals, Const(want.value), n)
    return out


def _take(column: pa.Array, index: np.ndarray) -> pa.Array:
    return as_array(column).take(pa.array(index))


def matches(props: MatchProperties, rows: Rows) -> np.ndarray:
    """Which rows of a span, log or data point context match ``props``."""
    regexp = props.match_type == "regexp"
    out = np.ones(rows.n, np.bool_)
    batch = rows.batch
    resource_rows = rows.index["resource"]
    scope_rows = rows.index["scope"]
    if props.services:
        names = _take(batch.resources.column("service_name"), resource_rows)
        out &= _strings(pc.fill_null(names, ""), props.services, regexp)
    table = rows.table
    if props.span_names:
        out &= _strings(pc.fill_null(as_array(table.column("name")), ""), props.span_names, regexp)
    if props.span_kinds:
        kinds = pc.fill_null(as_array(table.column("kind")), 0).to_numpy(zero_copy_only=False)
        wanted = [_SPAN_KINDS.index(k) for k in props.span_kinds]
        out &= np.isin(kinds, wanted)
    if props.log_bodies:
        out &= _strings(value_to_string(table.column("body")), props.log_bodies, regexp)
    if props.log_severity_texts:
        texts = pc.fill_null(as_array(table.column("severity_text")), "")
        out &= _strings(texts, props.log_severity_texts, regexp)
    if props.log_severity_number is not None:
        numbers = pc.fill_null(as_array(table.column("severity_number")), 0)
        numbers = numbers.to_numpy(zero_copy_only=False)
        want = props.log_severity_number
        out &= (numbers >= want.min) | ((numbers == 0) & want.match_undefined)
    if props.metric_names:
        names = _take(batch.tables["metrics"].column("name"), rows.index["metric"])
        out &= _strings(pc.fill_null(names, ""), props.metric_names, regexp)
    if props.attributes:
        out &= _attributes(as_array(table.column("attributes")), props.attributes, regexp)
    if props.resources:
        per_resource = _attributes(
            as_array(batch.resources.column("attributes")), props.resources, regexp
        )
        out &= per_resource[resource_rows]
    if props.libraries:
        scope_names = pc.fill_null(as_array(batch.scopes.column("name")), "")
        scope_versions = pc.fill_null(as_array(batch.scopes.column("version")), "")
        any_library = np.zeros(batch.scopes.num_rows, np.bool_)
        for lib in props.libraries:
            hit = _strings(scope_names, [lib.name], regexp)
            if lib.version is not None:
                hit &= _strings(scope_versions, [lib.version], regexp)
            any_library |= hit
        out &= any_library[scope_rows]
    return out


def selection(
    include: MatchProperties | None, exclude: MatchProperties | None, rows: Rows
) -> np.ndarray:
    selected = np.ones(rows.n, np.bool_)
    if include is not None:
        selected &= matches(include, rows)
    if exclude is not None:
        selected &= ~matches(exclude, rows)
    return selected
