"""Per-row label values of a batch, vectorised: a record's own attribute, else its
resource's, as the Collector's pdata renders values to strings (`AsString`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import Batch
from otlp.columns import as_array, value_to_string
from otlp.ottl import Rows
from otlp.ottl.attrs import Flat, key_mask

# joins group label values into one key column (a control character no label holds)
SEP = "\x1f"


def attribute_strings(lists: pa.Array | pa.ChunkedArray, key: str) -> pa.Array:
    """`attributes[key]` of every row as a string, null where absent."""
    flat = Flat(lists)
    index = flat.first_index(key_mask(flat, key))
    missing = index < 0
    if missing.all():
        return pa.nulls(flat.n, pa.string())
    taken = flat.items.take(pa.array(np.where(missing, 0, index)))
    text = value_to_string(taken)
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)


def label_values(
    key: str,
    own_attributes: pa.Array | pa.ChunkedArray,
    resources: pa.Table,
    resource_rows: np.ndarray,
    special: dict[str, pa.Array] | None = None,
) -> pa.Array:
    """The value of label `key` per row: a special column (span.name, ...), the row's
    attribute, else its resource's attribute, else ""."""
    if special and key in special:
        return pc.fill_null(as_array(special[key]), "")
    own = attribute_strings(own_attributes, key)
    if own.null_count == 0:
        return own
    res = attribute_strings(resources.column("attributes"), key)
    if len(resource_rows):
        from_resource = res.take(pa.array(resource_rows))
    else:
        from_resource = pa.array([], pa.string())
    return pc.fill_null(pc.coalesce(own, from_resource), "")


def group_column(columns: Sequence[pa.Array], n: int) -> pa.Array:
    """One string key per row joining the label values ("" when nothing is grouped)."""
    if not columns:
        return pa.array(np.full(n, "", dtype=object), pa.string())
    if len(columns) == 1:
        return as_array(columns[0])
    return pc.binary_join_element_wise(*columns, SEP)


def split_key(group_by: Sequence[str], key: str) -> dict[str, str]:
    if not group_by:
        return {}
    return dict(zip(group_by, key.split(SEP), strict=False))


def match_mask(values: pa.Array, op: str, pattern: str) -> np.ndarray:
    """Prometheus-style matcher over a string column (regexes anchored)."""
    if op in ("=", "!="):
        hit = pc.equal(values, pattern)
    else:
        hit = pc.match_substring_regex(values, f"^(?:{pattern})$")
    mask = pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    return ~mask if op in ("!=", "!~") else mask


class Memo:
    """What the conditions observing one batch share: each context's rows and each
    grouping's key column are computed once per batch, not once per rule."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self._rows: dict[str, Rows] = {}
        self._groups: dict[tuple[str, tuple[str, ...]], pa.Array] = {}

    def rows(self, context: str) -> Rows:
        found = self._rows.get(context)
        if found is None:
            found = self._rows[context] = Rows(self.batch, context)
        return found

    def group(
        self, context: str, group_by: Sequence[str], compute: Callable[[], pa.Array]
    ) -> pa.Array:
        key = (context, tuple(group_by))
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = compute()
        return found
