"""Vectorised value conversions shared by the converters (String, Concat, IsMatch, Int,
Double) with the Collector's rules for each kind."""

from __future__ import annotations

import base64
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import V_ARRAY, V_BOOL, V_BYTES, V_DOUBLE, V_EMPTY, V_INT, V_KVLIST, V_STRING
from otlp.columns import double_strings
from otlp.ottl.values import Vals

_INT_TEXT = re.compile(r"^[+-]?[0-9]+$")
# strconv.ParseFloat: decimal and hex floats, inf/infinity/nan in any case
_FLOAT_TEXT = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))$"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _rows(vals: Vals, kind: int) -> np.ndarray:
    return vals.types == kind


def to_text(vals: Vals, *, bytes_as: str = "hex", nil: str | None = None) -> pa.Array:
    """Each value as text; maps and slices as their JSON. ``nil`` rows become ``nil``
    (None: null)."""
    n = len(vals)
    out = pa.nulls(n, pa.string())
    conditions: list[np.ndarray] = []
    cases: list[pa.Array] = []
    for kinds, render in (
        ((V_STRING, V_ARRAY, V_KVLIST), lambda: vals.column("str")),
        ((V_INT,), lambda: pc.cast(vals.column("int"), pa.string())),
        ((V_DOUBLE,), lambda: double_strings(vals.column("double"))),
        ((V_BOOL,), lambda: pc.cast(vals.column("bool"), pa.string())),
        ((V_BYTES,), lambda: _bytes_text(vals, bytes_as)),
    ):
        rows = np.isin(vals.types, kinds)
        if rows.any():
            conditions.append(rows)
            cases.append(render())
    if nil is not None:
        rows = vals.types == V_EMPTY
        if rows.any():
            conditions.append(rows)
            cases.append(pa.array([nil] * n, pa.string()))
    if not conditions:
        return out
    names = [str(i) for i in range(len(conditions))]
    cond = pa.StructArray.from_arrays([pa.array(c) for c in conditions], names)
    return pc.case_when(cond, *cases, out)


def _bytes_text(vals: Vals, how: str) -> pa.Array:
    raw = vals.column("bytes")
    rows = np.flatnonzero(vals.types == V_BYTES)
    texts: list[str | None] = [None] * len(vals)
    for i in rows:
        value = raw[int(i)].as_py() or b""
        texts[i] = value.hex() if how == "hex" else base64.b64encode(value).decode()
    return pa.array(texts, pa.string())


def to_int(vals: Vals) -> Vals:
    """The Int converter: doubles truncate toward zero, strings parse as base-10 integers,
    bools are 1/0; anything else (or a failed parse) is nil."""
    n = len(vals)
    result = np.zeros(n, np.int64)
    valid = np.zeros(n, np.bool_)
    rows = vals.types == V_INT
    if rows.any():
        result[rows] = pc.fill_null(vals.column("int"), 0).to_numpy(zero_copy_only=False)[rows]
        valid |= rows
    rows = vals.types == V_DOUBLE
    if rows.any():
        doubles = pc.fill_null(vals.column("double"), 0.0).to_numpy(zero_copy_only=False)
        ok = rows & np.isfinite(doubles) & (np.abs(doubles) < 2.0**63)
        result[ok] = np.trunc(doubles[ok]).astype(np.int64)
        valid |= ok
    rows = vals.types == V_BOOL
    if rows.any():
        flags = pc.fill_null(vals.column("bool"), False).to_numpy(zero_copy_only=False)
        result[rows] = flags[rows].astype(np.int64)
        valid |= rows
    rows = vals.types == V_STRING
    if rows.any():
        texts = vals.column("str")
        looks = pc.fill_null(pc.match_substring_regex(texts, _INT_TEXT.pattern), False)
        ok = rows & looks.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(ok):
            number = int(texts[int(i)].as_py())
            if _INT64_MIN <= number <= _INT64_MAX:
                result[i] = number
            else:
                ok[i] = False
        valid |= ok
    types = np.where(valid, V_INT, V_EMPTY).astype(np.int8)
    return Vals(types, int=pa.array(result, mask=~valid))


def to_double(vals: Vals) -> Vals:
    """The Double converter: ints widen, strings parse like strconv.ParseFloat, bools 1/0."""
    n = len(vals)
    result = np.zeros(n, np.float64)
    valid = np.zeros(n, np.bool_)
    rows = vals.types == V_DOUBLE
    if rows.any():
        result[rows] = pc.fill_null(vals.column("double"), 0.0).to_numpy(zero_copy_only=False)[rows]
        valid |= rows
    rows = vals.types == V_INT
    if rows.any():
        ints = pc.fill_null(vals.column("int"), 0).to_numpy(zero_copy_only=False)
        result[rows] = ints[rows].astype(np.float64)
        valid |= rows
    rows = vals.types == V_BOOL
    if rows.any():
        flags = pc.fill_null(vals.column("bool"), False).to_numpy(zero_copy_only=False)
        result[rows] = flags[rows].astype(np.float64)
        valid |= rows
    rows = vals.types == V_STRING
    if rows.any():
        texts = vals.column("str")
        looks = pc.fill_null(pc.match_substring_regex(texts, _FLOAT_TEXT), False)
        ok = rows & looks.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(ok):
            result[i] = float(texts[int(i)].as_py())
        valid |= ok
    types = np.where(valid, V_DOUBLE, V_EMPTY).astype(np.int8)
    return Vals(types, double=pa.array(result, mask=~valid))
