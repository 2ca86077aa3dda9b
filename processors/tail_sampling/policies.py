"""Sampling policies, evaluated for many traces at once.

``evaluate(ts, active)`` returns one decision per trace of the TraceSet (UNSPECIFIED where
``active`` is false). Stateless policies compute whole-batch masks; stateful ones (rate and
bytes limiting, composite) walk the active traces in order, as the Collector's evaluators see
them one by one. Decision rules follow contrib's tailsamplingprocessor v0.165:

* attribute policies sample when a resource or a span of the trace matches; with
  ``invert_match`` they sample only when no resource and no span matches (a missing key
  counts as not matching);
* ``and`` stops at the first NotSampled; ``drop`` answers Dropped when every sub-policy
  sampled; ``composite`` asks its sub-policies in order and the first that samples spends
  its per-second span budget (over budget: NotSampled, no fall-through).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.encode import encode_protobuf
from otlp.ottl import Condition, OttlRuntimeError, Rows
from otlp.ottl.runtime import ErrorMode
from processors.tail_sampling.config import (
    STATUS_CODES,
    CompositeCfg,
    PolicyCfg,
    SharedPolicyCfg,
)
from processors.tail_sampling.traceset import TraceSet

log = logging.getLogger("airis.processor.tail_sampling")

UNSPECIFIED, SAMPLED, NOT_SAMPLED, DROPPED, ERROR = 0, 2, 3, 4, 5
DECISION_NAMES = {SAMPLED: "sampled", NOT_SAMPLED: "not_sampled", DROPPED: "dropped"}

Clock = Callable[[], float]


def _decide(sampled: np.ndarray, active: np.ndarray) -> np.ndarray:
    out = np.where(sampled, SAMPLED, NOT_SAMPLED).astype(np.int8)
    out[~active] = UNSPECIFIED
    return out


class Policy:
    name: str = ""
    stateful = False

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class AlwaysSample(Policy):
    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        return _decide(np.ones(ts.n, np.bool_), active)


class Latency(Policy):
    """Like the Collector, the running duration (latest end minus earliest start of the spans
    seen so far, in arrival order) is checked after every span: the trace is sampled when any
    prefix falls in the range."""

    def __init__(self, threshold_ms: int, upper_threshold_ms: int) -> None:
        self.lower = threshold_ms
        self.upper = upper_threshold_ms

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        order = ts.arrival_order()
        group = ts.group[order]
        starts = ts.column("start_time_unix_nano", 0).astype(np.uint64)[order]
        ends = ts.column("end_time_unix_nano", 0).astype(np.uint64)[order]
        lo = _segmented_cumulative(starts, group, np.minimum)
        hi = _segmented_cumulative(ends, group, np.maximum)
        # Go: int64(maxTime-minTime) / int64(time.Millisecond), wrapping and truncating
        diff = (hi - lo).view(np.int64)
        ms = np.where(diff >= 0, diff // 1_000_000, -((-diff) // 1_000_000))
        if self.upper == 0:
            hit = ms > self.lower
        else:
            hit = (ms > self.lower) & (ms <= self.upper)
        sampled = np.zeros(ts.n, np.bool_)
        sampled[group[hit]] = True
        return _decide(sampled, active)


def _segmented_cumulative(values: np.ndarray, group: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """Per-group running min or max of ``values`` (``group`` ascending): ranks offset by the
    group number make one global accumulate restart at each group."""
    n = len(values)
    if n == 0:
        return values
    order = np.argsort(values, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    if ufunc is np.minimum:
        rank = n - 1 - rank
    running = np.maximum.accumulate(group * n + rank) - group * n
    if ufunc is np.minimum:
        running = n - 1 - running
    return values[order][running]


class _AttributeFilter(Policy):
    """Resource or span attribute matching (numeric, string, boolean)."""

    def __init__(self, key: str, invert: bool) -> None:
        self.key = key
        self.invert = invert

    def resource_match(self, ts: TraceSet) -> np.ndarray:
        raise NotImplementedError

    def span_match(self, ts: TraceSet) -> np.ndarray:
        raise NotImplementedError

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        per_span = self.resource_match(ts)[ts.span_resource()] | self.span_match(ts)
        if self.invert:
            return _decide(ts.all_span(~per_span), active)
        return _decide(ts.any_span(per_span), active)


class NumericAttribute(_AttributeFilter):
    def __init__(self, key: str, min_value: int, max_value: int, invert: bool) -> None:
        super().__init__(key, invert)
        # zero means unset, as in the Collector
        self.min = min_value if min_value != 0 else -(2**63)
        self.max = max_value if max_value != 0 else 2**63 - 1

    def _match(self, ts: TraceSet, level: str) -> np.ndarray:
        attr = ts.attr(level, self.key)
        values = attr.ints()
        return attr.present & (values >= self.min) & (values <= self.max)

    def resource_match(self, ts: TraceSet) -> np.ndarray:
        return self._match(ts, "resource")

    def span_match(self, ts: TraceSet) -> np.ndarray:
        return self._match(ts, "span")


class StringAttribute(_AttributeFilter):
    def __init__(self, key: str, values: list[str], regex: bool, invert: bool) -> None:
        super().__init__(key, invert)
        self.regex = regex
        self.patterns = list(values)
        self.values = pa.array([v for v in values if v != ""], pa.string())

    def _matcher(self, strs: pa.Array) -> np.ndarray:
        if self.regex:
            mask = np.zeros(len(strs), np.bool_)
            for pattern in self.patterns:
                mask |= pc.match_substring_regex(strs, pattern).to_numpy(zero_copy_only=False)
            return mask
        return pc.is_in(strs, value_set=self.values).to_numpy(zero_copy_only=False)

    def resource_match(self, ts: TraceSet) -> np.ndarray:
        attr = ts.attr("resource", self.key)
        return attr.present & self._matcher(attr.strs())

    def span_match(self, ts: TraceSet) -> np.ndarray:
        attr = ts.attr("span", self.key)
        strs = attr.strs()
        # the Collector skips empty span values (but not empty resource values)
        non_empty = pc.not_equal(strs, "").to_numpy(zero_copy_only=False)
        return attr.present & non_empty & self._matcher(strs)


class BooleanAttribute(_AttributeFilter):
    def __init__(self, key: str, value: bool, invert: bool) -> None:
        super().__init__(key, invert)
        self.value = value

    def _match(self, ts: TraceSet, level: str) -> np.ndarray:
        attr = ts.attr(level, self.key)
        return attr.present & (attr.bools() == self.value)

    def resource_match(self, ts: TraceSet) -> np.ndarray:
        return self._match(ts, "resource")

    def span_match(self, ts: TraceSet) -> np.ndarray:
        return self._match(ts, "span")


class StatusCode(Policy):
    def __init__(self, codes: list[str]) -> None:
        self.codes = np.array([STATUS_CODES[c] for c in codes], np.int8)

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        codes = ts.column("status_code", 0).astype(np.int8)
        return _decide(ts.any_span(np.isin(codes, self.codes)), active)


class TraceFlags(Policy):
    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        flags = ts.column("flags", 0).astype(np.int64)
        return _decide(ts.any_span((flags & 1) != 0), active)


class SpanCount(Policy):
    def __init__(self, min_spans: int, max_spans: int) -> None:
        self.min = min_spans
        self.max = max_spans
        self.stateful = max_spans > 0

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        count = ts.span_count
        sampled = count >= self.min
        if self.max != 0:
            sampled &= count <= self.max
        return _decide(sampled, active)


# ---- probabilistic: FNV-1a 64 over salt + trace id, compared with MaxUint64 * ratio

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
MAX_UINT64 = 2**64 - 1


def fnv1a64(prefix: bytes, ids: np.ndarray) -> np.ndarray:
    """FNV-1a 64 of ``prefix + id`` for every row of ``ids`` (uint8, shape (n, 16))."""
    state = np.full(len(ids), FNV_OFFSET, np.uint64)
    for byte in prefix:
        state ^= np.uint64(byte)
        state *= FNV_PRIME
    for column in range(ids.shape[1] if ids.ndim == 2 else 0):
        state ^= ids[:, column].astype(np.uint64)
        state *= FNV_PRIME
    return state


def go_ratio_threshold(ratio: float) -> int:
    """``big.Float(MaxUint64) * big.NewFloat(ratio)``, rounded to 64 bits (nearest even),
    then ``Uint64()`` (truncated, saturated): the Collector's calculateThreshold."""
    if ratio <= 0:
        return 0
    exact = Fraction(MAX_UINT64) * Fraction(ratio)
    # scale into [2^63, 2^64) and round half to even
    exponent = exact.numerator.bit_length() - exact.denominator.bit_length() - 64
    while exact / Fraction(2) ** exponent >= 2**64:
        exponent += 1
    while exact / Fraction(2) ** exponent < 2**63:
        exponent -= 1
    scaled = exact / Fraction(2) ** exponent
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rest
    if twice > scaled.denominator or (twice == scaled.denominator and whole % 2 == 1):
        whole += 1
    value = Fraction(whole) * Fraction(2) ** exponent
    return min(int(value), MAX_UINT64)


class Probabilistic(Policy):
    def __init__(self, hash_salt: str, percentage: float) -> None:
        self.salt = (hash_salt or "default-hash-seed").encode()
        self.threshold = np.uint64(go_ratio_threshold(percentage / 100))

    def hashes(self, trace_ids: list[bytes]) -> np.ndarray:
        raw = np.frombuffer(b"".join(trace_ids), np.uint8).reshape(len(trace_ids), 16)
        return fnv1a64(self.salt, raw)

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        return _decide(self.hashes(ts.trace_ids) <= self.threshold, active)


# ---- limiters


class TokenBucket:
    """golang.org/x/time/rate's Limiter as AllowN uses it: starts full, refills continuously,
    never lends (a request larger than the tokens available is refused and costs nothing)."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()

    def allow(self, n: int) -> bool:
        now = self.clock()
        if now > self.last:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
            self.last = now
        if n <= self.tokens:
            self.tokens -= n
            return True
        return False


class RateLimiting(Policy):
    stateful = True

    def __init__(self, spans_per_second: int, burst: int, clock: Clock) -> None:
        self.bucket = TokenBucket(spans_per_second, burst or spans_per_second * 2, clock)

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        out = np.zeros(ts.n, np.int8)
        for trace in np.flatnonzero(active):
            out[trace] = SAMPLED if self.bucket.allow(int(ts.span_count[trace])) else NOT_SAMPLED
        return out


class BytesLimiting(Policy):
    """Trace size is the protobuf size of its spans with their resources and scopes, as the
    Collector's ``ProtoMarshaler.TracesSize``."""

    stateful = True

    def __init__(self, bytes_per_second: int, burst: int, clock: Clock) -> None:
        self.bucket = TokenBucket(bytes_per_second, burst or bytes_per_second * 2, clock)

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        out = np.zeros(ts.n, np.int8)
        for trace in np.flatnonzero(active):
            size = len(encode_protobuf(ts.trace_batch(int(trace))))
            out[trace] = SAMPLED if self.bucket.allow(size) else NOT_SAMPLED
        return out


# ---- trace_state

_TS_KEY = re.compile(
    r"^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$"
)
_TS_VALUE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")


def parse_trace_state(text: str) -> dict[str, str] | None:
    """W3C tracestate as Go's otel ``trace.ParseTraceState`` reads it; None when invalid."""
    members: dict[str, str] = {}
    for raw in text.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, sep, value = member.partition("=")
        if not sep or not _TS_KEY.match(key) or not _TS_VALUE.match(value):
            return None
        if key in members:
            return None
        members[key] = value
        if len(members) > 32:
            return None
    return members


class TraceState(Policy):
    def __init__(self, key: str, values: list[str]) -> None:
        self.key = key
        self.values = {v for v in values if v and len(key) + len(v) < 256}

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        states = pc.fill_null(ts.spans.column("trace_state"), "").combine_chunks()
        encoded = states.dictionary_encode()
        matches = []
        for text in encoded.dictionary.to_pylist():
            parsed = parse_trace_state(text)
            matches.append(parsed is not None and parsed.get(self.key, "") in self.values)
        per_span = np.array(matches, np.bool_)[encoded.indices.to_numpy(zero_copy_only=False)]
        return _decide(ts.any_span(per_span), active)


# ---- ottl_condition


class OttlConditionPolicy(Policy):
    """Sampled when any span (or span event) of the trace matches any condition. A condition
    that fails to evaluate is re-run trace by trace: with ``propagate`` the failing traces
    get an error decision (the policy is skipped for them), otherwise it does not match."""

    def __init__(self, span: list[str], spanevent: list[str], error_mode: ErrorMode | None):
        self.span = [Condition([text], "span") for text in span]
        self.spanevent = [Condition([text], "spanevent") for text in spanevent]
        self.error_mode = error_mode

    def _run(self, condition: Condition, batch_rows: Rows, n_spans: int) -> np.ndarray:
        mask = condition.evaluate(batch_rows)
        if condition.context == "span":
            return mask
        per_span = np.zeros(n_spans, np.bool_)
        per_span[batch_rows.index["span"][mask]] = True
        return per_span

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        n_spans = ts.spans.num_rows
        per_span = np.zeros(n_spans, np.bool_)
        errors = np.zeros(ts.n, np.bool_)
        for condition in [*self.span, *self.spanevent]:
            rows = Rows(ts.batch, condition.context)
            try:
                per_span |= self._run(condition, rows, n_spans)
            except (OttlRuntimeError, ArithmeticError):
                sampled_here, failed = self._per_trace(condition, ts, active)
                per_span |= sampled_here
                errors |= failed
        out = _decide(ts.any_span(per_span), active)
        if self.error_mode == "propagate":
            out[errors & active] = ERROR
        return out

    def _per_trace(
        self, condition: Condition, ts: TraceSet, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        per_span = np.zeros(ts.spans.num_rows, np.bool_)
        failed = np.zeros(ts.n, np.bool_)
        for trace in np.flatnonzero(active):
            rows = ts.trace_rows(int(trace))
            sub = ts.trace_batch(int(trace))
            try:
                hit = self._run(condition, Rows(sub, condition.context), sub.item_count())
            except (OttlRuntimeError, ArithmeticError) as exc:
                failed[trace] = True
                if self.error_mode == "ignore":
                    log.warning("failed to eval condition %r: %s", condition.texts[0], exc)
                continue
            # take_records kept the rows in the order given
            per_span[rows[hit]] = True
        return per_span, failed


# ---- composites


class Not(Policy):
    def __init__(self, sub: Policy) -> None:
        self.sub = sub
        self.stateful = sub.stateful

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        got = self.sub.evaluate(ts, active)
        flipped = got.copy()
        flipped[got == SAMPLED] = NOT_SAMPLED
        flipped[got == NOT_SAMPLED] = SAMPLED
        return flipped


class And(Policy):
    # the decision when every sub-policy samples
    all_sampled = SAMPLED

    def __init__(self, subs: list[Policy]) -> None:
        self.subs = subs
        self.stateful = any(sub.stateful for sub in subs)

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        out = np.where(active, self.all_sampled, UNSPECIFIED).astype(np.int8)
        pending = active.copy()
        for sub in self.subs:
            if not pending.any():
                break
            got = sub.evaluate(ts, pending)
            failed = pending & (got == ERROR)
            out[failed] = ERROR
            refused = pending & (got == NOT_SAMPLED)
            out[refused] = NOT_SAMPLED
            pending &= ~(failed | refused)
        return out


class Drop(And):
    """`drop`: an `and` whose unanimous verdict drops the trace instead of sampling it."""

    all_sampled = DROPPED


class Composite(Policy):
    """Sub-policies in order with per-second span budgets: ``rate_allocation`` percent of
    ``max_total_spans_per_second`` each (an equal share when not allocated)."""

    stateful = True

    def __init__(self, cfg: CompositeCfg, subs: list[tuple[str, Policy]], clock: Clock) -> None:
        self.clock = clock
        self.max_total = cfg.max_total_spans_per_second
        default = self.max_total / len(subs) if subs else 0.0
        percents = {r.policy: r.percent for r in cfg.rate_allocation}
        self.subs: list[tuple[str, Policy, int]] = []
        for name, policy in subs:
            percent = percents.get(name, 0)
            share = percent / 100 * self.max_total if percent > 0 else default
            self.subs.append((name, policy, int(share)))
        self.spent = [0] * len(self.subs)
        self.second: int | None = None
        # which sub-policy sampled each trace of the last evaluation (-1: none)
        self.last_chosen = np.zeros(0, np.int64)

    def evaluate(self, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        out = np.zeros(ts.n, np.int8)
        chosen = np.full(ts.n, -1, np.int64)
        out[active] = NOT_SAMPLED
        # a trace reaches sub-policy i only when the ones before it did not sample it
        first = np.full(ts.n, -1, np.int64)
        failed = np.zeros(ts.n, np.bool_)
        pending = active.copy()
        for i, (_, policy, _) in enumerate(self.subs):
            if not pending.any():
                break
            got = policy.evaluate(ts, pending)
            failed |= pending & (got == ERROR)
            hit = pending & (got == SAMPLED)
            first[hit] = i
            pending &= ~(hit | (got == ERROR))
        out[failed] = ERROR
        for trace in np.flatnonzero(active & ~failed):
            now = int(self.clock())
            if now != self.second:
                self.second = now
                self.spent = [0] * len(self.subs)
            i = int(first[trace])
            if i < 0:
                continue
            spans = int(ts.span_count[trace])
            total = self.spent[i] + spans
            if total <= self.subs[i][2] and total <= self.max_total:
                self.spent[i] = total
                out[trace] = SAMPLED
                chosen[trace] = i
        self.last_chosen = chosen
        return out


def build(cfg: SharedPolicyCfg, clock: Clock) -> Policy:
    """The evaluator for one policy config (any level)."""
    kind = cfg.type
    policy: Policy
    if kind == "always_sample":
        policy = AlwaysSample()
    elif kind == "latency":
        policy = Latency(cfg.latency.threshold_ms, cfg.latency.upper_threshold_ms)
    elif kind == "numeric_attribute":
        c = cfg.numeric_attribute
        policy = NumericAttribute(c.key, c.min_value, c.max_value, c.invert_match)
    elif kind == "probabilistic":
        policy = Probabilistic(cfg.probabilistic.hash_salt, cfg.probabilistic.sampling_percentage)
    elif kind == "status_code":
        policy = StatusCode(cfg.status_code.status_codes)
    elif kind == "string_attribute":
        s = cfg.string_attribute
        policy = StringAttribute(s.key, s.values, s.enabled_regex_matching, s.invert_match)
    elif kind == "rate_limiting":
        r = cfg.rate_limiting
        policy = RateLimiting(r.spans_per_second, r.burst_capacity, clock)
    elif kind == "bytes_limiting":
        b = cfg.bytes_limiting
        policy = BytesLimiting(b.bytes_per_second, b.burst_capacity, clock)
    elif kind == "span_count":
        policy = SpanCount(cfg.span_count.min_spans, cfg.span_count.max_spans)
    elif kind == "trace_state":
        policy = TraceState(cfg.trace_state.key, cfg.trace_state.values)
    elif kind == "boolean_attribute":
        b2 = cfg.boolean_attribute
        policy = BooleanAttribute(b2.key, b2.value, b2.invert_match)
    elif kind == "ottl_condition":
        o = cfg.ottl_condition
        policy = OttlConditionPolicy(o.span, o.spanevent, o.error_mode)
    elif kind == "trace_flags":
        policy = TraceFlags()
    elif kind == "not":
        sub = cfg.not_.not_sub_policy  # type: ignore[attr-defined]
        policy = Not(build(sub, clock))
    elif kind == "and":
        policy = And([build(sub, clock) for sub in cfg.and_.and_sub_policy])  # type: ignore[attr-defined]
    elif kind == "drop":
        assert isinstance(cfg, PolicyCfg)
        policy = Drop([build(sub, clock) for sub in cfg.drop.drop_sub_policy])
    elif kind == "composite":
        assert isinstance(cfg, PolicyCfg)
        subs = [(sub.name, build(sub, clock)) for sub in cfg.composite.composite_sub_policy]
        policy = Composite(cfg.composite, subs, clock)
    else:  # pragma: no cover - the config model lists every type
        raise ValueError(f"unknown sampling policy type {kind}")
    policy.name = cfg.name
    return policy
