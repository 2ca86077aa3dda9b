"""The OTTL converters and editors we implement, with the Collector's names, argument
order and semantics (pkg/ottl/ottlfuncs). Anything else is a config error.

Converters return values (``Vals``) for whole columns; editors rewrite columns of ``Rows``
in a few Arrow calls, only on the rows selected by the statement's ``where`` clause.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import (
    ATTRIBUTE,
    POINT_TABLES,
    V_ARRAY,
    V_BOOL,
    V_DOUBLE,
    V_EMPTY,
    V_INT,
    V_KVLIST,
    V_STRING,
)
from otlp.ottl import ast
from otlp.ottl.attrs import Flat, filter_keys, keep_items, key_mask, lookup, map_items
from otlp.ottl.compiler import CompileError, Compiler, Param
from otlp.ottl.contexts import PathRef, Rows
from otlp.ottl.convert import to_double, to_int, to_text
from otlp.ottl.values import Const, Vals, as_vals


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    params: list[Param]
    build: Callable[[Compiler, ast.Call, dict[str, Any]], Any]
    boolean: bool = False
    editor: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def compile(self, compiler: Compiler, call: ast.Call) -> Any:
        args = compiler.bind(call, self.params)
        return self.build(compiler, call, args)


# ---------------------------------------------------------------------------------------------
# helpers


def check_regex(pattern: str, pos: int) -> str:
    """Compile the pattern with Arrow's RE2 (the engine Go's regexp syntax matches) now."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        reason = str(exc).split(":", 1)[-1].strip()
        raise CompileError(pos, f'invalid regex pattern "{pattern}": {reason}') from None
    return pattern


_GROUP = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)|(\$))")


def rewrite(replacement: str, pattern: str, pos: int) -> str:
    """A Go regexp.Expand template (``$1``, ``${1}``, ``$name``, ``$$``) as an RE2 rewrite
    string (``\\1``), resolving group names; an unknown group expands to nothing, as in Go."""
    names: dict[str, int] = {}
    groups = 0
    try:
        compiled = re.compile(pattern)
        names = dict(compiled.groupindex)
        groups = compiled.groups
    except re.error:
        groups = 9
    out: list[str] = []
    last = 0
    for m in _GROUP.finditer(replacement):
        out.append(replacement[last : m.start()].replace("\\", "\\\\"))
        last = m.end()
        if m.group(3):
            out.append("$")
            continue
        name = m.group(1) or m.group(2)
        index = int(name) if name.isdigit() else names.get(name)
        if index is None or index > groups:
            continue
        if index > 9:
            raise CompileError(pos, f"replacement refers to group {index}; at most 9 are supported")
        out.append(f"\\{index}")
    # a "$" not followed by a name stays literal (Go treats it as raw text)
    out.append(replacement[last:].replace("\\", "\\\\"))
    return "".join(out)


def _value(getter: Callable[[Rows], Any], rows: Rows) -> Vals:
    return as_vals(getter(rows), rows.n)


def _with_field(items: pa.StructArray, name: str, column: pa.Array) -> pa.StructArray:
    arrays = [column if f.name == name else pc.struct_field(items, f.name) for f in ATTRIBUTE]
    return pa.StructArray.from_arrays(arrays, fields=list(ATTRIBUTE))


def _item_types(items: pa.StructArray) -> np.ndarray:
    return pc.fill_null(pc.struct_field(items, "type"), V_EMPTY).to_numpy(zero_copy_only=False)


def _string_rows(vals: Vals, rows: np.ndarray) -> np.ndarray:
    return rows & (vals.types == V_STRING)


# ---------------------------------------------------------------------------------------------
# converters


def _is_match(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    pattern = check_regex(a["pattern"], call.args[1].value.pos)
    target = a["target"]

    def run(rows: Rows) -> Vals:
        vals = _value(target, rows)
        text = to_text(vals, bytes_as="base64")
        hit = pc.fill_null(pc.match_substring_regex(text, pattern), False)
        mask = hit.to_numpy(zero_copy_only=False) & (vals.types != V_EMPTY)
        return Vals(np.full(rows.n, V_BOOL, np.int8), bool=pa.array(mask))

    return run


def _concat(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    parts, delimiter = a["vals"], a["delimiter"]

    def run(rows: Rows) -> Vals:
        if not parts:
            return Vals.broadcast(Const(""), rows.n)
        texts = [to_text(_value(p, rows), nil="<nil>") for p in parts]
        joined = pc.binary_join_element_wise(*texts, delimiter)
        return Vals.typed(V_STRING, joined)

    return run


def _string(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    value = a["value"]
    return lambda rows: Vals.typed(V_STRING, to_text(_value(value, rows)))


def _int(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    value = a["value"]
    return lambda rows: to_int(_value(value, rows))


def _double(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    value = a["value"]
    return lambda rows: to_double(_value(value, rows))


def _case(fn: Callable[[pa.Array], pa.Array]) -> Callable[..., Any]:
    def build(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
        target = a["target"]

        def run(rows: Rows) -> Vals:
            vals = _value(target, rows)
            strings = vals.types == V_STRING
            types = np.where(strings, V_STRING, V_EMPTY).astype(np.int8)
            return Vals(types, str=fn(vals.column("str")))

        return run

    return build


def _sha256(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    value = a["value"]

    def run(rows: Rows) -> Vals:
        vals = _value(value, rows)
        texts = vals.column("str").to_pylist()
        strings = vals.types == V_STRING
        out = [
            hashlib.sha256(t.encode()).hexdigest() if ok and t is not None else None
            for t, ok in zip(texts, strings, strict=True)
        ]
        return Vals(
            np.where(strings, V_STRING, V_EMPTY).astype(np.int8), str=pa.array(out, pa.string())
        )

    return run


def _id(width: int, name: str) -> Callable[..., Any]:
    def build(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
        raw = a["bytes"]
        if len(raw) != width:
            raise CompileError(call.args[0].value.pos, f"{name} must be {width} bytes")
        const = Const(raw)
        return lambda rows: const

    return build


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9}
_UNIT_NS |= {"m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str) -> int | None:
    """Go's time.ParseDuration, in nanoseconds ("1h30m", "-1.5s", "0")."""
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            return None
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return sign * round(total) if body else None


def _duration(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    nanos = parse_duration(a["duration"])
    if nanos is None:
        raise CompileError(call.args[0].value.pos, f'invalid duration "{a["duration"]}"')
    const = Const(nanos)
    return lambda rows: const


def _is_kind(*kinds: int) -> Callable[..., Any]:
    def build(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
        value = a["value"]

        def run(rows: Rows) -> Vals:
            vals = _value(value, rows)
            return Vals(np.full(rows.n, V_BOOL, np.int8), bool=pa.array(np.isin(vals.types, kinds)))

        return run

    return build


def _is_root_span(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    if c.context != "span":
        raise CompileError(call.pos, '"IsRootSpan" is only available in the span context')

    def run(rows: Rows) -> Vals:
        parents = rows.table.column("parent_span_id")
        parents = parents.combine_chunks() if isinstance(parents, pa.ChunkedArray) else parents
        empty = pc.fill_null(pc.equal(parents.cast(pa.binary()), b"\x00" * 8), True)
        return Vals(np.full(rows.n, V_BOOL, np.int8), bool=empty)

    return run


def _has_attr_on_datapoint(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    """The filter processor's HasAttrKeyOnDatapoint / HasAttrOnDatapoint (metric context):
    true when any data point of the metric has the key (with the value)."""
    if c.context != "metric":
        raise CompileError(call.pos, f'"{call.name}" is only available in the metric context')
    key, expected = a["key"], a.get("expectedVal")

    def run(rows: Rows) -> Vals:
        hit = np.zeros(rows.n, np.bool_)
        for name in POINT_TABLES:
            points = rows.batch.tables[name]
            if not points.num_rows:
                continue
            vals = lookup(points.column("attributes"), key)
            found = vals.types != V_EMPTY
            if expected is not None:
                text = pc.fill_null(pc.equal(to_text(vals, bytes_as="base64"), expected), False)
                found &= text.to_numpy(zero_copy_only=False)
            metric_rows = points.column("metric_index").to_numpy()
            hit[metric_rows[found]] = True
        return Vals(np.full(rows.n, V_BOOL, np.int8), bool=pa.array(hit))

    return run


def _affix(fn: Callable[..., pa.Array], param: str) -> Callable[..., Any]:
    def build(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
        target, affix = a["target"], a[param]

        def run(rows: Rows) -> Vals:
            vals = _value(target, rows)
            hit = pc.fill_null(fn(vals.column("str"), affix), False).to_numpy(zero_copy_only=False)
            hit &= vals.types == V_STRING
            return Vals(np.full(rows.n, V_BOOL, np.int8), bool=pa.array(hit))

        return run

    return build


# ---------------------------------------------------------------------------------------------
# editors


def _set(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    target: PathRef = a["target"]
    value = a["value"]

    def edit(rows: Rows, mask: np.ndarray) -> None:
        rows.set_field(target, _value(value, rows), mask)

    return edit


def _key_filter(drop: Callable[[Flat], np.ndarray]) -> Callable[[PathRef], Any]:
    def make(target: PathRef) -> Any:
        def edit(rows: Rows, mask: np.ndarray) -> None:
            rows.edit_map(target, mask, lambda lists, rows_: filter_keys(lists, rows_, drop))

        return edit

    return make


def _matches(flat: Flat, pattern: str) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(flat.keys(), pattern), False).to_numpy(
        zero_copy_only=False
    )


def _delete_key(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    key = a["key"]
    return _key_filter(lambda flat: key_mask(flat, key))(a["target"])


def _delete_matching_keys(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    pattern = check_regex(a["pattern"], call.args[1].value.pos)
    return _key_filter(lambda flat: _matches(flat, pattern))(a["target"])


def _keep_matching_keys(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    pattern = check_regex(a["pattern"], call.args[1].value.pos)
    return _key_filter(lambda flat: ~_matches(flat, pattern))(a["target"])


def _keep_keys(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    keys = pa.array(a["keys"], pa.string())

    def drop(flat: Flat) -> np.ndarray:
        kept = pc.is_in(flat.keys(), value_set=keys)
        return ~pc.fill_null(kept, False).to_numpy(zero_copy_only=False)

    return _key_filter(drop)(a["target"])


def _limit(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    limit, priority = a["limit"], a["priority_keys"]
    if limit < 0:
        raise CompileError(
            call.args[1].value.pos, f"invalid limit for limit function, {limit} cannot be negative"
        )
    if len(priority) > limit:
        raise CompileError(
            call.args[2].value.pos,
            f"invalid limit for priority keys of limit function, {len(priority)} cannot be "
            f"greater than the limit {limit}",
        )
    target: PathRef = a["target"]
    priority_keys = pa.array(priority, pa.string())

    def limit_map(lists: pa.Array, mask: np.ndarray) -> pa.Array:
        flat = Flat(lists)
        if not len(flat.items):
            return lists
        is_priority = pc.fill_null(pc.is_in(flat.keys(), value_set=priority_keys), False)
        is_priority = is_priority.to_numpy(zero_copy_only=False)
        kept_priority = np.bincount(flat.parents[is_priority], minlength=flat.n)
        others = np.flatnonzero(~is_priority)
        parents = flat.parents[others]
        # rank of each non-priority item within its row (items are grouped by row)
        rank = np.arange(len(others)) - np.searchsorted(parents, parents, side="left")
        keep = np.ones(len(flat.items), np.bool_)
        keep[others] = rank < (limit - kept_priority[parents])
        keep |= ~mask[flat.parents]
        return keep_items(flat, keep)

    def edit(rows: Rows, mask: np.ndarray) -> None:
        rows.edit_map(target, mask, limit_map)

    return edit


def truncate_strings(strings: pa.Array, limit: int, marker: str = "") -> pa.Array:
    """Cut strings longer than ``limit`` bytes at a UTF-8 character boundary so that, with
    ``marker`` appended, they fit in ``limit`` bytes."""
    strings = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    lengths = pc.fill_null(pc.binary_length(strings), 0).to_numpy(zero_copy_only=False)
    over = lengths > limit
    if not over.any():
        return strings
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], np.int32)[strings.offset : strings.offset + n + 1]
    data = np.frombuffer(strings.buffers()[2], np.uint8)
    starts = offsets[:-1].astype(np.int64)
    cut = np.where(over, limit - len(marker.encode()), lengths).astype(np.int64)
    rows = np.flatnonzero(over)
    for _ in range(3):
        # a continuation byte (10xxxxxx) at the cut means a character would be split
        inside = (cut[rows] > 0) & ((data[starts[rows] + cut[rows]] & 0xC0) == 0x80)
        if not inside.any():
            break
        cut[rows[inside]] -= 1
    new_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(cut, out=new_offsets[1:])
    within = np.arange(int(new_offsets[-1])) - np.repeat(new_offsets[:-1], cut)
    gathered = data[np.repeat(starts, cut) + within]
    prefix = pa.StringArray.from_buffers(
        n, pa.py_buffer(new_offsets.astype(np.int32)), pa.py_buffer(gathered.tobytes())
    )
    if marker:
        prefix = pc.binary_join_element_wise(prefix, pa.array([marker] * n, pa.string()), "")
    return pc.if_else(pa.array(over), prefix, strings)


def _truncate_all(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    limit = a["limit"]
    marker = a.get("truncation_marker", "")
    if limit < 0:
        raise CompileError(
            call.args[1].value.pos,
            f"invalid limit for truncate_all function, {limit} cannot be negative",
        )
    if len(marker.encode()) > limit:
        raise CompileError(
            call.pos, "truncation_marker cannot be longer than the limit of truncate_all"
        )
    target: PathRef = a["target"]

    def edit_items(flat: Flat, selected: np.ndarray) -> pa.StructArray:
        strings = selected & (_item_types(flat.items) == V_STRING)
        old = pc.struct_field(flat.items, "str")
        cut = truncate_strings(old, limit, marker)
        return _with_field(flat.items, "str", pc.if_else(pa.array(strings), cut, old))

    def edit(rows: Rows, mask: np.ndarray) -> None:
        rows.edit_map(target, mask, lambda lists, rows_: map_items(lists, rows_, edit_items))

    return edit


def _unsupported_function_arg(call: ast.Call, a: dict[str, Any]) -> None:
    for name in ("function", "replacementFormat"):
        if name in a:
            raise CompileError(call.pos, f'the "{name}" argument of "{call.name}" is not supported')


def _replace_pattern(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    _unsupported_function_arg(call, a)
    pattern = check_regex(a["regex"], call.args[1].value.pos)
    replacement = rewrite(a["replacement"], pattern, call.args[2].value.pos)
    target: PathRef = a["target"]

    def edit(rows: Rows, mask: np.ndarray) -> None:
        vals = rows.get(target)
        strings = _string_rows(vals, mask)
        if not strings.any():
            return
        new = pc.replace_substring_regex(vals.column("str"), pattern, replacement)
        rows.set_field(target, Vals(vals.types, str=new), strings)

    return edit


def _replace_all_patterns(c: Compiler, call: ast.Call, a: dict[str, Any]) -> Any:
    _unsupported_function_arg(call, a)
    mode = a["mode"]
    if mode not in ("key", "value"):
        raise CompileError(
            call.args[1].value.pos, f'invalid mode "{mode}", must be "key" or "value"'
        )
    pattern = check_regex(a["regex"], call.args[2].value.pos)
    replacement = rewrite(a["replacement"], pattern, call.args[3].value.pos)
    target: PathRef = a["target"]

    def edit_items(flat: Flat, selected: np.ndarray) -> pa.StructArray:
        if mode == "key":
            keys = flat.keys()
            new = pc.replace_substring_regex(keys, pattern, replacement)
            return _with_field(flat.items, "key", pc.if_else(pa.array(selected), new, keys))
        strings = selected & (_item_types(flat.items) == V_STRING)
        old = pc.struct_field(flat.items, "str")
        new = pc.replace_substring_regex(old, pattern, replacement)
        return _with_field(flat.items, "str", pc.if_else(pa.array(strings), new, old))

    def edit(rows: Rows, mask: np.ndarray) -> None:
        rows.edit_map(target, mask, lambda lists, rows_: map_items(lists, rows_, edit_items))

    return edit


# ---------------------------------------------------------------------------------------------
# registry

_V = Param("value", "value")
CONVERTERS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec(
            "IsMatch", [Param("target", "value"), Param("pattern", "str")], _is_match, boolean=True
        ),
        FunctionSpec("Concat", [Param("vals", "values"), Param("delimiter", "str")], _concat),
        FunctionSpec("String", [_V], _string),
        FunctionSpec("Int", [_V], _int),
        FunctionSpec("Double", [_V], _double),
        FunctionSpec("ToLowerCase", [Param("target", "value")], _case(pc.utf8_lower)),
        FunctionSpec("ToUpperCase", [Param("target", "value")], _case(pc.utf8_upper)),
        FunctionSpec("SHA256", [_V], _sha256),
        FunctionSpec("Duration", [Param("duration", "str")], _duration),
        FunctionSpec("TraceID", [Param("bytes", "bytes")], _id(16, "TraceID")),
        FunctionSpec("SpanID", [Param("bytes", "bytes")], _id(8, "SpanID")),
        FunctionSpec("IsRootSpan", [], _is_root_span, boolean=True),
        FunctionSpec(
            "HasPrefix",
            [Param("target", "value"), Param("prefix", "str")],
            _affix(lambda s, p: pc.starts_with(s, pattern=p), "prefix"),
            boolean=True,
        ),
        FunctionSpec(
            "HasSuffix",
            [Param("target", "value"), Param("suffix", "str")],
            _affix(lambda s, p: pc.ends_with(s, pattern=p), "suffix"),
            boolean=True,
        ),
        FunctionSpec(
            "HasAttrKeyOnDatapoint", [Param("key", "str")], _has_attr_on_datapoint, boolean=True
        ),
        FunctionSpec(
            "HasAttrOnDatapoint",
            [Param("key", "str"), Param("expectedVal", "str")],
            _has_attr_on_datapoint,
            boolean=True,
        ),
        FunctionSpec("IsString", [_V], _is_kind(V_STRING), boolean=True),
        FunctionSpec("IsInt", [_V], _is_kind(V_INT), boolean=True),
        FunctionSpec("IsDouble", [_V], _is_kind(V_DOUBLE), boolean=True),
        FunctionSpec("IsBool", [_V], _is_kind(V_BOOL), boolean=True),
        FunctionSpec("IsMap", [_V], _is_kind(V_KVLIST), boolean=True),
        FunctionSpec("IsList", [_V], _is_kind(V_ARRAY), boolean=True),
    )
}
_MAP = Param("target", "map")
_NOT_YET = [Param("function", "unsupported", True), Param("replacementFormat", "unsupported", True)]
EDITORS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec("set", [Param("target", "target"), _V], _set, editor=True),
        FunctionSpec("delete_key", [_MAP, Param("key", "str")], _delete_key, editor=True),
        FunctionSpec(
            "delete_matching_keys",
            [_MAP, Param("pattern", "str")],
            _delete_matching_keys,
            editor=True,
        ),
        FunctionSpec(
            "keep_matching_keys", [_MAP, Param("pattern", "str")], _keep_matching_keys, editor=True
        ),
        FunctionSpec("keep_keys", [_MAP, Param("keys", "strlist")], _keep_keys, editor=True),
        FunctionSpec(
            "limit",
            [_MAP, Param("limit", "int"), Param("priority_keys", "strlist")],
            _limit,
            editor=True,
        ),
        FunctionSpec(
            "truncate_all",
            [
                _MAP,
                Param("limit", "int"),
                Param("utf8_safe", "bool", True),
                Param("truncation_marker", "str", True),
            ],
            _truncate_all,
            editor=True,
        ),
        FunctionSpec(
            "replace_pattern",
            [
                Param("target", "target"),
                Param("regex", "str"),
                Param("replacement", "str"),
                *_NOT_YET,
            ],
            _replace_pattern,
            editor=True,
        ),
        FunctionSpec(
            "replace_all_patterns",
            [
                _MAP,
                Param("mode", "str"),
                Param("regex", "str"),
                Param("replacement", "str"),
                *_NOT_YET,
            ],
            _replace_all_patterns,
            editor=True,
        ),
    )
}
