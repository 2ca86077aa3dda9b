"""Consistent-probability sampling arithmetic (OTEP 235 / the OTel "TraceState: probability
sampling" spec) as the Collector's pkg/sampling implements it: 56-bit thresholds and
randomness values, their hex encodings (``th:`` / ``rv:``), and the W3C ``tracestate``
parser and serializer that keeps the ``ot=`` vendor section.

Everything here works on one value at a time: the processor calls it once per *distinct*
tracestate, threshold or probability in a batch, and does the per-item work on numpy arrays.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Final

MAX_ADJUSTED_COUNT: Final = 1 << 56
NUM_HEX_DIGITS: Final = 14
# Threshold.unsigned: number of randomness values (out of 2**56) that are rejected
ALWAYS_SAMPLE: Final = 0
NEVER_SAMPLE: Final = MAX_ADJUSTED_COUNT
# the randomness a missing value is given (sampled at every probability)
ALL_PROBABILITIES: Final = MAX_ADJUSTED_COUNT - 1
MIN_PROBABILITY: Final = 1.0 / MAX_ADJUSTED_COUNT

_HEX: Final = re.compile(r"[0-9a-fA-F]+")


class SamplingError(ValueError):
    pass


def go_round(x: float) -> float:
    """math.Round: half away from zero (Python's round() is half to even)."""
    t = math.trunc(x)
    if abs(x - t) >= 0.5:
        t += math.copysign(1.0, x)
    return float(t)


def probability_to_threshold(fraction: float, precision: int) -> int:
    """ProbabilityToThresholdWithPrecision; raises SamplingError when out of range."""
    if precision == 0:
        precision = NUM_HEX_DIGITS
    if not (MIN_PROBABILITY <= fraction <= 1):
        raise SamplingError("sampling probability out of the range [1/MaxAdjustedCount, 1]")
    if fraction == 1:
        return ALWAYS_SAMPLE
    # more digits near 0 and near 1, where leading 0s or fs carry no information
    exp_f = math.frexp(fraction)[1]
    exp_r = math.frexp(1 - fraction)[1]
    precision = min(NUM_HEX_DIGITS, max(precision + (-exp_f) // 4, precision + (-exp_r) // 4))
    scaled = int(go_round(fraction * float(MAX_ADJUSTED_COUNT)))
    threshold = MAX_ADJUSTED_COUNT - scaled
    shift = 4 * (NUM_HEX_DIGITS - precision)
    if shift:
        threshold += 1 << (shift - 1)
        threshold >>= shift
        threshold <<= shift
    return threshold


def threshold_probability(threshold: int) -> float:
    return float(MAX_ADJUSTED_COUNT - threshold) / float(MAX_ADJUSTED_COUNT)


def rvalue(randomness: int) -> str:
    """14 hex digits, leading zeros kept."""
    return f"{randomness:014x}"


def tvalue(threshold: int) -> str:
    """The ``th`` encoding: trailing zeros dropped, "0" for always, "" for never."""
    if threshold == ALWAYS_SAMPLE:
        return "0"
    if threshold >= NEVER_SAMPLE:
        return ""
    return rvalue(threshold).rstrip("0")


def parse_tvalue(text: str) -> int:
    if len(text) > NUM_HEX_DIGITS:
        raise SamplingError("t-value exceeds 14 hex digits")
    if text == "":
        raise SamplingError("t-value is empty")
    if not _HEX.fullmatch(text):
        raise SamplingError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    return int(text, 16) << (4 * (NUM_HEX_DIGITS - len(text)))


def parse_rvalue(text: str) -> int:
    if len(text) != NUM_HEX_DIGITS:
        raise SamplingError("r-value must have 14 hex digits")
    if not _HEX.fullmatch(text):
        raise SamplingError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    return int(text, 16)


# ---------------------------------------------------------------------------------------------
# tracestate

_OT_KEY: Final = re.compile(r"[a-z][a-z0-9]*")
_OT_VALUE: Final = re.compile(r"[A-Za-z0-9._-]*")
_W3C_KEY_CHARS: Final = r"[a-z0-9_\-*/]"
_W3C_SIMPLE_KEY: Final = re.compile(rf"[a-z]{_W3C_KEY_CHARS}*")
_W3C_TENANT_KEY: Final = re.compile(rf"[a-z0-9]{_W3C_KEY_CHARS}*@[a-z]{_W3C_KEY_CHARS}*")
_W3C_VALUE: Final = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]*[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


@dataclass(slots=True)
class OTelState:
    """The ``ot=`` section: rv, th and other keys, in order."""

    rvalue: str = ""
    randomness: int = 0
    tvalue: str = ""
    threshold: int = ALWAYS_SAMPLE
    extras: list[tuple[str, str]] = field(default_factory=list)

    def serialize(self) -> str:
        parts = []
        if self.rvalue:
            parts.append(f"rv:{self.rvalue}")
        if self.tvalue:
            parts.append(f"th:{self.tvalue}")
        parts.extend(f"{k}:{v}" for k, v in self.extras)
        return ";".join(parts)


@dataclass(slots=True)
class TraceState:
    otel: OTelState = field(default_factory=OTelState)
    extras: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None

    def extras_text(self) -> str | None:
        """The members after ``ot=`` as they are serialized, or None."""
        if not self.extras:
            return None
        return ",".join(f"{k}={v}" for k, v in self.extras)

    def serialize(self) -> str:
        parts = []
        ot = self.otel.serialize()
        if ot:
            parts.append(f"ot={ot}")
        parts.extend(f"{k}={v}" for k, v in self.extras)
        return ",".join(parts)


def _valid_ot(text: str) -> bool:
    if not text or text.endswith(";"):
        return False
    for member in text.split(";"):
        key, colon, value = member.partition(":")
        if not colon or not key:
            return False
        if not _OT_KEY.fullmatch(key) or not _OT_VALUE.fullmatch(value):
            return False
    return True


def parse_otel(text: str) -> tuple[OTelState, list[str]]:
    state = OTelState()
    if len(text) > 256:
        return state, ["invalid tracestate size"]
    if not _valid_ot(text):
        return state, ["invalid syntax"]
    errors: list[str] = []
    for member in text.split(";"):
        key, _, value = member.partition(":")
        if key == "rv":
            try:
                state.randomness = parse_rvalue(value)
                state.rvalue = value
            except SamplingError as exc:
                state.rvalue, state.randomness = "", 0
                errors.append(str(exc))
        elif key == "th":
            try:
                state.threshold = parse_tvalue(value)
                state.tvalue = value
            except SamplingError as exc:
                state.tvalue, state.threshold = "", ALWAYS_SAMPLE
                errors.append(str(exc))
        else:
            state.extras.append((key, value))
    return state, errors


def _valid_w3c(text: str) -> bool:
    for member in text.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        key, eq, value = member.partition("=")
        if not eq or not key:
            return False
        if not (_W3C_SIMPLE_KEY.fullmatch(key) or _W3C_TENANT_KEY.fullmatch(key)):
            return False
        if len(value) > 256 or not _W3C_VALUE.fullmatch(value):
            return False
    return True


def parse_tracestate(text: str) -> TraceState:
    """NewW3CTraceState: on errors the state holds what parsed before and after them."""
    state = TraceState()
    if text == "":
        return state
    if len(text) > 1024:
        state.errors.append("invalid tracestate size")
        return state
    if not _valid_w3c(text):
        state.errors.append("invalid syntax")
        return state
    items = 0
    for member in text.split(","):
        items += 1
        # the Collector counts empty members too and stops at the 32nd
        if items >= 32:
            state.errors.append("invalid tracestate size")
            return state
        member = member.strip(" \t")
        if not member:
            continue
        key, _, value = member.partition("=")
        if len(key) > 256:
            state.errors.append("invalid tracestate size")
            continue
        tenant, at, system = key.partition("@")
        if at and (len(tenant) > 241 or len(system) > 14):
            state.errors.append("invalid tracestate size")
            continue
        if key == "ot":
            state.otel, errors = parse_otel(value)
            state.errors.extend(errors)
        else:
            state.extras.append((key, value))
    return state
