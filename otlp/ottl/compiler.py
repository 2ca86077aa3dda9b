"""Compile OTTL syntax trees once, at config load, into functions over ``Rows``.

Conditions become functions returning a numpy boolean mask over the context's rows;
statements become functions applying an editor to the rows where their ``where`` clause
holds. Path resolution, function names, argument counts and literal argument types and
regular expressions are all checked here, so a bad statement fails config load with its
text and column; nothing is looked up per row at runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import V_DOUBLE, V_EMPTY, V_INT
from otlp.ottl import ast
from otlp.ottl.contexts import ENUMS, PathError, PathRef, Rows, resolve
from otlp.ottl.parser import OttlError, parse_condition, parse_statement
from otlp.ottl.values import Const, Operand, Vals, as_vals, compare, truthy

Getter = Callable[[Rows], Operand]
BoolFn = Callable[[Rows], np.ndarray]
EditorFn = Callable[[Rows, np.ndarray], None]


class OttlRuntimeError(Exception):
    """An error while evaluating a statement on data (division by zero, ...): handled by
    the processor's ``error_mode``."""


class CompileError(Exception):
    def __init__(self, pos: int, reason: str) -> None:
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str  # value | values | str | int | bool | strlist | map | target
    optional: bool = False


class Compiler:
    def __init__(self, context: str) -> None:
        self.context = context

    # --- helpers used by the function implementations

    def path(self, node: ast.Node) -> PathRef:
        if not isinstance(node, ast.Path):
            raise CompileError(node.pos, "expected a path")
        try:
            return resolve(self.context, node)
        except PathError as exc:
            raise CompileError(node.pos, str(exc)) from None

    def bind(self, call: ast.Call, params: list[Param]) -> dict[str, Any]:
        """Match the call's arguments to ``params`` and compile each by its kind."""
        required = sum(1 for p in params if not p.optional)
        if not required <= len(call.args) <= len(params):
            expected = str(required) if required == len(params) else f"{required} to {len(params)}"
            raise CompileError(
                call.pos,
                f'incorrect number of arguments in call to "{call.name}". '
                f"Expected: {expected} Received: {len(call.args)}",
            )
        by_name = {p.name: p for p in params}
        bound: dict[str, Any] = {}
        for i, arg in enumerate(call.args):
            if arg.name is None:
                param = params[i]
            else:
                if arg.name not in by_name:
                    raise CompileError(
                        arg.value.pos, f'no such parameter "{arg.name}" in call to "{call.name}"'
                    )
                param = by_name[arg.name]
            if param.name in bound:
                raise CompileError(arg.value.pos, f'parameter "{param.name}" given twice')
            bound[param.name] = self._argument(call, param, arg.value)
        for param in params:
            if param.name not in bound and not param.optional:
                raise CompileError(call.pos, f'missing argument "{param.name}" to "{call.name}"')
        return bound

    def _argument(self, call: ast.Call, param: Param, node: ast.Node) -> Any:
        where = f'argument "{param.name}" of "{call.name}"'
        if param.kind == "value":
            return self.value(node)
        if param.kind == "values":
            if not isinstance(node, ast.ListExpr):
                raise CompileError(node.pos, f"{where} must be a list")
            return [self.value(item) for item in node.items]
        if param.kind in ("str", "int", "bool", "bytes"):
            want = {"str": str, "int": int, "bool": bool, "bytes": bytes}[param.kind]
            if (
                not isinstance(node, ast.Literal)
                or not isinstance(node.value, want)
                or (want is int and isinstance(node.value, bool))
            ):
                raise CompileError(node.pos, f"{where} must be a {_TYPE_NAMES[param.kind]} literal")
            return node.value
        if param.kind == "strlist":
            if not isinstance(node, ast.ListExpr) or not all(
                isinstance(i, ast.Literal) and isinstance(i.value, str) for i in node.items
            ):
                raise CompileError(node.pos, f"{where} must be a list of string literals")
            return [i.value for i in node.items]  # type: ignore[attr-defined]
        if param.kind == "map":
            ref = self.path(node)
            if not ref.is_map:
                raise CompileError(node.pos, f"{where} must be an attributes map path")
            if not ref.own and ref.level not in WRITABLE_PARENTS:
                raise CompileError(
                    node.pos,
                    f'"{ref.text}" cannot be modified in the {self.context} context '
                    f"(use the {ref.level} context)",
                )
            return ref
        if param.kind == "target":
            ref = self.path(node)
            if ref.is_map:
                raise CompileError(node.pos, f"setting a whole map ({ref.text}) is not supported")
            if not ref.settable and not (ref.attribute and ref.level in WRITABLE_PARENTS):
                if not ref.own:
                    raise CompileError(
                        node.pos,
                        f'"{ref.text}" cannot be modified in the {self.context} context '
                        f"(use the {ref.level} context)",
                    )
                raise CompileError(node.pos, f'path "{ref.text}" cannot be set')
            return ref
        if param.kind == "unsupported":
            return node
        raise AssertionError(param.kind)

    # --- values

    def value(self, node: ast.Node) -> Getter:
        if isinstance(node, ast.Literal):
            const = Const(node.value)
            return lambda rows: const
        if isinstance(node, ast.Enum):
            enums = ENUMS[self.context]
            if node.name not in enums:
                raise CompileError(node.pos, f'enum symbol "{node.name}" not found')
            const = Const(enums[node.name])
            return lambda rows: const
        if isinstance(node, ast.Path):
            ref = self.path(node)
            if ref.is_map:
                raise CompileError(node.pos, f'the map "{ref.text}" cannot be used as a value')
            return lambda rows: rows.get(ref)
        if isinstance(node, ast.Call):
            from otlp.ottl.functions import CONVERTERS, EDITORS

            if node.is_editor:
                if node.name in EDITORS:
                    raise CompileError(node.pos, f'editor "{node.name}" cannot be used as a value')
                raise CompileError(node.pos, f'undefined function "{node.name}"')
            spec = CONVERTERS.get(node.name)
            if spec is None:
                raise CompileError(node.pos, f'undefined function "{node.name}"')
            return spec.compile(self, node)
        if isinstance(node, ast.Math):
            return self._math(node)
        if isinstance(node, ast.ListExpr):
            raise CompileError(node.pos, "a list is only allowed as a function argument")
        raise CompileError(node.pos, "a boolean expression cannot be used as a value")

    def _math(self, node: ast.Math) -> Getter:
        for side in (node.left, node.right):
            if isinstance(side, ast.Literal) and (
                not isinstance(side.value, (int, float)) or isinstance(side.value, bool)
            ):
                raise CompileError(side.pos, "math is only defined on int and double values")
        left, right = self.value(node.left), self.value(node.right)
        op = node.op
        return lambda rows: arithmetic(op, left(rows), right(rows), rows.n)

    # --- booleans

    def boolean(self, node: ast.Node) -> BoolFn:
        if isinstance(node, ast.Compare):
            left, right = self.value(node.left), self.value(node.right)
            op = node.op
            return lambda rows: compare(op, left(rows), right(rows), rows.n)
        if isinstance(node, ast.And):
            parts = [self.boolean(item) for item in node.items]
            return lambda rows: np.logical_and.reduce([p(rows) for p in parts])
        if isinstance(node, ast.Or):
            parts = [self.boolean(item) for item in node.items]
            return lambda rows: np.logical_or.reduce([p(rows) for p in parts])
        if isinstance(node, ast.Not):
            inner = self.boolean(node.item)
            return lambda rows: ~inner(rows)
        if isinstance(node, ast.Literal) and isinstance(node.value, bool):
            value = node.value
            return lambda rows: np.full(rows.n, value, np.bool_)
        if isinstance(node, ast.Call) and not node.is_editor:
            from otlp.ottl.functions import CONVERTERS

            spec = CONVERTERS.get(node.name)
            if spec is not None and not spec.boolean:
                raise CompileError(node.pos, f'converter "{node.name}" does not return a boolean')
            getter = self.value(node)
            return lambda rows: truthy(getter(rows), rows.n)
        if isinstance(node, ast.Call):
            raise CompileError(node.pos, f'editor "{node.name}" cannot be used in a condition')
        raise CompileError(node.pos, "expected a boolean expression")

    # --- statements

    def editor(self, call: ast.Call) -> EditorFn:
        from otlp.ottl.functions import CONVERTERS, EDITORS

        spec = EDITORS.get(call.name)
        if spec is None:
            if call.name in CONVERTERS:
                raise CompileError(call.pos, f'"{call.name}" is a converter, not an editor')
            raise CompileError(call.pos, f'undefined function "{call.name}"')
        return spec.compile(self, call)


# levels a lower context may write attributes of (every record of the resource or scope
# writes the shared attributes; the last selected record's value wins, as in the Collector)
WRITABLE_PARENTS = ("resource", "scope")
_TYPE_NAMES = {"str": "string", "int": "int", "bool": "bool", "bytes": "bytes"}


def arithmetic(op: str, a: Operand, b: Operand, n: int) -> Vals:
    """``a <op> b`` on ints and doubles (ints stay ints, Go's truncating division); other
    kinds give nil."""
    av, bv = as_vals(a, n), as_vals(b, n)
    ints = (av.types == V_INT) & (bv.types == V_INT)
    numeric_a = (av.types == V_INT) | (av.types == V_DOUBLE)
    numeric_b = (bv.types == V_INT) | (bv.types == V_DOUBLE)
    doubles = numeric_a & numeric_b & ~ints
    fn = {"+": pc.add, "-": pc.subtract, "*": pc.multiply, "/": pc.divide}[op]
    types = np.full(n, V_EMPTY, np.int8)
    result: dict[str, pa.Array] = {}
    if ints.any():
        left = pc.fill_null(av.column("int"), 0)
        right = pc.fill_null(bv.column("int"), 1)
        if op == "/":
            zero = ints & (right.to_numpy(zero_copy_only=False) == 0)
            if zero.any():
                raise OttlRuntimeError("attempted to divide by 0")
            right = pc.if_else(pa.array(ints), right, 1)
        result["int"] = fn(left, right)
        types[ints] = V_INT
    if doubles.any():

        def as_double(v: Vals) -> pa.Array:
            return pc.if_else(
                pa.array(v.types == V_INT),
                pc.cast(v.column("int"), pa.float64()),
                v.column("double"),
            )

        divisor = as_double(bv)
        if op == "/":
            zero = doubles & (pc.fill_null(divisor, 1.0).to_numpy(zero_copy_only=False) == 0)
            if zero.any():
                raise OttlRuntimeError("attempted to divide by 0")
        result["double"] = fn(as_double(av), divisor)
        types[doubles] = V_DOUBLE
    return Vals(types, **result)


# ---------------------------------------------------------------------------------------------
# public API


class Condition:
    """Conditions ORed together (the filter processor's lists, transform's ``conditions``)."""

    def __init__(self, texts: list[str], context: str) -> None:
        self.texts = list(texts)
        self.context = context
        compiler = Compiler(context)
        self._parts: list[BoolFn] = []
        for text in texts:
            node = parse_condition(text)
            try:
                self._parts.append(compiler.boolean(node))
            except CompileError as exc:
                raise OttlError("condition", text, exc.pos, exc.reason) from None

    def __bool__(self) -> bool:
        return bool(self._parts)

    def evaluate(self, rows: Rows) -> np.ndarray:
        mask = np.zeros(rows.n, np.bool_)
        for part in self._parts:
            mask |= part(rows)
        return mask


class Statement:
    def __init__(self, text: str, context: str) -> None:
        self.text = text
        self.context = context
        tree = parse_statement(text)
        compiler = Compiler(context)
        try:
            self._edit = compiler.editor(tree.editor)
            self._where = compiler.boolean(tree.where) if tree.where is not None else None
        except CompileError as exc:
            raise OttlError("statement", text, exc.pos, exc.reason) from None

    def execute(self, rows: Rows, selected: np.ndarray | None = None) -> None:
        mask = np.ones(rows.n, np.bool_) if selected is None else selected.copy()
        if self._where is not None and mask.any():
            mask &= self._where(rows)
        if mask.any():
            self._edit(rows, mask)


def compile_condition(text: str, context: str) -> Condition:
    return Condition([text], context)


def compile_statements(texts: list[str], context: str) -> list[Statement]:
    return [Statement(text, context) for text in texts]
