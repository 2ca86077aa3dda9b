"""OTTL lexer and recursive-descent parser (the grammar of pkg/ottl: statements are an editor
call with an optional ``where`` clause; conditions are boolean expressions).

Precedence, loosest first: ``or``, ``and``, ``not``, comparisons, ``+ -``, ``* /``. Errors
carry the column they were found at; ``OttlError`` renders them the way the Collector reports
an unparsable statement: ``unable to parse OTTL statement "<text>": 1:<column>: <reason>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from otlp.ottl.ast import (
    And,
    Arg,
    Call,
    Compare,
    Enum,
    ListExpr,
    Literal,
    Math,
    Node,
    Not,
    Or,
    Path,
    Statement,
)


class OttlError(ValueError):
    """A statement or condition that does not parse or compile; raised at config load."""

    def __init__(self, kind: str, text: str, pos: int, reason: str) -> None:
        super().__init__(f'unable to parse OTTL {kind} "{text}": 1:{pos}: {reason}')
        self.kind = kind
        self.text = text
        self.pos = pos
        self.reason = reason


class _SyntaxError(Exception):
    def __init__(self, pos: int, reason: str) -> None:
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


@dataclass(slots=True)
class Token:
    kind: str  # str int float bytes ident op eof
    text: str
    pos: int  # 1-based column
    value: object = None


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<bytes>0x[0-9a-fA-F]+)
  | (?P<float>\d*\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)
  | (?P<int>\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>")
  | (?P<op>==|!=|<=|>=|<|>|=|\(|\)|\[|\]|\{|\}|,|\.|\+|-|\*|/|:)
    """,
    re.VERBOSE,
)
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
# tokens after which "-" is a binary operator rather than a number's sign
_VALUE_END = {"str", "int", "float", "bytes", "ident"}


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Go-style double-quoted string starting at text[start] == '"'; returns (value, end)."""
    out = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(text):
            break
        esc = text[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise _SyntaxError(i + 1, f"invalid escape sequence \\{esc}{digits}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc in "01234567":
            digits = text[i + 1 : i + 4]
            if not re.fullmatch(r"[0-7]{3}", digits):
                raise _SyntaxError(i + 1, f"invalid escape sequence \\{digits}")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise _SyntaxError(i + 1, f"invalid escape sequence \\{esc}")
    raise _SyntaxError(start + 1, "unterminated string")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            raise _SyntaxError(i + 1, f"invalid input text {text[i : i + 10]!r}")
        kind = m.lastgroup or ""
        pos = i + 1
        if kind == "ws":
            i = m.end()
            continue
        if kind == "str":
            value, i = _read_string(text, i)
            tokens.append(Token("str", text[pos - 1 : i], pos, value))
            continue
        word = m.group()
        i = m.end()
        if kind == "int":
            tokens.append(Token("int", word, pos, int(word)))
        elif kind == "float":
            tokens.append(Token("float", word, pos, float(word)))
        elif kind == "bytes":
            digits = word[2:]
            if len(digits) % 2:
                raise _SyntaxError(pos, f"invalid bytes literal {word} (odd number of digits)")
            tokens.append(Token("bytes", word, pos, bytes.fromhex(digits)))
        else:
            tokens.append(Token(kind, word, pos))
    tokens.append(Token("eof", "", len(text) + 1))
    # fold a sign into the number that follows when it cannot be a binary operator
    folded: list[Token] = []
    for j, tok in enumerate(tokens):
        prev = folded[-1] if folded else None
        nxt = tokens[j + 1] if j + 1 < len(tokens) else None
        if (
            tok.kind == "op"
            and tok.text in "+-"
            and nxt is not None
            and nxt.kind in ("int", "float")
            and nxt.pos == tok.pos + 1
            and not (prev and (prev.kind in _VALUE_END or prev.text in (")", "]")))
        ):
            sign = -1 if tok.text == "-" else 1
            nxt.value = sign * nxt.value  # type: ignore[operator]
            nxt.text = tok.text + nxt.text
            nxt.pos = tok.pos
            continue
        folded.append(tok)
    return folded


_KEYWORDS = {"and", "or", "not", "where", "true", "false", "nil"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}


# deeper nesting is refused: the parser recurses per level (and no real statement nests so far)
MAX_DEPTH = 64


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _SyntaxError(self.tok.pos, f"expression nested deeper than {MAX_DEPTH} levels")

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text == word

    def expect_op(self, text: str) -> Token:
        if not self.is_op(text):
            raise self.unexpected(f'"{text}"')
        return self.advance()

    def unexpected(self, expected: str) -> _SyntaxError:
        tok = self.tok
        got = "end of input" if tok.kind == "eof" else f'token "{tok.text}"'
        return _SyntaxError(tok.pos, f"unexpected {got} (expected {expected})")

    def expect_eof(self) -> None:
        if self.tok.kind != "eof":
            raise self.unexpected("end of input" if self.i else "an expression")

    # --- statements

    def statement(self, text: str) -> Statement:
        tok = self.tok
        if tok.kind != "ident" or tok.text in _KEYWORDS or not self.peek().text == "(":
            raise self.unexpected("an editor invocation such as set(...)")
        if not tok.text[:1].islower():
            raise _SyntaxError(tok.pos, f'"{tok.text}" is a converter, a statement needs an editor')
        editor = self.call()
        where = None
        if self.is_word("where"):
            self.advance()
            where = self.bool_expr()
        self.expect_eof()
        return Statement(editor, where, text)

    # --- boolean expressions

    def bool_expr(self) -> Node:
        self._enter()
        try:
            pos = self.tok.pos
            items = [self.bool_term()]
            while self.is_word("or"):
                self.advance()
                items.append(self.bool_term())
            return items[0] if len(items) == 1 else Or(pos, items)
        finally:
            self.depth -= 1

    def bool_term(self) -> Node:
        pos = self.tok.pos
        items = [self.bool_factor()]
        while self.is_word("and"):
            self.advance()
            items.append(self.bool_factor())
        return items[0] if len(items) == 1 else And(pos, items)

    def bool_factor(self) -> Node:
        if self.is_word("not"):
            pos = self.advance().pos
            self._enter()
            try:
                return Not(pos, self.bool_factor())
            finally:
                self.depth -= 1
        if self.is_op("("):
            # either a parenthesised boolean expression or the start of a math expression
            start = self.i
            try:
                self.advance()
                inner = self.bool_expr()
                self.expect_op(")")
                if not (self.tok.kind == "op" and self.tok.text in (*_COMPARE, "+", "-", "*", "/")):
                    return inner
            except _SyntaxError:
                pass
            self.i = start
        pos = self.tok.pos
        left = self.value()
        if self.tok.kind == "op" and self.tok.text in _COMPARE:
            op = self.advance().text
            right = self.value()
            return Compare(pos, op, left, right)
        if isinstance(left, Literal) and isinstance(left.value, bool):
            return left
        if isinstance(left, Call):
            # an editor here is reported by the compiler, with a clearer message
            return left
        raise self.unexpected("a comparison operator")

    # --- values

    def value(self) -> Node:
        self._enter()
        try:
            return self.math_expr()
        finally:
            self.depth -= 1

    def math_expr(self) -> Node:
        left = self.math_term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            tok = self.advance()
            left = Math(tok.pos, tok.text, left, self.math_term())
        return left

    def math_term(self) -> Node:
        left = self.math_factor()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            tok = self.advance()
            left = Math(tok.pos, tok.text, left, self.math_factor())
        return left

    def math_factor(self) -> Node:
        tok = self.tok
        if tok.kind in ("str", "int", "float", "bytes"):
            self.advance()
            return Literal(tok.pos, tok.value)
        if self.is_op("("):
            self.advance()
            inner = self.value()
            self.expect_op(")")
            return inner
        if self.is_op("["):
            return self.list_expr()
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                self.advance()
                return Literal(tok.pos, tok.text == "true")
            if tok.text == "nil":
                self.advance()
                return Literal(tok.pos, None)
            if tok.text in _KEYWORDS:
                raise self.unexpected("a value")
            if self.peek().kind == "op" and self.peek().text == "(":
                return self.call()
            if tok.text[:1].isupper():
                self.advance()
                return Enum(tok.pos, tok.text)
            return self.path()
        raise self.unexpected("a value")

    def list_expr(self) -> ListExpr:
        pos = self.expect_op("[").pos
        items: list[Node] = []
        if not self.is_op("]"):
            items.append(self.value())
            while self.is_op(","):
                self.advance()
                items.append(self.value())
        self.expect_op("]")
        return ListExpr(pos, items)

    def path(self) -> Path:
        first = self.advance()
        parts = [first.text]
        while self.is_op("."):
            self.advance()
            if self.tok.kind != "ident":
                raise self.unexpected("a path segment")
            parts.append(self.advance().text)
        keys: list[Literal] = []
        while self.is_op("["):
            self.advance()
            tok = self.tok
            if tok.kind not in ("str", "int"):
                raise self.unexpected("a string or int key")
            self.advance()
            keys.append(Literal(tok.pos, tok.value))
            self.expect_op("]")
        return Path(first.pos, parts, keys)

    def call(self) -> Call:
        name = self.advance()
        self.expect_op("(")
        args: list[Arg] = []
        named = False
        if not self.is_op(")"):
            while True:
                if (
                    self.tok.kind == "ident"
                    and self.peek().kind == "op"
                    and self.peek().text == "="
                ):
                    arg_name = self.advance().text
                    self.advance()
                    args.append(Arg(arg_name, self.value()))
                    named = True
                else:
                    if named:
                        raise _SyntaxError(
                            self.tok.pos, "positional arguments cannot follow named arguments"
                        )
                    args.append(Arg(None, self.value()))
                if self.is_op(","):
                    self.advance()
                    continue
                break
        if self.tok.kind == "op" and self.tok.text in ("[", "{"):
            raise _SyntaxError(self.tok.pos, "indexing a converter's result is not supported")
        self.expect_op(")")
        return Call(name.pos, name.text, args)


def parse_statement(text: str) -> Statement:
    try:
        return _Parser(text).statement(text)
    except _SyntaxError as exc:
        raise OttlError("statement", text, exc.pos, exc.reason) from None


def parse_condition(text: str) -> Node:
    try:
        parser = _Parser(text)
        node = parser.bool_expr()
        parser.expect_eof()
        return node
    except _SyntaxError as exc:
        raise OttlError("condition", text, exc.pos, exc.reason) from None
