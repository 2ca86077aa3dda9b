"""Redaction of attribute columns (``list<ATTRIBUTE>``), all rows of a table at once.

Per attribute the Collector decides in this order: its own summary attributes pass (or go,
when the summary is off and the key is not allowed); ignored keys pass; keys not allowed are
removed; values matching ``allowed_values`` pass; keys matching ``blocked_key_patterns`` are
masked whole; other values have ``blocked_values`` matches masked. Keys are classified once
per distinct key; values go through Arrow kernels. The summary attributes then report, per
row, what happened (``redaction.masked.keys``, ``redaction.masked.count``, ...)."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import ATTRIBUTE, V_INT, V_STRING
from otlp.columns import as_array, fill_null, value_to_string
from otlp.ottl.attrs import Flat, build, filter_keys, keep_items, lookup, upsert
from otlp.ottl.values import Vals
from processors.redaction.config import RedactionConfig
from processors.redaction.values import ValueRules

SEPARATOR: Final = ","


@dataclass(frozen=True, slots=True)
class SummaryKeys:
    """The summary attribute names of one family (attributes or log body)."""

    redacted_keys: str
    redacted_count: str
    masked_keys: str
    masked_count: str
    allowed_keys: str
    allowed_count: str
    ignored_count: str


ATTRIBUTE_SUMMARY: Final = SummaryKeys(
    "redaction.redacted.keys",
    "redaction.redacted.count",
    "redaction.masked.keys",
    "redaction.masked.count",
    "redaction.allowed.keys",
    "redaction.allowed.count",
    "redaction.ignored.count",
)
BODY_SUMMARY: Final = SummaryKeys(
    "redaction.body.redacted.keys",
    "redaction.body.redacted.count",
    "redaction.body.masked.keys",
    "redaction.body.masked.count",
    "redaction.body.allowed.keys",
    "redaction.body.allowed.count",
    "redaction.body.ignored.count",
)
SUMMARY_NAMES: Final = frozenset(astuple(ATTRIBUTE_SUMMARY) + astuple(BODY_SUMMARY))


def field_of(items: pa.StructArray, name: str) -> pa.Array:
    """A struct child; ``.field`` is zero-copy where ``pc.struct_field`` first merges the
    struct's validity into it (tens of µs per call), and flattened items have no nulls."""
    return items.field(name) if items.null_count == 0 else pc.struct_field(items, name)


def set_strings(items: pa.StructArray, mask: np.ndarray, strings: pa.Array) -> pa.StructArray:
    """Items whose values become ``strings`` where ``mask`` (Value.SetStr: the other value
    fields are cleared); keys stay."""
    where = pa.array(mask)
    types = field_of(items, "type").to_numpy(zero_copy_only=False).copy()
    types[mask] = V_STRING
    arrays = [
        field_of(items, "key"),
        pa.array(types, pa.int8()),
        pc.replace_with_mask(field_of(items, "str"), where, strings),
    ]
    for name in ("int", "double", "bool", "bytes"):
        child = field_of(items, name)
        if child.null_count < len(child):
            child = pc.if_else(where, pa.scalar(None, child.type), child)
        arrays.append(child)
    return pa.StructArray.from_arrays(arrays, fields=list(ATTRIBUTE))


class KeyRules:
    """Which keys are ignored, removed (not allowed) or masked whole; cached per key."""

    def __init__(self, config: RedactionConfig) -> None:
        self.allow_all = config.allow_all_keys
        self.allowed = frozenset(config.allowed_keys)
        self.ignored = frozenset(config.ignored_keys)
        self.ignored_patterns = list(config.ignored_key_patterns)
        self.blocked_patterns = list(config.blocked_key_patterns)
        self.summary = config.summary
        self.summary_enabled = config.summary in ("debug", "info")
        self._cache: dict[str, tuple[bool, bool, bool, bool]] = {}

    def _matches(self, keys: list[str], patterns: list[str]) -> list[bool]:
        hit = np.zeros(len(keys), np.bool_)
        arr = pa.array(keys, pa.string())
        for pattern in patterns:
            hit |= pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False)
        return hit.tolist()

    def classify(self, keys: list[str]) -> np.ndarray:
        """(n, 4) bools per key: summary, ignored, not allowed, masked."""
        new = [k for k in keys if k not in self._cache]
        if new:
            ignored_re = self._matches(new, self.ignored_patterns)
            masked_re = self._matches(new, self.blocked_patterns)
            for key, ign, mask in zip(new, ignored_re, masked_re, strict=True):
                self._cache[key] = (
                    key in SUMMARY_NAMES,
                    key in self.ignored or ign,
                    not self.allow_all and key not in self.allowed,
                    mask,
                )
        return np.array([self._cache[k] for k in keys], np.bool_).reshape(len(keys), 4)

    def one(self, key: str) -> tuple[bool, bool, bool, bool]:
        return tuple(self.classify([key])[0].tolist())  # type: ignore[return-value]


def _joined_keys(
    n: int, parents: np.ndarray, keys: list[str], codes: np.ndarray
) -> tuple[np.ndarray, pa.Array]:
    """Per row: how many items, and their keys sorted (byte order, like Go's sort.Strings)
    and joined with ","."""
    counts = np.bincount(parents, minlength=n) if len(parents) else np.zeros(n, np.int64)
    if not len(parents):
        return counts, pa.nulls(n, pa.string())
    order_of_key = np.empty(len(keys), np.int64)
    order_of_key[sorted(range(len(keys)), key=lambda i: keys[i].encode())] = np.arange(len(keys))
    order = np.lexsort((order_of_key[codes], parents))
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    names = pa.array(keys, pa.string()).take(pa.array(codes[order]))
    return counts, pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), names), SEPARATOR)


@dataclass(slots=True)
class Outcome:
    """Per row counts and (for the debug summary) sorted, joined keys of one category."""

    counts: np.ndarray
    keys: pa.Array | None


def outcome(n: int, parents: np.ndarray, names: pa.Array, debug: bool) -> Outcome:
    """From the items of one category (their rows and key names)."""
    if not debug or not len(parents):
        counts = np.bincount(parents, minlength=n) if len(parents) else np.zeros(n, np.int64)
        return Outcome(counts, None)
    encoded = pc.dictionary_encode(fill_null(names, ""))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    counts, joined = _joined_keys(n, parents, encoded.dictionary.to_pylist(), codes)
    return Outcome(counts, joined)


def _merge_keys(new: str | None, old: str) -> str:
    keys = (new.split(SEPARATOR) if new else []) + old.split(SEPARATOR)
    return SEPARATOR.join(sorted(keys, key=str.encode))


def write_summary(
    lists: pa.Array,
    original: pa.Array,
    names: SummaryKeys,
    summary: str,
    redacted: Outcome,
    masked: Outcome,
    allowed: Outcome,
    ignored: Outcome,
) -> pa.Array:
    """addMetaAttrs for the four categories, in the Collector's order. Redacted and masked
    accumulate over earlier redaction processors (their outcomes cannot be observed again);
    allowed and ignored describe the record as it now stands and are replaced."""
    if summary not in ("debug", "info"):
        return lists
    debug = summary == "debug"
    # the summary attributes rows already hold (from a redaction processor before this one):
    # without any, nothing is accumulated or removed, and those passes are skipped
    flat_keys = field_of(pc.list_flatten(as_array(lists)), "key") if len(lists) else None
    existing: set[str] = set()
    if flat_keys is not None and len(flat_keys):
        ours = pc.is_in(flat_keys, pa.array(astuple(names)))
        if pc.any(ours).as_py():
            existing = set(pc.unique(flat_keys.filter(ours)).to_pylist())
    writes: list[tuple[str, Vals, np.ndarray]] = []
    plan = (
        (redacted, names.redacted_keys, names.redacted_count, True),
        (masked, names.masked_keys, names.masked_count, True),
        (allowed, names.allowed_keys, names.allowed_count, False),
        (ignored, "", names.ignored_count, False),
    )
    for result, keys_attr, count_attr, accumulate in plan:
        present = result.counts > 0
        if not accumulate and existing & {keys_attr, count_attr} and (~present).any():
            drop = {keys_attr, count_attr} - {""}
            lists = filter_keys(
                lists,
                ~present,
                lambda flat, drop=drop: pc.is_in(  # type: ignore[misc]
                    pc.fill_null(flat.keys(), ""), pa.array(sorted(drop))
                ).to_numpy(zero_copy_only=False),
            )
        if not present.any():
            continue
        if debug and keys_attr:
            assert result.keys is not None
            joined = result.keys
            if accumulate and keys_attr in existing:
                old = lookup(original, keys_attr)
                old_str = np.flatnonzero(present & (old.types == V_STRING))
                if len(old_str):
                    texts = joined.to_pylist()
                    previous = old.column("str").take(pa.array(old_str)).to_pylist()
                    for row, prev in zip(old_str.tolist(), previous, strict=True):
                        if prev:
                            texts[row] = _merge_keys(texts[row], prev)
                    joined = pa.array(texts, pa.string())
            writes.append((keys_attr, Vals.typed(V_STRING, joined), present))
        counts = result.counts.astype(np.int64)
        if accumulate and count_attr in existing:
            old = lookup(original, count_attr)
            if (old.types == V_INT).any():
                prev = pc.fill_null(old.column("int"), 0).to_numpy(zero_copy_only=False)
                counts = counts + np.where(old.types == V_INT, prev, 0)
        writes.append((count_attr, Vals.typed(V_INT, pa.array(counts)), present))
    if existing:
        # PutStr/PutInt: an attribute already there is updated in place
        for key, vals, rows in writes:
            lists = upsert(lists, key, vals, rows)
        return lists
    return _append(lists, writes)


def _append(lists: pa.Array, writes: list[tuple[str, Vals, np.ndarray]]) -> pa.Array:
    """New attributes appended to the selected rows, in ``writes`` order, in one pass."""
    flat = Flat(lists)
    parts = [flat.items.cast(ATTRIBUTE)]
    parents = [flat.parents]
    for key, vals, rows in writes:
        selected = np.flatnonzero(rows)
        if not len(selected):
            continue
        struct = vals.take(selected).to_struct()
        keys = pc.fill_null(pa.nulls(len(selected), pa.string()), key)
        parts.append(
            pa.StructArray.from_arrays(
                [keys, *(struct.field(f.name) for f in struct.type)], fields=list(ATTRIBUTE)
            )
        )
        parents.append(selected)
    if len(parts) == 1:
        return lists
    all_parents = np.concatenate(parents)
    order = np.argsort(all_parents, kind="stable")
    offsets = np.zeros(flat.n + 1, np.int64)
    np.cumsum(np.bincount(all_parents, minlength=flat.n), out=offsets[1:])
    return build(offsets, pa.concat_arrays(parts).take(pa.array(order)))


@dataclass(slots=True)
class Prepared:
    """One attribute column after the key decisions, waiting for its value checks (which
    run for all columns of a batch together: one pass of each pattern per batch)."""

    original: pa.Array
    flat: Flat
    key_names: pa.Array
    redacted: np.ndarray  # per item
    ignored: np.ndarray  # per item
    candidates: np.ndarray  # item indices whose values are checked
    mask_key: np.ndarray  # per candidate: the key is blocked, the whole value is masked
    text: pa.Array  # per candidate: the string the value rules see


def prepare(
    lists: pa.Array | pa.ChunkedArray, keys: KeyRules, config: RedactionConfig
) -> Prepared | None:
    """The key decisions for every attribute of a column (None: no attributes at all)."""
    original = as_array(lists)
    flat = Flat(original)
    items = flat.items
    if not len(items):
        return None
    key_names = fill_null(field_of(items, "key"), "")
    encoded = pc.dictionary_encode(key_names)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    classes = keys.classify(encoded.dictionary.to_pylist())[codes]
    is_summary, ignored_key, not_allowed, mask_key = classes.T
    redacted = np.where(
        is_summary, not_allowed & (not keys.summary_enabled), ~ignored_key & not_allowed
    )
    ignored = ~is_summary & ignored_key
    candidates = np.flatnonzero(~is_summary & ~ignored & ~redacted)
    if config.redact_all_types:
        text = value_to_string(items.take(pa.array(candidates)))
    else:
        # Value.Str() is "" for anything but a string
        types = field_of(items, "type").to_numpy(zero_copy_only=False)
        strings = fill_null(field_of(items, "str"), "")
        text = pc.if_else(pa.array(types == V_STRING), strings, "")
        if len(candidates) < len(items):
            text = text.take(pa.array(candidates))
    return Prepared(
        original, flat, key_names, redacted, ignored, candidates, mask_key[candidates], text
    )


def finish(
    prep: Prepared, allowed: np.ndarray, processed: pa.Array, keys: KeyRules, values: ValueRules
) -> tuple[pa.Array, int]:
    """The redacted column and the number of values masked, given per candidate whether an
    allowed pattern matched and the text after the blocked patterns."""
    flat, items, text = prep.flat, prep.flat.items, prep.text
    candidates = prep.candidates
    whole = ~allowed & prep.mask_key
    rest = ~allowed & ~whole
    new_text = text
    if whole.any():
        new_text = pc.replace_with_mask(
            new_text, pa.array(whole), values.mask_all(text.filter(pa.array(whole)))
        )
    if processed is text:
        changed = np.zeros(len(text), np.bool_)
    else:
        changed = rest & ~pc.equal(text, processed).to_numpy(zero_copy_only=False)
    if changed.any():
        new_text = pc.if_else(pa.array(changed), processed, new_text)
    masked = whole | changed
    allowed_idx = candidates[allowed]
    masked_idx = candidates[masked]
    new_items = items
    if len(masked_idx):
        item_mask = np.zeros(len(items), np.bool_)
        item_mask[masked_idx] = True
        new_items = set_strings(items, item_mask, as_array(new_text).filter(pa.array(masked)))
    if prep.redacted.any():
        flat.items = new_items
        result = keep_items(flat, ~prep.redacted)
    elif new_items is not items:
        result = build(flat.offsets, new_items)
    else:
        result = prep.original
    if keys.summary_enabled:
        debug = keys.summary == "debug"

        def category(idx: np.ndarray) -> Outcome:
            return outcome(flat.n, flat.parents[idx], prep.key_names.take(pa.array(idx)), debug)

        result = write_summary(
            result,
            prep.original,
            ATTRIBUTE_SUMMARY,
            keys.summary,
            category(np.flatnonzero(prep.redacted)),
            category(masked_idx),
            category(allowed_idx),
            category(np.flatnonzero(prep.ignored)),
        )
    return result, len(masked_idx)


def redact_columns(
    columns: list[pa.Array | pa.ChunkedArray],
    keys: KeyRules,
    values: ValueRules,
    config: RedactionConfig,
) -> tuple[list[pa.Array | None], int]:
    """Several attribute columns (all those of a batch) with one run of the value rules
    over their values together: each pattern is compiled and run once per batch. None
    stands for a column left as it was."""
    preps = [prepare(column, keys, config) for column in columns]
    texts = [p.text for p in preps if p is not None]
    if not texts:
        return [None] * len(columns), 0
    joined = pa.concat_arrays([as_array(t).cast(pa.string()) for t in texts])
    allowed_all = values.allowed(joined)
    processed_all = values.apply(joined) if values.active else joined
    # (apply hands back its input when no pattern matched anywhere: then nothing changed)
    unchanged = processed_all is joined
    out = []
    masked = 0
    start = 0
    for prep in preps:
        if prep is None:
            out.append(None)
            continue
        size = len(prep.text)
        result, count = finish(
            prep,
            allowed_all[start : start + size],
            prep.text if unchanged else processed_all.slice(start, size),
            keys,
            values,
        )
        start += size
        out.append(None if result is prep.original else result)
        masked += count
    return out, masked
