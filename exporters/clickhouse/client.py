"""ClickHouse connections: the embedded chDB store or a server over HTTP (clickhouse-connect),
both driven from worker threads so the event loop never waits on an insert.

chDB allows one store path per process and its client serialises calls on one handle with
a lock, so every exporter instance naming the same path shares one client and one
dedicated thread (calls queue there instead of piling up blocked pool threads). The HTTP
client is thread-safe without a session id, so server inserts run on the default pool
and proceed concurrently, one per queue consumer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import clickhouse_connect
import orjson
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.compression import available_compression
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.schema import ident, literal
from otlp.confmodels import parse_duration
from otlp.errors import ConsumeError, PermanentError, RetryableError

log = logging.getLogger("airis.exporter.clickhouse")
T = TypeVar("T")

# ClickHouse error codes meaning the rows themselves (or the table's shape) are wrong:
# sending them again cannot succeed. Everything else (network, timeouts, TOO_MANY_PARTS,
# MEMORY_LIMIT_EXCEEDED, a missing table an operator may still create, ...) is retried,
# as the Collector retries every ClickHouse error.
PERMANENT_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        8,  # THERE_IS_NO_COLUMN
        10,  # NOT_FOUND_COLUMN_IN_BLOCK
        15,  # DUPLICATE_COLUMN
        16,  # NO_SUCH_COLUMN_IN_TABLE
        20,  # NUMBER_OF_COLUMNS_DOESNT_MATCH
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        36,  # BAD_ARGUMENTS
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        43,  # ILLEGAL_TYPE_OF_ARGUMENT
        44,  # ILLEGAL_COLUMN
        47,  # UNKNOWN_IDENTIFIER
        50,  # UNKNOWN_TYPE
        53,  # TYPE_MISMATCH
        62,  # SYNTAX_ERROR
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        73,  # UNKNOWN_FORMAT
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        190,  # SIZES_OF_ARRAYS_DONT_MATCH
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    }
)


def classify(exc: BaseException, what: str) -> ConsumeError:
    """Map a client or server error to the pipeline's retryable/permanent errors."""
    if isinstance(exc, ConsumeError):
        return exc
    message = f"{what}: {exc}"
    code = getattr(exc, "code", None)
    if isinstance(exc, DatabaseError) and code in PERMANENT_CODES:
        return PermanentError(message)
    if isinstance(exc, DataError | pa.ArrowInvalid | pa.ArrowTypeError):
        return PermanentError(message)
    return RetryableError(message)


_CHDB_CODE = re.compile(r"\bCode: (\d+)\b")


class ChdbError(DatabaseError):
    """An error of the embedded engine's own handle, with ClickHouse's code when it gave one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        found = _CHDB_CODE.search(message)
        self.code = int(found.group(1)) if found else None


class ChdbInserter:
    """Inserts Arrow tables into the embedded store through chDB's `Python()` table function.

    clickhouse-connect's chDB path writes each table as an Arrow IPC file to a temporary file
    and has the engine read and parse it back: four copies and half its CPU in page faults
    and file writes. `Python(rows)` reads the Arrow buffers in place (with the GIL released):
    measured 11.9 -> 7.3 us of CPU per span row of the traces table, same rows stored.
    """

    def __init__(self, path: str, settings: dict[str, str]) -> None:
        import chdb  # the embedded engine: imported only when a chdb store is configured

        # a second handle to the engine clickhouse-connect opened (same path, same engine)
        self.handle = chdb.connect(path)
        self._types: dict[tuple[str, str], dict[str, str]] = {}  # (database, table) -> column types
        self.clause = ""
        if settings:
            pairs = (f"{k} = {literal(v)}" for k, v in settings.items())
            self.clause = " SETTINGS " + ", ".join(pairs)

    def insert(self, database: str, table: str, rows: pa.Table) -> None:
        # An explicit CAST to each column's type: the implicit conversion of INSERT ... SELECT
        # is lenient (a string that is not a number becomes 0), CAST refuses what it cannot
        # convert, as the Arrow input format did.
        types = self._types.get((database, table)) or self._column_types(database, table)
        columns = ", ".join(ident(name) for name in rows.schema.names)
        values = ", ".join(
            f"CAST({ident(name)}, {literal(types[name])})" if name in types else ident(name)
            for name in rows.schema.names
        )
        sql = (
            f"INSERT INTO {ident(database)}.{ident(table)} ({columns})"
            f" SELECT {values} FROM Python(rows){self.clause}"
        )
        try:
            self.handle.query(sql)
        except RuntimeError as exc:
            self._types.pop((database, table), None)  # the table may have changed: ask again
            raise ChdbError(str(exc)) from exc

    def _column_types(self, database: str, table: str) -> dict[str, str]:
        found = self.handle.query(
            "SELECT name, type FROM system.columns"
            f" WHERE database = {literal(database)} AND table = {literal(table)}",
            "JSONCompactEachRow",
        )
        types = dict(orjson.loads(line) for line in found.bytes().splitlines() if line)
        if types:  # no columns: no such table (yet); the insert says so
            self._types[(database, table)] = types
        return types

    def close(self) -> None:
        self.handle.close()


class Connection:
    """One ClickHouse client and where its calls run."""

    def __init__(
        self,
        client: Client,
        executor: ThreadPoolExecutor | None,
        key: str,
        inserter: ChdbInserter | None = None,
    ) -> None:
        self.client = client
        self.executor = executor
        self.key = key
        self.inserter = inserter

    def insert_arrow(self, database: str, table: str, rows: pa.Table) -> None:
        """Insert rows into database.table; blocking, call it through call()."""
        if self.inserter is not None:
            self.inserter.insert(database, table, rows)
        else:
            # pre-quoted: clickhouse-connect leaves names containing a dot unquoted
            self.client.insert_arrow(f"{ident(database)}.{ident(table)}", rows)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    @property
    def server_version(self) -> str:
        return str(self.client.server_version)


# Settings of the embedded store's inserts, under the user's own (endpoint parameters and
# connection_params win). Skip indexes are built by the merges, not by each insert: MergeTree
# merges every inserted part soon and builds the merged part's indexes anew, so the insert's
# were work thrown away. Measured on the traces table (the Collector's DDL, 131k-row inserts):
# 4.0 -> 2.6 us of CPU per row. A part not merged yet has no skip index: queries read it whole.
EMBEDDED_INSERT_SETTINGS = {"materialize_skip_indexes_on_insert": "0"}

# chDB stores open in this process: resolved path -> (connection, users)
_stores: dict[str, tuple[Connection, int]] = {}
_stores_lock = threading.Lock()


def _open_chdb(path: str, settings: dict[str, str]) -> Connection:
    resolved = path if path.startswith(":memory:") else os.path.realpath(path)
    with _stores_lock:
        if resolved in _stores:
            conn, users = _stores[resolved]
            _stores[resolved] = (conn, users + 1)
            return conn
        if not resolved.startswith(":memory:"):
            os.makedirs(resolved, exist_ok=True)
        client = clickhouse_connect.get_client(
            dsn=f"chdb://{resolved}" if resolved.startswith("/") else "chdb://memory",
            settings=settings or None,
        )
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")
        inserter = ChdbInserter(
            resolved if resolved.startswith("/") else ":memory:",
            {**EMBEDDED_INSERT_SETTINGS, **settings},
        )
        conn = Connection(client, executor, f"chdb:{resolved}", inserter)
        _stores[resolved] = (conn, 1)
        return conn


def _http_client(config: ClickHouseConfig) -> Client:
    target = config.target
    params = config.params()
    compress = config.compression()
    if compress and compress not in available_compression:
        log.warning("compress %r is not available here; using lz4", compress)
        compress = "lz4"
    tls = config.tls
    skip_verify = params.get("skip_verify", "").lower() in ("true", "1")
    options: dict[str, Any] = {
        "username": config.username or target.username or "default",
        "password": config.password.get_secret_value() or target.password,
        "database": "default",
        "secure": target.secure,
        "compress": compress,
        "settings": config.settings(),
        # several workers insert at once: a session id would make the server refuse them
        "autogenerate_session_id": False,
        "verify": not (tls.insecure_skip_verify or skip_verify),
        "client_name": "airis-clickhouse-exporter",
    }
    if "dial_timeout" in params:
        options["connect_timeout"] = max(1, round(parse_duration(params["dial_timeout"])))
    if "read_timeout" in params:
        options["send_receive_timeout"] = max(1, round(parse_duration(params["read_timeout"])))
    if tls.ca_file:
        options["ca_cert"] = tls.ca_file
    if tls.cert_file:
        options["client_cert"] = tls.cert_file
    if tls.key_file:
        options["client_cert_key"] = tls.key_file
    if tls.server_name_override:
        options["server_host_name"] = tls.server_name_override
    if params.get("http_path"):
        options["proxy_path"] = params["http_path"]
    errors = []
    # connection_open_strategy in_order: the first host that answers
    for host, port in target.hosts:
        try:
            return clickhouse_connect.get_client(host=host, port=port, **options)
        except Exception as exc:
            errors.append(f"{host}:{port}: {exc}")
    raise OperationalError("cannot connect to ClickHouse: " + "; ".join(errors))


async def open_connection(config: ClickHouseConfig) -> Connection:
    target = config.target
    if target.kind == "chdb":
        # the first open of a store takes a while (engine start): keep it off the loop too
        return await asyncio.to_thread(_open_chdb, target.path, config.settings())
    client = await asyncio.to_thread(_http_client, config)
    return Connection(client, None, "http")


async def close_connection(conn: Connection) -> None:
    if conn.executor is None:
        await asyncio.to_thread(conn.client.close)
        return
    resolved = conn.key.removeprefix("chdb:")
    with _stores_lock:
        current = _stores.get(resolved)
        if current is None:
            return
        stored, users = current
        if users > 1:
            _stores[resolved] = (stored, users - 1)
            return
        del _stores[resolved]
    # close on the store's own thread, after every queued insert
    if conn.inserter is not None:
        await conn.call(conn.inserter.close)
    await conn.call(conn.client.close)
    conn.executor.shutdown(wait=True)
