"""Columns of OTTL values and the OTTL comparison rules over them, vectorised.

An expression evaluates either to a ``Const`` (a literal, the same for every row) or to
``Vals``: one dynamically typed value per row, laid out like the batch's ``VALUE`` struct
(a type code per row, one Arrow column per kind). ``V_EMPTY`` is OTTL's ``nil``.

Comparison rules (pkg/ottl LANGUAGE.md): nil equals only nil; values of different types are
never equal (``!=`` is true) and never ordered; ints and doubles compare numerically; strings
and bytes compare lexically; bools, maps and slices support only ``==`` and ``!=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import (
    V_ARRAY,
    V_BOOL,
    V_BYTES,
    V_DOUBLE,
    V_EMPTY,
    V_INT,
    V_KVLIST,
    V_STRING,
    VALUE,
)
from otlp.columns import as_array

KIND_NAMES = {
    V_EMPTY: "nil",
    V_STRING: "string",
    V_BOOL: "bool",
    V_INT: "int",
    V_DOUBLE: "double",
    V_ARRAY: "slice",
    V_KVLIST: "map",
    V_BYTES: "bytes",
}
_FIELD = {V_STRING: "str", V_BOOL: "bool", V_INT: "int", V_DOUBLE: "double", V_BYTES: "bytes"}
_KINDS_OF = {
    "str": (V_STRING, V_ARRAY, V_KVLIST),
    "int": (V_INT,),
    "double": (V_DOUBLE,),
    "bool": (V_BOOL,),
    "bytes": (V_BYTES, V_ARRAY, V_KVLIST),
}
_ARROW = {
    "str": pa.string(),
    "bool": pa.bool_(),
    "int": pa.int64(),
    "double": pa.float64(),
    "bytes": pa.binary(),
}


@dataclass(slots=True)
class Const:
    value: Any

    @property
    def kind(self) -> int:
        return kind_of(self.value)


def kind_of(value: Any) -> int:
    if value is None:
        return V_EMPTY
    if isinstance(value, bool):
        return V_BOOL
    if isinstance(value, int):
        return V_INT
    if isinstance(value, float):
        return V_DOUBLE
    if isinstance(value, str):
        return V_STRING
    if isinstance(value, bytes):
        return V_BYTES
    if isinstance(value, list):
        return V_ARRAY
    raise TypeError(f"not an OTTL value: {value!r}")


class Vals:
    """One OTTL value per row. Columns for kinds absent from ``types`` may be None."""

    __slots__ = ("bool", "bytes", "double", "int", "str", "types")

    def __init__(
        self,
        types: np.ndarray,
        *,
        str: pa.Array | None = None,
        int: pa.Array | None = None,
        double: pa.Array | None = None,
        bool: pa.Array | None = None,
        bytes: pa.Array | None = None,
    ) -> None:
        self.types = types
        self.str = str
        self.int = int
        self.double = double
        self.bool = bool
        self.bytes = bytes

    def __len__(self) -> int:
        return len(self.types)

    def column(self, name: str) -> pa.Array:
        col = getattr(self, name)
        if col is None:
            col = pa.nulls(len(self.types), _ARROW[name])
        return col

    @classmethod
    def typed(cls, kind: int, column: pa.Array | pa.ChunkedArray) -> Vals:
        """A column of one kind; null rows are nil."""
        arr = as_array(column)
        types = np.full(len(arr), kind, np.int8)
        if arr.null_count:
            types[arr.is_null().to_numpy(zero_copy_only=False)] = V_EMPTY
        name = _FIELD.get(kind, "str")
        target = _ARROW[name]
        if arr.type != target and not (name == "bytes" and pa.types.is_fixed_size_binary(arr.type)):
            arr = pc.cast(arr, target)
        elif pa.types.is_fixed_size_binary(arr.type):
            arr = pc.cast(arr, pa.binary())
        return cls(types, **{name: arr})

    @classmethod
    def from_value(cls, values: pa.Array | pa.ChunkedArray) -> Vals:
        """From a VALUE (or ATTRIBUTE) struct array; null structs are nil."""
        arr = as_array(values)
        n = len(arr)
        if n == 0:
            return cls(np.zeros(0, np.int8))
        types = pc.fill_null(pc.struct_field(arr, "type"), V_EMPTY).to_numpy(zero_copy_only=False)
        types = np.asarray(types, np.int8).copy()
        if arr.null_count:
            types[arr.is_null().to_numpy(zero_copy_only=False)] = V_EMPTY
        return cls(
            types, **{f: pc.struct_field(arr, f) for f in ("str", "int", "double", "bool", "bytes")}
        )

    @classmethod
    def nil(cls, n: int) -> Vals:
        return cls(np.zeros(n, np.int8))

    @classmethod
    def broadcast(cls, const: Const, n: int) -> Vals:
        kind = const.kind
        types = np.full(n, kind, np.int8)
        if kind == V_EMPTY:
            return cls(types)
        if kind == V_ARRAY:
            raise TypeError("list literals cannot be stored")
        name = _FIELD[kind]
        # filling an all-null array repeats the value without a Python list of n items
        column = pc.fill_null(pa.nulls(n, _ARROW[name]), pa.scalar(const.value, _ARROW[name]))
        return cls(types, **{name: column})

    def to_struct(self) -> pa.StructArray:
        """As a VALUE struct array (nil rows are V_EMPTY values, not null structs)."""
        n = len(self.types)
        arrays = [pa.array(self.types, pa.int8())]
        for name in ("str", "int", "double", "bool", "bytes"):
            col = getattr(self, name)
            if col is None:
                arrays.append(pa.nulls(n, _ARROW[name]))
                continue
            if len(col) != n:
                raise ValueError("column length mismatch")
            # a field only holds data for the kinds stored in it (no stale values)
            stale = ~np.isin(self.types, _KINDS_OF[name])
            if stale.any() and col.null_count < n:
                col = pc.if_else(pa.array(stale), pa.scalar(None, col.type), col)
            arrays.append(col)
        return pa.StructArray.from_arrays(arrays, fields=list(VALUE))

    def take(self, indices: pa.Array | np.ndarray) -> Vals:
        idx = indices if isinstance(indices, pa.Array) else pa.array(indices)
        positions = pc.fill_null(idx, 0).to_numpy(zero_copy_only=False)
        types = self.types[positions]
        if idx.null_count:
            types = types.copy()
            types[idx.is_null().to_numpy(zero_copy_only=False)] = V_EMPTY
        cols = {
            name: getattr(self, name).take(idx)
            for name in ("str", "int", "double", "bool", "bytes")
            if getattr(self, name) is not None
        }
        return Vals(types, **cols)

    def where(self, mask: np.ndarray, other: Vals) -> Vals:
        """Row-wise: self where ``mask``, else ``other``."""
        types = np.where(mask, self.types, other.types).astype(np.int8)
        cond = pa.array(mask)
        cols = {}
        for name in ("str", "int", "double", "bool", "bytes"):
            a, b = getattr(self, name), getattr(other, name)
            if a is None and b is None:
                continue
            cols[name] = pc.if_else(cond, self.column(name), other.column(name))
        return Vals(types, **cols)


Operand = Vals | Const


def _is(x: Operand, kind: int) -> np.ndarray | bool:
    if isinstance(x, Const):
        return x.kind == kind
    return x.types == kind


def _field(x: Operand, name: str) -> pa.Array | pa.Scalar:
    if isinstance(x, Const):
        value = x.value
        if name == "double" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        return pa.scalar(value, _ARROW[name])
    return x.column(name)


def _as_double(x: Operand, from_int: bool) -> pa.Array | pa.Scalar:
    if isinstance(x, Const):
        return pa.scalar(float(x.value), pa.float64())
    return pc.cast(x.column("int"), pa.float64()) if from_int else x.column("double")


_OPS = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


def _mask(result: Any, n: int) -> np.ndarray:
    if isinstance(result, pa.Scalar):
        return np.full(n, bool(result.as_py()), np.bool_)
    return pc.fill_null(result, False).to_numpy(zero_copy_only=False)


def _both(a: Operand, b: Operand, kind_a: int, kind_b: int, n: int) -> np.ndarray:
    both = np.logical_and(_is(a, kind_a), _is(b, kind_b))
    return np.broadcast_to(both, (n,))


def compare(op: str, a: Operand, b: Operand, n: int) -> np.ndarray:
    """Boolean mask of ``a <op> b`` under OTTL's comparison rules."""
    if op == "!=":
        return ~compare("==", a, b, n)
    fn = _OPS[op]
    out = np.zeros(n, np.bool_)

    def add(rows: np.ndarray, left: Any, right: Any) -> None:
        # operands are thunks: a literal is only converted when some row has its kind
        if rows.any():
            out[rows] |= _mask(fn(left(), right()), n)[rows]

    # same-kind comparisons
    kinds = [V_STRING, V_INT, V_DOUBLE, V_BYTES]
    if op == "==":
        kinds += [V_BOOL]
    for kind in kinds:
        rows = _both(a, b, kind, kind, n)
        if rows.any():
            name = _FIELD[kind]
            add(rows, lambda name=name: _field(a, name), lambda name=name: _field(b, name))
    # ints against doubles
    rows = _both(a, b, V_INT, V_DOUBLE, n)
    add(rows, lambda: _as_double(a, True), lambda: _as_double(b, False))
    rows = _both(a, b, V_DOUBLE, V_INT, n)
    add(rows, lambda: _as_double(a, False), lambda: _as_double(b, True))
    if op == "==":
        out |= _both(a, b, V_EMPTY, V_EMPTY, n)
        # maps and slices compare by content; their JSON rendering is canonical (sorted keys)
        for kind in (V_ARRAY, V_KVLIST):
            rows = _both(a, b, kind, kind, n)
            if rows.any() and not isinstance(a, Const) and not isinstance(b, Const):
                add(rows, lambda: a.column("str"), lambda: b.column("str"))
    return out


def truthy(x: Operand, n: int) -> np.ndarray:
    """A boolean-valued expression as a mask: true only where the value is the bool true."""
    if isinstance(x, Const):
        return np.full(n, x.value is True, np.bool_)
    if x.bool is None:
        return np.zeros(n, np.bool_)
    return (x.types == V_BOOL) & _mask(x.bool, n)


def as_vals(x: Operand, n: int) -> Vals:
    return x if isinstance(x, Vals) else Vals.broadcast(x, n)
