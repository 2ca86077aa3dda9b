"""The attribute actions of the Collector's attributes and resource processors
(internal/coreinternal/attraction): insert, update, upsert, delete, hash, extract, convert,
applied in order to a ``list<ATTRIBUTE>`` column with whole-column Arrow operations."""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import field_validator, model_validator

from otlp.batch import V_BOOL, V_DOUBLE, V_INT, V_STRING
from otlp.component import ComponentConfig
from otlp.ottl import attrs as ops
from otlp.ottl.convert import to_double, to_int, to_text
from otlp.ottl.values import Const, Vals

ActionName = Literal["insert", "update", "upsert", "delete", "hash", "extract", "convert"]


def check_regex(pattern: str) -> str:
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(
            f"invalid regex {pattern!r}: {str(exc).split(':', 1)[-1].strip()}"
        ) from None
    return pattern


class ActionConfig(ComponentConfig):
    key: str = ""
    pattern: str = ""
    action: str
    value: Any = None
    from_attribute: str = ""
    from_context: str = ""
    converted_type: Literal["int", "double", "string", ""] = ""

    @field_validator("action")
    @classmethod
    def _action(cls, v: str) -> str:
        name = v.lower()
        if name not in ActionName.__args__:  # type: ignore[attr-defined]
            raise ValueError(f'unsupported action "{v}"')
        return name

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        return check_regex(v) if v else v

    @field_validator("value")
    @classmethod
    def _value(cls, v: Any) -> Any:
        if isinstance(v, (list, dict)):
            raise ValueError("only scalar values (string, int, double, bool) are supported")
        return v

    @model_validator(mode="after")
    def _check(self) -> ActionConfig:
        action = self.action
        if not self.key and not self.pattern:
            raise ValueError('missing required field "key" (or "pattern")')
        sources = sum(
            (
                "value" in self.model_fields_set,
                bool(self.from_attribute),
                bool(self.from_context),
            )
        )
        if action in ("insert", "update", "upsert"):
            if not self.key:
                raise ValueError(f'action "{action}" needs "key" ("pattern" is not supported)')
            if sources == 0:
                raise ValueError(
                    f'action "{action}" needs one of "value", "from_attribute" or "from_context"'
                )
            if sources > 1:
                raise ValueError("multiple value sources are set")
        elif sources:
            raise ValueError(f'action "{action}" does not take a value source')
        if action == "extract":
            if not self.key or not self.pattern:
                raise ValueError('action "extract" needs "key" and "pattern"')
            if not re.compile(self.pattern).groupindex:
                raise ValueError('field "pattern" contains no named matcher groups')
        if action == "convert":
            if not self.key:
                raise ValueError('action "convert" needs "key"')
            if not self.converted_type:
                raise ValueError('action "convert" needs "converted_type" (int, double or string)')
        return self


Apply = Callable[[pa.Array, np.ndarray, dict[str, str]], pa.Array]


def _key_selector(action: ActionConfig) -> Callable[[ops.Flat], np.ndarray]:
    if action.key:
        return lambda flat: ops.key_mask(flat, action.key)
    pattern = action.pattern
    return lambda flat: pc.fill_null(
        pc.match_substring_regex(flat.keys(), pattern), False
    ).to_numpy(zero_copy_only=False)


def _hash_value(kind: int, item: dict[str, Any]) -> str:
    """SHA-256 hex of the value's bytes as the Collector's hasher sees them; maps, slices
    and bytes hash to ""."""
    if kind == V_STRING:
        raw = (item["str"] or "").encode()
    elif kind == V_BOOL:
        raw = b"\x01" if item["bool"] else b"\x00"
    elif kind == V_INT:
        raw = struct.pack("<q", item["int"] or 0)
    elif kind == V_DOUBLE:
        value = item["double"]
        raw = struct.pack("<d", value if value is not None else 0.0)
        if value is not None and math.isnan(value):
            raw = struct.pack("<Q", 0x7FF8000000000001)
    else:
        return ""
    return hashlib.sha256(raw).hexdigest()


def hash_items(flat: ops.Flat, selected: np.ndarray) -> pa.StructArray:
    items = flat.items
    rows = np.flatnonzero(selected)
    if not len(rows):
        return items
    picked = items.take(pa.array(rows)).to_pylist()
    hashed = pa.array([_hash_value(item["type"], item) for item in picked], pa.string())
    return ops.scatter_values(items, selected, Vals.typed(V_STRING, hashed))


def compile_action(action: ActionConfig) -> Apply:
    name = action.action
    if name in ("insert", "update", "upsert"):
        insert = name != "update"
        update = name != "insert"

        def put(lists: pa.Array, rows: np.ndarray, context: dict[str, str]) -> pa.Array:
            n = len(lists)
            if action.from_attribute:
                values = ops.lookup(lists, action.from_attribute)
            elif action.from_context:
                key = action.from_context.removeprefix("metadata.")
                found = context.get(key)
                values = Vals.broadcast(Const(found), n)
            else:
                values = Vals.broadcast(Const(action.value), n)
            return ops.upsert(lists, action.key, values, rows, insert=insert, update=update)

        return put
    if name == "delete":
        select = _key_selector(action)
        return lambda lists, rows, context: ops.filter_keys(lists, rows, select)
    if name == "hash":
        select = _key_selector(action)

        def hash_(lists: pa.Array, rows: np.ndarray, context: dict[str, str]) -> pa.Array:
            return ops.map_items(
                lists, rows, lambda flat, sel: hash_items(flat, sel & select(flat))
            )

        return hash_
    if name == "extract":
        pattern = action.pattern
        names = list(re.compile(pattern).groupindex)

        def extract(lists: pa.Array, rows: np.ndarray, context: dict[str, str]) -> pa.Array:
            source = ops.lookup(lists, action.key)
            strings = rows & (source.types == V_STRING)
            if not strings.any():
                return lists
            groups = pc.extract_regex(source.column("str"), pattern)
            matched = strings & groups.is_valid().to_numpy(zero_copy_only=False)
            for group in names:
                values = Vals.typed(V_STRING, pc.struct_field(groups, group))
                lists = ops.upsert(lists, group, values, matched)
            return lists

        return extract
    if name == "convert":
        target = action.converted_type

        def convert(lists: pa.Array, rows: np.ndarray, context: dict[str, str]) -> pa.Array:
            source = ops.lookup(lists, action.key)
            if target == "int":
                values = to_int(source)
            elif target == "double":
                values = to_double(source)
            else:
                values = Vals.typed(V_STRING, to_text(source, bytes_as="base64", nil=""))
            # values that do not convert keep their type, as the Collector logs and moves on
            return ops.upsert(lists, action.key, values, rows, insert=False)

        return convert
    raise AssertionError(name)


class Actions:
    def __init__(self, actions: list[ActionConfig]) -> None:
        self.steps = [compile_action(a) for a in actions]

    def apply(self, lists: pa.Array, rows: np.ndarray, context: dict[str, str]) -> pa.Array:
        for step in self.steps:
            if rows.any():
                lists = step(lists, rows, context)
        return lists
