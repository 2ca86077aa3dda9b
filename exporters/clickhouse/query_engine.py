"""Running one HTTP-interface query against the embedded store (chDB), off the event loop.

Why a connection per query: chDB 4.4 hosts one engine per process, but any number of
connections to its path may be open and they run queries in parallel. The exporter's
inserts keep their own connection (exporters/clickhouse/client.py), so a query never waits
behind an insert, and per-connection session state (settings, `USE`, `readonly`) cannot leak
from one request into the next. Opening a connection to the running engine costs ~1.5 ms.

Read-only is enforced twice: the engine's `readonly` setting is set on the connection after
the request's settings and limits (so the query text cannot change them back), and the
statement is classified by the engine's parser before it runs (INSERT, DDL, SET, SYSTEM, KILL
and multi-statement batches are refused for read-only users).

Streaming: chDB's streaming API hands out one self-contained document per block, in the
requested format. Where blocks simply concatenate (Native, RowBinary, TSV, CSV, JSONEachRow,
Pretty, ...) they are passed on as they come; the `...WithNames[AndTypes]` formats lose the
repeated header lines after the first block; ArrowStream is re-framed into one IPC stream.
Formats with a document structure around all rows (JSON, XML, Arrow, Parquet, ORC, Avro,
Values, Markdown, ...) are produced whole by the engine, bounded by max_result_rows/bytes,
and sent in slices.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from exporters.clickhouse.schema import literal

DEFAULT_FORMAT = "TabSeparated"
# slice size of results the engine produced whole
_SLICE = 1 << 20
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# blocks concatenate into one valid stream (Pretty: ClickHouse prints one table per block too)
_CONCAT_FORMATS = frozenset(
    f.lower()
    for f in (
        "Native",
        "RowBinary",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "Raw",
        "RawBLOB",
        "CSV",
        "JSONEachRow",
        "JSONLines",
        "NDJSON",
        "JSONStringsEachRow",
        "JSONCompactEachRow",
        "JSONCompactStringsEachRow",
        "LineAsString",
        "MsgPack",
        "TSKV",
        "Null",
        "Pretty",
        "PrettyCompact",
        "PrettySpace",
        "PrettyNoEscapes",
        "PrettyCompactNoEscapes",
        "PrettySpaceNoEscapes",
        "Vertical",
    )
)
# text formats whose first N lines are a header repeated by every block
_HEADER_LINES = {
    **{
        f"{base}withnames".lower(): 1
        for base in (
            "TabSeparated",
            "TSV",
            "TabSeparatedRaw",
            "TSVRaw",
            "CSV",
            "JSONCompactEachRow",
            "JSONCompactStringsEachRow",
        )
    },
    **{
        f"{base}withnamesandtypes".lower(): 2
        for base in (
            "TabSeparated",
            "TSV",
            "TabSeparatedRaw",
            "TSVRaw",
            "CSV",
            "JSONCompactEachRow",
            "JSONCompactStringsEachRow",
        )
    },
}
_ROWBINARY_HEADER = {"rowbinarywithnames": 1, "rowbinarywithnamesandtypes": 2}
_STREAMED_FORMATS = _CONCAT_FORMATS | set(_HEADER_LINES) | set(_ROWBINARY_HEADER) | {"arrowstream"}

# ClickHouse's exceptionCodeToHTTPStatus, by error name (chDB reports the name with the code)
_STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        (
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}


class QueryError(Exception):
    """A ClickHouse exception: code, name and message, rendered as the server does."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @property
    def status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def text(self, version: str) -> str:
        return (
            f"Code: {self.code}. DB::Exception: {self.message}. ({self.name}) (version {version})\n"
        )


_ENGINE_ERROR = re.compile(r"Code: (\d+)\. DB::Exception: ")
_ERROR_TAIL = re.compile(r"(?:\.?\s*\((?:[A-Z_]+|version [^)]*)\))+\s*$")


def engine_error(exc: BaseException) -> QueryError:
    """Parse chDB's error text ("Code: 62. DB::Exception: ... (SYNTAX_ERROR)"), which nests
    the same prefix once per layer it crossed."""
    text = str(exc).strip()
    codes = _ENGINE_ERROR.findall(text)
    if not codes:
        return QueryError(1001, "STD_EXCEPTION", text or type(exc).__name__)
    names = re.findall(r"\(([A-Z][A-Z0-9_]+)\)", text)
    message = _ENGINE_ERROR.sub("", text)
    message = _ERROR_TAIL.sub("", message).rstrip(". ")
    return QueryError(int(codes[-1]), names[-1] if names else "UNKNOWN_EXCEPTION", message)


# --- the query text --------------------------------------------------------------------------

_LITERALS = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"|--[^\n]*|#[^\n]*|/\*.*?\*/",
    re.S,
)
_FORMAT_TAIL = re.compile(
    r"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:SETTINGS\b[^;]*)?;?\s*$", re.I | re.S
)
_SETTINGS_READ = re.compile(
    r"^\s*SELECT\s+[\w\s,.*]+?\s+FROM\s+system\.settings\b[\w\s]*?"
    r"(?:\bFORMAT\s+\w+)?\s*;?\s*$",
    re.I,
)


def masked(sql: str) -> str:
    """The query with string literals, quoted names and comments blanked out."""
    return _LITERALS.sub(lambda m: " " * len(m.group(0)), sql)


def format_clause(sql: str) -> str | None:
    match = _FORMAT_TAIL.search(masked(sql))
    return match.group(1) if match else None


def reads_settings_only(sql: str) -> bool:
    """A plain `SELECT ... FROM system.settings` (no parentheses, so no function or table
    function, no SETTINGS clause): clients ask it to learn which settings they may send."""
    text = masked(sql)
    return bool(_SETTINGS_READ.match(text)) and not re.search(r"(?<!\.)\bSETTINGS\b", text, re.I)


def content_type(fmt: str) -> str:
    low = fmt.lower()
    if low.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if low.startswith("csv"):
        return "text/csv; charset=UTF-8"
    if low.startswith(("json", "ndjson")):
        return "application/json; charset=UTF-8"
    if low == "xml":
        return "application/xml; charset=UTF-8"
    if low.startswith(
        ("native", "rowbinary", "arrow", "parquet", "orc", "avro", "msgpack", "protobuf", "capnp")
    ) or low in ("rawblob", "bsoneachrow", "npy"):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


# --- execution -------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """What one HTTP request asks of the engine, after authentication."""

    sql: str
    user: str
    readonly: int
    database: str
    default_format: str
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def output_format(self) -> str:
        return format_clause(self.sql) or self.default_format or DEFAULT_FORMAT


@dataclass(slots=True)
class Progress:
    read_rows: int = 0
    read_bytes: int = 0
    result_bytes: int = 0
    elapsed: float = 0.0

    def add(self, result: Any, size: int) -> None:
        self.read_rows += int(result.rows_read())
        self.read_bytes += int(result.bytes_read())
        self.result_bytes += size
        self.elapsed = max(self.elapsed, float(result.elapsed()))


class Execution:
    """One query on its own engine connection; every method blocks, so call them from a
    worker thread, one at a time."""

    def __init__(self, store: str, request: Request) -> None:
        self.store = store
        self.request = request
        self.progress = Progress()
        self._conn: Any = None
        self._stream: Any = None
        self._whole: bytes | None = None
        self._first: bytes | None = None
        self._lock = threading.Lock()

    # --- setup -----------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, apply settings and limits, check the statement and run it up to its first
        output (so errors before any output get a proper HTTP status)."""
        # imported here: importing chdb starts an engine, which `airis query` over HTTP skips
        from chdb import _chdb

        req = self.request
        try:
            self._conn = _chdb.connect(self.store)
        except RuntimeError as exc:
            raise engine_error(exc) from None
        for name, value in req.settings.items():
            if not _SETTING_NAME.fullmatch(name):
                raise QueryError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
            self._run(f"SET {name} = {literal(value)}")
        if req.database:
            self._run(f"USE `{req.database.replace('`', '``')}`")
        readonly = req.readonly
        if readonly == 1 and reads_settings_only(req.sql):
            # shows clients the settings they may send as URL parameters (read-only mode 1
            # would mark every one unchangeable, and clickhouse-connect then refuses them)
            readonly = 2
        if readonly:
            self._check_statement()
            self._run(f"SET readonly = {readonly}")
        fmt = req.output_format
        low = fmt.lower()
        if low in _STREAMED_FORMATS:
            try:
                self._stream = self._call(self._conn.send_query, req.sql, fmt, params=req.params)
            except QueryError as exc:
                # SHOW, DESCRIBE, EXISTS, EXPLAIN ... run only as whole queries in chDB
                if "Streaming query is not supported" not in exc.message:
                    raise
            else:
                self._first = self._next_block()
                return
        result = self._call(self._conn.query, req.sql, fmt, params=req.params)
        self._whole = result.bytes()
        self.progress.add(result, len(self._whole))

    def _run(self, sql: str) -> None:
        self._call(self._conn.query, sql, "CSV", params={})

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            raise engine_error(exc) from None

    def _check_statement(self) -> None:
        info = self._conn.classify_query(self.request.sql)
        count = int(info["statement_count"])
        if count > 1:
            raise QueryError(62, "SYNTAX_ERROR", "Multi-statements are not allowed")
        kind = getattr(info["query_class"], "name", str(info["query_class"]))
        # an unparsable query (count 0) goes on to the engine for its syntax error
        if count == 1 and kind != "READ_ONLY":
            raise QueryError(
                164, "READONLY", f"{self.request.user}: Cannot execute query in readonly mode"
            )

    def _next_block(self) -> bytes | None:
        result = self._call(self._conn.streaming_fetch_result, self._stream)
        if result is None:
            return None
        data = result.bytes()
        if not data and not int(result.rows_read()):
            return None
        self.progress.add(result, len(data))
        return data

    # --- output ----------------------------------------------------------------------------
    def chunks(self) -> Iterator[bytes]:
        """The response body in pieces; each next() may block on the engine."""
        if self._whole is not None:
            data = self._whole
            for offset in range(0, len(data), _SLICE):
                yield data[offset : offset + _SLICE]
            return
        low = self.request.output_format.lower()
        blocks = self._blocks()
        if low == "arrowstream":
            yield from _reframe_arrow(blocks)
        elif low in _HEADER_LINES:
            yield from _drop_repeated_lines(blocks, _HEADER_LINES[low])
        elif low in _ROWBINARY_HEADER:
            yield from _drop_rowbinary_header(blocks, _ROWBINARY_HEADER[low])
        else:
            yield from blocks

    def _blocks(self) -> Iterator[bytes]:
        first, self._first = self._first, None
        if first is None:
            return
        yield first
        while (block := self._next_block()) is not None:
            yield block
        self._stream = None

    def close(self) -> None:
        """Cancel what still runs and drop the connection (idempotent)."""
        with self._lock:
            conn, stream = self._conn, self._stream
            self._conn = self._stream = None
        if conn is None:
            return
        if stream is not None:
            try:
                conn.streaming_cancel_query(stream)
            except Exception:  # a finished stream may refuse the cancel
                pass
        try:
            conn.close()
        except Exception:
            pass


def _drop_repeated_lines(blocks: Iterator[bytes], lines: int) -> Iterator[bytes]:
    for index, block in enumerate(blocks):
        if index == 0:
            yield block
            continue
        cut = 0
        for _ in range(lines):
            cut = block.index(b"\n", cut) + 1
        yield block[cut:]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _drop_rowbinary_header(blocks: Iterator[bytes], lists: int) -> Iterator[bytes]:
    """RowBinaryWithNames[AndTypes]: a column count, then names (and types) as strings."""
    for index, block in enumerate(blocks):
        if index == 0:
            yield block
            continue
        count, pos = _varint(block, 0)
        for _ in range(count * lists):
            size, pos = _varint(block, pos)
            pos += size
        yield block[pos:]


def _reframe_arrow(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Each block is a complete Arrow IPC stream; the response must be a single one."""
    sink = io.BytesIO()
    writer: pa.ipc.RecordBatchStreamWriter | None = None
    for block in blocks:
        reader = pa.ipc.open_stream(block)
        if writer is None:
            writer = pa.ipc.new_stream(sink, reader.schema)
        for batch in reader:
            writer.write_batch(batch)
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        if data:
            yield data
    if writer is not None:
        writer.close()
        yield sink.getvalue()


def store_location(path: str) -> str:
    """The connection string of the exporter's store (the same resolution as client.py)."""
    if path.startswith(":memory:") or path == "memory":
        return ":memory:"
    return os.path.realpath(path)
