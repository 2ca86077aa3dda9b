"""Vectorised edits of attribute columns (``list<ATTRIBUTE>``, one list per row).

Every operation flattens the lists once, works on the flat items with Arrow/numpy kernels
and rebuilds the lists from new offsets. ``rows`` masks select which rows an edit applies
to (a statement's ``where`` clause); items of other rows pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import ATTRIBUTE, ATTRIBUTES, V_EMPTY
from otlp.columns import as_array, list_offsets
from otlp.ottl.values import Vals

_VALUE_NAMES = ("type", "str", "int", "double", "bool", "bytes")


class Flat:
    """The items of an attribute column with the row each belongs to."""

    __slots__ = ("items", "n", "offsets", "parents")

    def __init__(self, lists: pa.Array | pa.ChunkedArray) -> None:
        arr = as_array(lists)
        self.n = len(arr)
        offsets = list_offsets(arr).to_numpy(zero_copy_only=False).astype(np.int64)
        self.offsets = offsets
        self.items: pa.StructArray = pc.list_flatten(arr) if len(arr) else pa.array([], ATTRIBUTE)
        self.parents = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(offsets))

    def keys(self) -> pa.Array:
        return pc.struct_field(self.items, "key")

    def first_index(self, item_mask: np.ndarray) -> np.ndarray:
        """Per row, the index of its first item where ``item_mask`` holds, else -1."""
        out = np.full(self.n, -1, np.int64)
        hits = np.flatnonzero(item_mask)
        if len(hits):
            parents = self.parents[hits]
            # reversed assignment leaves the first hit of each row in place
            out[parents[::-1]] = hits[::-1]
        return out


def build(offsets: np.ndarray, items: pa.Array) -> pa.ListArray:
    """A list<ATTRIBUTE> column from int64 offsets and flat items (schema types restored)."""
    if not isinstance(items, pa.StructArray) or items.type != ATTRIBUTE:
        items = items.cast(ATTRIBUTE)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items, type=ATTRIBUTES)


def key_mask(flat: Flat, key: str) -> np.ndarray:
    return pc.fill_null(pc.equal(flat.keys(), key), False).to_numpy(zero_copy_only=False)


def lookup(lists: pa.Array | pa.ChunkedArray, key: str) -> Vals:
    """``attributes[key]`` for every row: the first item with that key, else nil."""
    flat = Flat(lists)
    index = flat.first_index(key_mask(flat, key))
    if not (index >= 0).any():
        return Vals.nil(flat.n)
    taken = flat.items.take(pa.array(index, mask=index < 0))
    return Vals.from_value(taken)


def keep_items(flat: Flat, keep: np.ndarray) -> pa.ListArray:
    """Drop the items where ``keep`` is false."""
    counts = np.bincount(flat.parents[keep], minlength=flat.n) if flat.n else np.zeros(0, np.int64)
    offsets = np.zeros(flat.n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    items = flat.items.filter(pa.array(keep)) if not keep.all() else flat.items
    return build(offsets, items)


def filter_keys(
    lists: pa.Array | pa.ChunkedArray,
    rows: np.ndarray,
    drop: Callable[[Flat], np.ndarray],
) -> pa.ListArray:
    """Remove, in the selected ``rows``, the items for which ``drop(flat)`` is true."""
    flat = Flat(lists)
    if not len(flat.items):
        return build(flat.offsets, flat.items)
    keep = ~(drop(flat) & rows[flat.parents])
    return keep_items(flat, keep)


def repeat_key(key: str, n: int) -> pa.Array:
    return pc.fill_null(pa.nulls(n, pa.string()), key)


def scatter_values(items: pa.StructArray, changed: np.ndarray, values: Vals) -> pa.StructArray:
    """Items whose values are replaced, where ``changed``, by ``values`` (one per changed
    item, in item order); keys stay."""
    struct = values.to_struct()
    mask = pa.array(changed)
    types = pc.struct_field(items, "type").to_numpy(zero_copy_only=False).copy()
    types[changed] = values.types
    arrays = [pc.struct_field(items, "key"), pa.array(types, pa.int8())]
    for name in _VALUE_NAMES[1:]:
        old, new = pc.struct_field(items, name), struct.field(name)
        if new.null_count == len(new) and old.null_count == len(old):
            arrays.append(old)  # nothing stored in this field before or after
        else:
            arrays.append(pc.replace_with_mask(old, mask, new))
    return pa.StructArray.from_arrays(arrays, fields=list(ATTRIBUTE))


def _attribute_items(keys: pa.Array, values: Vals) -> pa.StructArray:
    struct = values.to_struct()
    return pa.StructArray.from_arrays(
        [keys, *(struct.field(name) for name in _VALUE_NAMES)], fields=list(ATTRIBUTE)
    )


def upsert(
    lists: pa.Array | pa.ChunkedArray,
    key: str,
    values: Vals,
    rows: np.ndarray,
    *,
    insert: bool = True,
    update: bool = True,
) -> pa.ListArray:
    """Set ``key`` to ``values`` in the selected ``rows`` where the value is not nil.

    An existing key keeps its position (the first occurrence is updated); a new key is
    appended, as pcommon.Map.PutX does. ``insert``/``update`` restrict to absent/present keys.
    """
    flat = Flat(lists)
    rows = rows & (values.types != V_EMPTY)
    has_key = key_mask(flat, key)
    first = flat.first_index(has_key)
    present = first >= 0
    items = flat.items
    if update:
        to_update = rows & present
        if to_update.any():
            # each updated row's first `key` item takes the row's new value, in item order
            targets = first[to_update]
            order = np.argsort(targets)
            changed = np.zeros(len(items), np.bool_)
            changed[targets] = True
            items = scatter_values(items, changed, values.take(np.flatnonzero(to_update)[order]))
    to_insert = rows & ~present if insert else np.zeros(flat.n, np.bool_)
    if not to_insert.any():
        return build(flat.offsets, items)
    new_rows = np.flatnonzero(to_insert)
    new_items = _attribute_items(repeat_key(key, len(new_rows)), values.take(new_rows))
    # each new item goes at the end of its row's list
    all_items = pa.concat_arrays([items.cast(ATTRIBUTE), new_items])
    parents = np.concatenate([flat.parents, new_rows])
    order = np.argsort(parents, kind="stable")
    counts = np.bincount(parents, minlength=flat.n)
    offsets = np.zeros(flat.n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return build(offsets, all_items.take(pa.array(order)))


def map_items(
    lists: pa.Array | pa.ChunkedArray,
    rows: np.ndarray,
    edit: Callable[[Flat, np.ndarray], pa.StructArray],
) -> pa.ListArray:
    """Replace the items with ``edit(flat, selected_items)`` (which must return every item,
    changed only where selected)."""
    flat = Flat(lists)
    if not len(flat.items):
        return build(flat.offsets, flat.items)
    selected = rows[flat.parents]
    if not selected.any():
        return build(flat.offsets, flat.items)
    return build(flat.offsets, edit(flat, selected))


def replace_values(items: pa.StructArray, selected: np.ndarray, values: Vals) -> pa.StructArray:
    """Items with their values replaced by ``values`` where ``selected``."""
    old = Vals.from_value(items)
    merged = values.where(selected, old)
    return _attribute_items(pc.struct_field(items, "key"), merged)


def replace_keys(items: pa.StructArray, keys: pa.Array) -> pa.StructArray:
    return pa.StructArray.from_arrays(
        [keys, *(pc.struct_field(items, name) for name in _VALUE_NAMES)], fields=list(ATTRIBUTE)
    )
