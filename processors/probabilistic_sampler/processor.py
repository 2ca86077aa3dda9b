"""probabilistic_sampler: keeps or drops each span / log record on its own, by trace id (or
a log attribute), exactly as the Collector's probabilisticsamplerprocessor decides, and
records the sampling threshold it applied (``ot=th:`` in the span's W3C trace state,
``sampling.threshold`` on log records) so that later samplers compose with it.

Per-item work runs on numpy arrays: the randomness comes from the fixed-size trace-id
column (or one FNV pass over an attribute column), and trace states are parsed once per
distinct value in the batch. Dropped items are counted (reason "sampled") and resources and
scopes left empty are removed, as in the Collector."""

from __future__ import annotations

import logging
import re
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter

from otlp.batch import LOGS_SIGNAL, TRACES, V_BYTES, V_DOUBLE, V_INT, V_STRING, Batch
from otlp.batch_ops import take_records
from otlp.columns import as_array, value_to_string
from otlp.ottl.attrs import Flat, filter_keys, key_mask, lookup, upsert
from otlp.ottl.runtime import CountingProcessor
from otlp.ottl.values import Vals
from otlp.telemetry import Telemetry
from processors.probabilistic_sampler import randomness as rnd_mod
from processors.probabilistic_sampler.config import ProbabilisticSamplerConfig
from processors.probabilistic_sampler.decide import (
    HASH,
    NEVER,
    P_ATTRIBUTE,
    P_MISSING,
    P_PRIORITY,
    P_RANDOMNESS,
    P_TRACE_ID_HASH,
    P_TRACE_ID_W3C,
    POLICY_NAMES,
    Decision,
    Items,
    all_probabilities,
    decide,
    make_sampler,
    probability_thresholds,
)
from processors.probabilistic_sampler.sampling import (
    ALWAYS_SAMPLE,
    NEVER_SAMPLE,
    SamplingError,
    TraceState,
    parse_rvalue,
    parse_tracestate,
    parse_tvalue,
    tvalue,
)

log = logging.getLogger("airis.processor.probabilistic_sampler")

THRESHOLD_ATTR: Final = "sampling.threshold"
RANDOMNESS_ATTR: Final = "sampling.randomness"
PRIORITY_ATTR: Final = "sampling.priority"
# strconv.ParseFloat's accepted forms (no whitespace, no underscores in decimal numbers)
_GO_FLOAT: Final = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE
)


def _counter(telemetry: Telemetry, name: str, doc: str) -> Counter:
    """One counter per service registry, shared by every instance of this processor."""
    existing = getattr(telemetry.registry, "_names_to_collectors", {}).get(name)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    return Counter(name, doc, ("processor", "policy", "sampled"), registry=telemetry.registry)


def _has_key(lists: pa.Array | pa.ChunkedArray, key: str) -> bool:
    """Whether any row has the attribute: a cheap test that spares the full lookup."""
    arr = as_array(lists)
    if not len(arr):
        return False
    keys = pc.list_flatten(arr).field("key")
    return bool(len(keys)) and bool(pc.any(pc.equal(keys, key)).as_py())


def _go_parse_float(text: str) -> float | None:
    if not _GO_FLOAT.fullmatch(text):
        return None
    return float(text)


class _States:
    """Distinct trace states (or threshold/randomness attribute pairs) of a batch, parsed
    once each, with per-item views."""

    def __init__(self, codes: np.ndarray, states: list[TraceState]) -> None:
        self.codes = codes
        self.states = states
        u_err = np.array([s.error is not None for s in states], np.bool_)
        u_has_rv = np.array([s.otel.rvalue != "" for s in states], np.bool_)
        u_rv = np.array([s.otel.randomness for s in states], np.uint64)
        u_has_th = np.array([s.otel.tvalue != "" for s in states], np.bool_)
        u_th = np.array([s.otel.threshold for s in states], np.uint64)
        self.error = u_err[codes]
        self.has_rv = u_has_rv[codes]
        self.rv = u_rv[codes]
        self.has_th = u_has_th[codes]
        self.th = u_th[codes]

    def strings(self, values: list[str | None]) -> pa.Array:
        return pa.array(values, pa.string()).take(pa.array(self.codes))


def _dictionary(column: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Codes and distinct values of a string column (null as "")."""
    arr = pc.fill_null(as_array(column), "") if len(column) else pa.array([], pa.string())
    encoded = pc.dictionary_encode(arr)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


class ProbabilisticSamplerProcessor(CountingProcessor):
    def __init__(
        self, component_id: str, config: ProbabilisticSamplerConfig, telemetry: Telemetry
    ) -> None:
        super().__init__(component_id, telemetry, log)
        self.config = config
        self.samplers = {
            TRACES: make_sampler(config, False),
            LOGS_SIGNAL: make_sampler(config, True),
        }
        self.seed_state = rnd_mod.seed_state(config.hash_seed)
        self.spans_processed = _counter(
            telemetry,
            "otelcol_processor_probabilistic_sampler_count_spans_processed",
            "Count of spans that were sampled or not",
        )
        self.traces_sampled = _counter(
            telemetry,
            "otelcol_processor_probabilistic_sampler_count_traces_sampled",
            "[DEPRECATED] Count of spans that were sampled or not",
        )
        self.logs_sampled = _counter(
            telemetry,
            "otelcol_processor_probabilistic_sampler_count_logs_sampled",
            "Count of logs that were sampled or not",
        )

    def process(self, batch: Batch) -> Batch:
        if batch.item_count() == 0:
            return batch
        if batch.signal == TRACES:
            out = self._traces(batch)
        elif batch.signal == LOGS_SIGNAL:
            out = self._logs(batch)
        else:
            return batch
        self.telemetry.processor_dropped(
            self.id, batch.signal, batch.item_count() - out.item_count(), "sampled"
        )
        return out

    # --- shared

    def _count(self, counters: list[Counter], policy: np.ndarray, sampled: np.ndarray) -> None:
        keys = policy.astype(np.int64) * 2 + sampled.astype(np.int64)
        values, counts = np.unique(keys, return_counts=True)
        for key, count in zip(values.tolist(), counts.tolist(), strict=True):
            code, was_sampled = divmod(key, 2)
            name = self.config.from_attribute if code == P_ATTRIBUTE else POLICY_NAMES[code]
            for counter in counters:
                counter.labels(self.id, name, "true" if was_sampled else "false").inc(count)

    def _log_errors(self, what: str, decision: Decision) -> None:
        if decision.errors and log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %d items had sampling errors", what, decision.errors)

    # --- traces

    def _traces(self, batch: Batch) -> Batch:
        sampler = self.samplers[TRACES]
        spans = batch.tables["spans"]
        n = spans.num_rows
        matrix, empty = rnd_mod.id_matrix(spans.column("trace_id"))
        codes, texts = _dictionary(spans.column("trace_state"))
        states = _States(codes, [parse_tracestate(t) for t in texts])
        policy = np.full(n, P_MISSING, np.int8)
        rv_text: pa.Array
        if sampler.kind == HASH:
            rnd = rnd_mod.hash_trace_ids(matrix, self.seed_state)
            rnd[empty] = all_probabilities(int(empty.sum()))
            policy[~empty] = P_TRACE_ID_HASH
            # an arriving rv or th means another sampling scheme is in use: left alone
            error = states.error | states.has_rv | states.has_th
            items = Items(rnd, empty, error, ~error, np.zeros(n, np.bool_), states.th, policy)
            rv_text = rnd_mod.rvalue_strings(rnd)
        elif sampler.kind == NEVER:
            items = Items(
                all_probabilities(n),
                np.zeros(n, np.bool_),
                states.error,
                np.ones(n, np.bool_),
                states.has_th,
                states.th,
                np.full(n, P_PRIORITY, np.int8),
            )
            rv_text = states.strings([s.otel.rvalue or None for s in states.states])
        else:
            ok = ~states.error
            use_rv = ok & states.has_rv
            use_tid = ok & ~states.has_rv & ~empty
            rnd = all_probabilities(n)
            rnd[use_rv] = states.rv[use_rv]
            rnd[use_tid] = rnd_mod.trace_id_randomness(matrix[use_tid])
            policy[use_rv] = P_RANDOMNESS
            policy[use_tid] = P_TRACE_ID_W3C
            missing = ~(use_rv | use_tid)
            items = Items(rnd, missing, states.error, ok, states.has_th, states.th, policy)
            rv_text = states.strings([s.otel.rvalue or None for s in states.states])
        override, override_th = self._span_priority(spans)
        decision = decide(sampler, items, self.config.fail_closed, override, override_th)
        policy = np.where(override, np.int8(P_PRIORITY), items.policy)
        self._count([self.spans_processed, self.traces_sampled], policy, decision.sampled)
        self._log_errors("traces sampler", decision)
        kept = decision.sampled
        if not kept.any():
            return take_records(batch, kept)
        trace_state = self._tracestates(spans, states, decision, rv_text)
        position = spans.schema.get_field_index("trace_state")
        spans = spans.set_column(position, spans.schema.field(position), trace_state)
        batch = Batch(batch.signal, batch.resources, batch.scopes, {"spans": spans}, batch.context)
        return batch if kept.all() else take_records(batch, kept)

    def _span_priority(self, spans: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """sampling.priority (OpenTracing): 0 never samples, > 0 always samples."""
        n = spans.num_rows
        none = np.zeros(n, np.bool_), np.zeros(n, np.uint64)
        if not _has_key(spans.column("attributes"), PRIORITY_ATTR):
            return none
        vals = lookup(spans.column("attributes"), PRIORITY_ATTR)
        value = np.full(n, np.nan)
        if (vals.types == V_INT).any():
            ints = pc.fill_null(vals.column("int"), 0).to_numpy(zero_copy_only=False)
            value = np.where(vals.types == V_INT, ints.astype(np.float64), value)
        if (vals.types == V_DOUBLE).any():
            doubles = pc.fill_null(vals.column("double"), np.nan).to_numpy(zero_copy_only=False)
            value = np.where(vals.types == V_DOUBLE, doubles, value)
        strings = np.flatnonzero(vals.types == V_STRING)
        if len(strings):
            texts = vals.column("str").take(pa.array(strings)).to_pylist()
            parsed = {t: _go_parse_float(t) for t in set(texts)}
            value[strings] = [np.nan if parsed[t] is None else parsed[t] for t in texts]
        never = value == 0
        must = value > 0
        threshold = np.where(never, np.uint64(NEVER_SAMPLE), np.uint64(ALWAYS_SAMPLE))
        return never | must, threshold.astype(np.uint64)

    def _tracestates(
        self, spans: pa.Table, states: _States, decision: Decision, rv_text: pa.Array
    ) -> pa.Array:
        """The trace_state column with the updated ``ot`` section on updated spans
        (serialized as the Collector does: ``ot`` first, then rv, th, other ot keys)."""
        original = as_array(spans.column("trace_state"))
        rows = np.flatnonzero(decision.update)
        if not len(rows):
            return original
        idx = pa.array(rows)
        ths = decision.threshold[rows]
        unique, inverse = np.unique(ths, return_inverse=True)
        mask = np.zeros(len(original), np.bool_)
        mask[rows] = True
        plain = all(not s.otel.extras and not s.extras for s in states.states)
        if plain and not (states.has_rv[rows].any() or rv_text.null_count < len(rv_text)):
            # the usual case: nothing but the threshold to write, one string per threshold
            texts = pa.array([f"ot=th:{tvalue(int(t))}" for t in unique], pa.string())
            return pc.replace_with_mask(original, pa.array(mask), texts.take(pa.array(inverse)))
        th_text = pa.array([tvalue(int(t)) for t in unique], pa.string()).take(pa.array(inverse))
        if plain and rv_text.null_count == 0:
            # hash_seed mode on spans without a trace state: rv and th, nothing else
            text = pc.binary_join_element_wise("ot=rv:", rv_text.take(idx), ";th:", th_text, "")
            return pc.replace_with_mask(original, pa.array(mask), text)
        ot_extra = states.strings(
            [";".join(f"{k}:{v}" for k, v in s.otel.extras) or None for s in states.states]
        ).take(idx)
        w3c_extra = states.strings([s.extras_text() for s in states.states]).take(idx)
        rv_part = pc.binary_join_element_wise("rv:", rv_text.take(idx), "")
        th_part = pc.binary_join_element_wise("th:", th_text, "")
        ot_body = pc.binary_join_element_wise(rv_part, th_part, ot_extra, ";", null_handling="skip")
        ot = pc.binary_join_element_wise("ot=", ot_body, "")
        text = pc.binary_join_element_wise(ot, w3c_extra, ",", null_handling="skip")
        return pc.replace_with_mask(original, pa.array(mask), text)

    # --- logs

    def _logs(self, batch: Batch) -> Batch:
        sampler = self.samplers[LOGS_SIGNAL]
        records = batch.tables["logs"]
        n = records.num_rows
        attrs = records.column("attributes")
        th_states, th_values = self._attr_states(attrs, THRESHOLD_ATTR, parse_tvalue)
        rv_states, rv_values = self._attr_states(attrs, RANDOMNESS_ATTR, parse_rvalue)
        error = th_states[0] | rv_states[0]
        has_th, th = th_states[1], th_values
        has_rv, rv = rv_states[1], rv_values
        matrix, empty = rnd_mod.id_matrix(records.column("trace_id"))
        policy = np.full(n, P_MISSING, np.int8)
        rnd = all_probabilities(n)
        missing = np.ones(n, np.bool_)
        set_rv = np.zeros(n, np.bool_)
        if sampler.kind == HASH:
            if sampler.logs_trace_id:
                use = ~empty
                rnd[use] = rnd_mod.hash_trace_ids(matrix[use], self.seed_state)
                policy[use] = P_TRACE_ID_HASH
                missing &= ~use
            if sampler.from_attribute and missing.any():
                self._attribute_randomness(attrs, sampler.from_attribute, missing, rnd, policy)
            conflict = error | has_rv | has_th
            carrier = ~conflict
            set_rv = carrier & ~missing
            items = Items(rnd, missing, conflict, carrier, np.zeros(n, np.bool_), th, policy)
        elif sampler.kind == NEVER:
            items = Items(
                rnd,
                np.zeros(n, np.bool_),
                error,
                np.ones(n, np.bool_),
                has_th,
                th,
                np.full(n, P_PRIORITY, np.int8),
            )
        else:
            ok = ~error
            use_rv = ok & has_rv
            use_tid = ok & ~has_rv & ~empty
            rnd[use_rv] = rv[use_rv]
            rnd[use_tid] = rnd_mod.trace_id_randomness(matrix[use_tid])
            policy[use_rv] = P_RANDOMNESS
            policy[use_tid] = P_TRACE_ID_W3C
            missing = ~(use_rv | use_tid)
            items = Items(rnd, missing, error, ok, has_th, th, policy)
        override = override_th = None
        if self.config.sampling_priority:
            override, override_th = self._log_priority(attrs, sampler.precision)
        decision = decide(sampler, items, self.config.fail_closed, override, override_th)
        if override is not None:
            policy = np.where(override, np.int8(P_PRIORITY), items.policy)
        self._count([self.logs_sampled], policy, decision.sampled)
        self._log_errors("logs sampler", decision)
        kept = decision.sampled
        if not kept.any():
            return take_records(batch, kept)
        batch = take_records(batch, kept) if not kept.all() else batch
        records = batch.tables["logs"]
        lists = records.column("attributes")
        rows = np.flatnonzero(kept)
        if set_rv[rows].any():
            text = rnd_mod.rvalue_strings(rnd[rows])
            lists = upsert(lists, RANDOMNESS_ATTR, Vals.typed(V_STRING, text), set_rv[rows])
        cleared = decision.cleared[rows]
        if cleared.any():
            # ClearTValue removes the attribute; an update then appends it anew
            lists = filter_keys(lists, cleared, lambda flat: key_mask(flat, THRESHOLD_ATTR))
        update = decision.update[rows]
        if update.any():
            ths = decision.threshold[rows]
            unique, inverse = np.unique(ths, return_inverse=True)
            text = pa.array([tvalue(int(t)) for t in unique], pa.string()).take(pa.array(inverse))
            lists = upsert(lists, THRESHOLD_ATTR, Vals.typed(V_STRING, text), update)
        position = records.schema.get_field_index("attributes")
        records = records.set_column(position, records.schema.field(position), lists)
        return Batch(batch.signal, batch.resources, batch.scopes, {"logs": records}, batch.context)

    @staticmethod
    def _attr_states(
        attrs: pa.ChunkedArray | pa.Array, key: str, parse: object
    ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """(error, present) and parsed values of a string attribute holding a th / rv."""
        n = len(attrs)
        if not _has_key(attrs, key):
            return (np.zeros(n, np.bool_), np.zeros(n, np.bool_)), np.zeros(n, np.uint64)
        vals = lookup(attrs, key)
        is_str = vals.types == V_STRING
        error = np.zeros(n, np.bool_)
        present = np.zeros(n, np.bool_)
        values = np.zeros(n, np.uint64)
        if not is_str.any():
            return (error, present), values
        rows = np.flatnonzero(is_str)
        codes, texts = _dictionary(vals.column("str").take(pa.array(rows)))
        u_err = np.zeros(len(texts), np.bool_)
        u_present = np.zeros(len(texts), np.bool_)
        u_val = np.zeros(len(texts), np.uint64)
        for i, text in enumerate(texts):
            if text == "":
                continue
            try:
                u_val[i] = parse(text)  # type: ignore[operator]
                u_present[i] = True
            except SamplingError:
                u_err[i] = True
        error[rows] = u_err[codes]
        present[rows] = u_present[codes]
        values[rows] = u_val[codes]
        return (error, present), values

    def _attribute_randomness(
        self,
        attrs: pa.ChunkedArray | pa.Array,
        name: str,
        missing: np.ndarray,
        rnd: np.ndarray,
        policy: np.ndarray,
    ) -> None:
        """hash_seed randomness from a log attribute's bytes (AsString() unless bytes)."""
        flat = Flat(attrs)
        index = flat.first_index(key_mask(flat, name))
        rows = np.flatnonzero(missing & (index >= 0))
        if not len(rows):
            return
        items = flat.items.take(pa.array(index[rows]))
        types = pc.struct_field(items, "type").to_numpy(zero_copy_only=False)
        text = pc.cast(value_to_string(items), pa.binary())
        raw = pc.if_else(pa.array(types == V_BYTES), pc.struct_field(items, "bytes"), text)
        raw = pc.fill_null(raw, b"")
        usable = pc.greater(pc.binary_length(raw), 0).to_numpy(zero_copy_only=False)
        if not usable.any():
            return
        hashed = rnd_mod.hash_randomness(
            rnd_mod.fnv_binary(raw.filter(pa.array(usable)), self.seed_state)
        )
        target = rows[usable]
        rnd[target] = hashed
        policy[target] = P_ATTRIBUTE
        missing[target] = False

    def _log_priority(
        self, attrs: pa.ChunkedArray | pa.Array, precision: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """sampling_priority: a number attribute read as a percentage; 0 or out of range
        (above 100) leaves the configured decision in place, as the Collector does."""
        vals = lookup(attrs, self.config.sampling_priority)
        n = len(vals)
        prob = np.zeros(n)
        if (vals.types == V_DOUBLE).any():
            doubles = pc.fill_null(vals.column("double"), 0.0).to_numpy(zero_copy_only=False)
            prob = np.where(vals.types == V_DOUBLE, doubles / 100.0, prob)
        if (vals.types == V_INT).any():
            ints = pc.fill_null(vals.column("int"), 0).to_numpy(zero_copy_only=False)
            prob = np.where(vals.types == V_INT, ints.astype(np.float64) / 100.0, prob)
        candidates = (prob != 0) & ~np.isnan(prob)
        override = np.zeros(n, np.bool_)
        thresholds = np.zeros(n, np.uint64)
        if candidates.any():
            rows = np.flatnonzero(candidates)
            got, valid = probability_thresholds(prob[rows], precision)
            override[rows] = valid
            thresholds[rows] = got
        return override, thresholds
