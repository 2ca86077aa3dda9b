"""The sampling decision for a whole column of items, following the Collector's
commonShouldSampleLogic step by step (randomness → consistency check → mode decision →
priority override → threshold <= randomness → threshold update), with numpy arrays in
place of its per-item calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from processors.probabilistic_sampler.config import ProbabilisticSamplerConfig
from processors.probabilistic_sampler.sampling import (
    ALL_PROBABILITIES,
    ALWAYS_SAMPLE,
    MIN_PROBABILITY,
    NEVER_SAMPLE,
    SamplingError,
    probability_to_threshold,
    threshold_probability,
)

NEVER: Final = "never"
HASH: Final = "hash_seed"
EQUALIZING: Final = "equalizing"
PROPORTIONAL: Final = "proportional"

_NUM_HASH_BUCKETS: Final = 0x4000
# Go evaluates `pct * percentageScaleFactor` in float32 (pct is a float32)
_SCALE32: Final = np.float32(_NUM_HASH_BUCKETS / 100.0)

# policy label values of otelcol_processor_probabilistic_sampler_count_*
P_MISSING, P_TRACE_ID_HASH, P_TRACE_ID_W3C, P_RANDOMNESS, P_PRIORITY, P_ATTRIBUTE = range(6)
POLICY_NAMES: Final = (
    "missing_randomness",
    "trace_id_hash",
    "trace_id_w3c",
    "sampling_randomness",
    "sampling_priority",
)


@dataclass(frozen=True, slots=True)
class Sampler:
    kind: str
    threshold: int = NEVER_SAMPLE  # hash_seed and equalizing
    ratio: float = 0.0  # proportional
    precision: int = 4
    hash_seed: int = 0
    logs_trace_id: bool = True
    from_attribute: str = ""


def make_sampler(cfg: ProbabilisticSamplerConfig, logs: bool) -> Sampler:
    """makeSampler: the mode and its fixed threshold or ratio."""
    pct = cfg.percentage32
    if pct > 100:
        pct = np.float32(100)
    mode = cfg.mode or HASH
    if pct == 0:
        return Sampler(NEVER, precision=cfg.sampling_precision)
    ratio = max(float(pct) / 100, MIN_PROBABILITY)
    if mode == EQUALIZING:
        return Sampler(
            EQUALIZING,
            threshold=probability_to_threshold(ratio, cfg.sampling_precision),
            precision=cfg.sampling_precision,
        )
    if mode == PROPORTIONAL:
        return Sampler(PROPORTIONAL, ratio=ratio, precision=cfg.sampling_precision)
    # hash_seed: the historical 14-bit computation, float32 product truncated to an integer
    scaled = int(np.float32(pct * _SCALE32))
    if scaled == 0:
        return Sampler(NEVER, precision=cfg.sampling_precision)
    reject = _NUM_HASH_BUCKETS - scaled
    return Sampler(
        HASH,
        threshold=reject << 42,
        precision=cfg.sampling_precision,
        hash_seed=cfg.hash_seed,
        logs_trace_id=(not logs) or cfg.attribute_source == "traceID",
        from_attribute=cfg.from_attribute,
    )


def probability_thresholds(
    probabilities: np.ndarray, precision: int
) -> tuple[np.ndarray, np.ndarray]:
    """ProbabilityToThresholdWithPrecision per distinct value: (thresholds, valid)."""
    out = np.zeros(len(probabilities), np.uint64)
    valid = np.zeros(len(probabilities), np.bool_)
    if not len(probabilities):
        return out, valid
    unique, inverse = np.unique(probabilities, return_inverse=True)
    u_out = np.zeros(len(unique), np.uint64)
    u_valid = np.zeros(len(unique), np.bool_)
    for i, p in enumerate(unique.tolist()):
        try:
            u_out[i] = probability_to_threshold(p, precision)
            u_valid[i] = True
        except SamplingError:
            pass
    return u_out[inverse], u_valid[inverse]


@dataclass(slots=True)
class Items:
    """What the randomness step produced for every item."""

    randomness: np.ndarray  # uint64; ALL_PROBABILITIES where missing
    missing: np.ndarray  # bool
    error: np.ndarray  # bool: an error before the consistency check
    carrier: np.ndarray  # bool: the item's sampling state can be updated
    has_threshold: np.ndarray  # bool: the carrier holds an arriving threshold
    threshold: np.ndarray  # uint64
    policy: np.ndarray  # int8 P_*


@dataclass(slots=True)
class Decision:
    sampled: np.ndarray
    update: np.ndarray  # sampled items whose carrier gets the new threshold
    threshold: np.ndarray  # uint64: the threshold written on update
    cleared: np.ndarray  # items whose inconsistent arriving threshold was cleared
    errors: int


def decide(
    sampler: Sampler,
    items: Items,
    fail_closed: bool,
    override: np.ndarray | None = None,
    override_threshold: np.ndarray | None = None,
) -> Decision:
    n = len(items.randomness)
    rnd = items.randomness
    err = items.error | (~items.error & items.missing)
    has_th = items.has_threshold & items.carrier
    th = items.threshold
    # an arriving threshold the randomness contradicts is a lie: cleared, and an error
    cleared = ~err & has_th & (th > rnd)
    has_th = has_th & ~cleared
    err = err | cleared
    if sampler.kind == NEVER:
        decided = np.full(n, NEVER_SAMPLE, np.uint64)
    elif sampler.kind == HASH:
        decided = np.full(n, sampler.threshold, np.uint64)
    elif sampler.kind == EQUALIZING:
        fixed = np.uint64(sampler.threshold)
        decided = np.where(has_th & (th > fixed), th, fixed)
    else:
        decided = np.empty(n, np.uint64)
        base, ok = probability_thresholds(np.array([sampler.ratio]), sampler.precision)
        decided[:] = base[0] if ok[0] else NEVER_SAMPLE
        if has_th.any():
            rows = np.flatnonzero(has_th)
            unique, inverse = np.unique(th[rows], return_inverse=True)
            incoming = np.array([threshold_probability(int(t)) for t in unique])
            got, valid = probability_thresholds(incoming * sampler.ratio, sampler.precision)
            # below the smallest probability: simply not sampled
            decided[rows] = np.where(valid, got, np.uint64(NEVER_SAMPLE))[inverse]
    failed = np.uint64(NEVER_SAMPLE if fail_closed else ALWAYS_SAMPLE)
    threshold = np.where(err, failed, decided).astype(np.uint64)
    if override is not None and override_threshold is not None:
        threshold = np.where(override, override_threshold, threshold).astype(np.uint64)
    sampled = threshold <= rnd
    update = sampled & items.carrier
    # a threshold is never lowered (that would raise the probability it claims)
    new_th = np.where(has_th & (th > threshold), th, threshold).astype(np.uint64)
    return Decision(sampled, update, new_th, cleared, int(err.sum()))


def all_probabilities(n: int) -> np.ndarray:
    return np.full(n, ALL_PROBABILITIES, np.uint64)
