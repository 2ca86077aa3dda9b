"""OTTL syntax tree. Every node keeps the column it starts at, for error messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Node:
    pos: int


@dataclass(slots=True)
class Literal(Node):
    # str, int, float, bool, bytes or None (nil)
    value: Any


@dataclass(slots=True)
class Enum(Node):
    name: str


@dataclass(slots=True)
class Path(Node):
    parts: list[str]
    keys: list[Literal] = field(default_factory=list)

    def dotted(self) -> str:
        return ".".join(self.parts)

    def text(self) -> str:
        keys = "".join(f"[{k.value!r}]".replace("'", '"') for k in self.keys)
        return self.dotted() + keys


@dataclass(slots=True)
class ListExpr(Node):
    items: list[Node]


@dataclass(slots=True)
class Arg:
    name: str | None
    value: Node


@dataclass(slots=True)
class Call(Node):
    name: str
    args: list[Arg]

    @property
    def is_editor(self) -> bool:
        return self.name[:1].islower()


@dataclass(slots=True)
class Math(Node):
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(slots=True)
class Compare(Node):
    op: str  # == != < <= > >=
    left: Node
    right: Node


@dataclass(slots=True)
class And(Node):
    items: list[Node]


@dataclass(slots=True)
class Or(Node):
    items: list[Node]


@dataclass(slots=True)
class Not(Node):
    item: Node


@dataclass(slots=True)
class Statement:
    editor: Call
    where: Node | None
    text: str
