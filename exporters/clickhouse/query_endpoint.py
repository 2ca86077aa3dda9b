"""The embedded store served over ClickHouse's HTTP interface (the part clients use).

`GET`/`POST /` with the query in `query` and/or the body; `database`, `default_format`,
`param_*`, `query_id`; every other URL parameter is a ClickHouse setting. Users come from
the config (`password_sha256_hex`), by basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or
`user`/`password` parameters. `/ping` and a bare `GET /` answer `Ok.`.

Queries run on a dedicated thread pool, each on its own engine connection
(query_engine.py), so neither the event loop nor the exporter's inserts wait for them.
Not served: sessions (`session_id` is accepted and ignored: nothing can be SET anyway),
external data tables (multipart bodies), the native `compress=1`/`decompress=1` framing,
and progress headers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import socket
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import orjson

from exporters.clickhouse.config import QueryEndpoint
from exporters.clickhouse.query_engine import (
    Execution,
    QueryError,
    Request,
    content_type,
    engine_error,
    store_location,
)
from otlp.telemetry_server import AsgiServer, Receive, Scope, Send

log = logging.getLogger("airis.exporter.clickhouse.query")

# request parameters that are not settings
_RESERVED = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "stacktrace",
        "role",
        "client_protocol_version",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "add_http_cors_header",
    }
)
# settings the limits own: a request may lower them, never raise them
_LIMITS = ("max_execution_time", "max_result_rows", "max_result_bytes")
# settings that would lift the read-only guard or open the engine up
_REFUSED = frozenset({"allow_ddl", "allow_introspection_functions", "profile"})
_MAX_BODY = 16 << 20


def _hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class _Encoder:
    """Incremental response compression (Content-Encoding)."""

    def __init__(self, name: str, level: int) -> None:
        self.name = name
        if name == "gzip":
            self._obj: Any = zlib.compressobj(level, zlib.DEFLATED, 31)
        elif name == "deflate":
            self._obj = zlib.compressobj(level)
        elif name == "zstd":
            import zstandard

            self._obj = zstandard.ZstdCompressor().compressobj()
        elif name == "lz4":
            import lz4.frame

            self._obj = lz4.frame.LZ4FrameCompressor()
            self._lz4_started = False
        else:  # br
            import brotli

            self._obj = brotli.Compressor()

    def compress(self, data: bytes) -> bytes:
        if self.name == "lz4":
            head = b""
            if not self._lz4_started:
                head = self._obj.begin()
                self._lz4_started = True
            return head + self._obj.compress(data)
        if self.name == "br":
            return self._obj.process(data)
        return self._obj.compress(data)

    def flush(self) -> bytes:
        if self.name == "lz4":
            head = b"" if self._lz4_started else self._obj.begin()
            return head + self._obj.flush()
        if self.name == "br":
            return self._obj.finish()
        return self._obj.flush()


def _available_encodings() -> list[str]:
    names = ["gzip", "deflate"]
    for name, module in (("zstd", "zstandard"), ("lz4", "lz4.frame"), ("br", "brotli")):
        with contextlib.suppress(ImportError):
            __import__(module)
            names.append(name)
    return names


def _decode_body(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return body
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 47)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    raise QueryError(48, "NOT_IMPLEMENTED", f"Unknown HTTP Content-Encoding {encoding!r}")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class QueryService:
    """The ASGI app plus the limits it enforces."""

    def __init__(self, config: QueryEndpoint, store_path: str, database: str) -> None:
        self.config = config
        self.store = store_location(store_path)
        self.database = config.database or database
        self.users = config.accounts()
        self.pool = ThreadPoolExecutor(
            max_workers=config.max_concurrent_queries, thread_name_prefix="chdb-query"
        )
        self.active = 0
        self.encodings = _available_encodings()
        self.version = "0"
        self.timezone = "UTC"
        self.display_name = socket.gethostname()

    def probe(self) -> None:
        """Server facts for the response headers (blocking: call from a thread)."""
        from chdb import _chdb

        conn = _chdb.connect(self.store)
        try:
            row = conn.query("SELECT version(), timezone()", "TSV", params={}).bytes()
            version, _, timezone = row.decode().strip().partition("\t")
            self.version, self.timezone = version, timezone or "UTC"
        finally:
            conn.close()

    # --- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = scope["method"]
        if path in ("/ping", "/replicas_status") and method in ("GET", "HEAD"):
            await self._plain(send, 200, b"Ok.\n")
            return
        if path != "/":
            await self._plain(
                send,
                404,
                b"There is no handle " + path.encode() + b"\n\nUse / or /ping for health checks.\n",
            )
            return
        if method not in ("GET", "POST"):
            await self._plain(send, 405, b"Method not allowed\n")
            return
        query_id = ""
        try:
            params = dict(parse_qsl(scope.get("query_string", b"").decode(), True))
            query_id = params.get("query_id") or str(uuid.uuid4())
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
            body = await self._body(receive) if method == "POST" else b""
            try:
                body = _decode_body(body, headers.get("content-encoding", ""))
            except QueryError:
                raise
            except Exception as exc:
                raise QueryError(271, "CANNOT_DECOMPRESS", f"Cannot decompress: {exc}") from None
            if method == "GET" and "query" not in params:
                await self._plain(send, 200, b"Ok.\n")
                return
            user, readonly = self._authenticate(params, headers)
            request = self._request(params, body, user, readonly, method)
        except QueryError as exc:
            await self._error(send, exc, query_id)
            return
        encoder = self._encoder(params, headers)
        wait_end = params.get("wait_end_of_query") in ("1", "true")
        await self._run(send, receive, request, query_id, encoder, wait_end)

    async def _body(self, receive: Receive) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > _MAX_BODY:
                raise QueryError(62, "SYNTAX_ERROR", f"Max query size exceeded (> {_MAX_BODY})")
            parts.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(parts)

    def _authenticate(self, params: dict[str, str], headers: dict[str, str]) -> tuple[str, int]:
        user = headers.get("x-clickhouse-user")
        password = headers.get("x-clickhouse-key")
        auth = headers.get("authorization", "")
        if user is None and auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError):
                raise QueryError(
                    516, "AUTHENTICATION_FAILED", "Invalid Authorization header"
                ) from None
            user, _, password = decoded.partition(":")
        if user is None:
            user = params.get("user", "default") or "default"
            password = params.get("password", password)
        password = password or ""
        account = self.users.get(user)
        expected = account.password_sha256_hex if account else ""
        given = _hash(password) if password else ""
        if account is None or not hmac.compare_digest(expected, given):
            if account is not None and expected and not password:
                raise QueryError(
                    194, "REQUIRED_PASSWORD", f"{user}: Authentication failed: password required"
                )
            raise QueryError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, "
                "or there is no user with such name",
            )
        return user, account.readonly

    def _request(
        self, params: dict[str, str], body: bytes, user: str, readonly: int, method: str
    ) -> Request:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise QueryError(
                6, "CANNOT_PARSE_TEXT", "Cannot parse the query: not valid UTF-8"
            ) from None
        sql = params.get("query", "")
        if sql and text:
            sql = f"{sql}\n{text}"
        else:
            sql = sql or text
        if not sql.strip():
            raise QueryError(62, "SYNTAX_ERROR", "Empty query")
        if params.get("compress") == "1" or params.get("decompress") == "1":
            raise QueryError(
                48,
                "NOT_IMPLEMENTED",
                "compress=1/decompress=1 (ClickHouse's native block compression) is not "
                "supported here; use HTTP compression (enable_http_compression=1)",
            )
        settings: dict[str, str] = {}
        query_params: dict[str, str] = {}
        for key, value in params.items():
            if key.startswith("param_"):
                query_params[key[6:]] = value
            elif key not in _RESERVED:
                settings[key] = value
        # GET never writes, as in ClickHouse
        if method == "GET" and readonly == 0:
            readonly = 2
        if "readonly" in settings:
            asked = settings.pop("readonly")
            if not asked.isdigit() or int(asked) not in (0, 1, 2):
                raise QueryError(36, "BAD_ARGUMENTS", f"Invalid readonly value {asked!r}")
            if readonly and int(asked) != 1 and int(asked) != readonly:
                raise QueryError(
                    164, "READONLY", "Cannot modify 'readonly' setting in readonly mode"
                )
            readonly = int(asked) if readonly == 0 or int(asked) == 1 else readonly
        for key in settings:
            if key in _REFUSED and readonly:
                raise QueryError(164, "READONLY", f"Cannot modify '{key}' setting in readonly mode")
        self._apply_limits(settings)
        return Request(
            sql=sql,
            user=user,
            readonly=readonly,
            database=params.get("database") or self.database,
            default_format=params.get("default_format", ""),
            settings=settings,
            params=query_params,
        )

    def _apply_limits(self, settings: dict[str, str]) -> None:
        config = self.config
        limits = {
            "max_execution_time": config.max_execution_time,
            "max_result_rows": config.max_result_rows,
            "max_result_bytes": config.max_result_bytes,
        }
        for name in _LIMITS:
            limit = limits[name]
            if not limit:
                continue
            asked = settings.get(name)
            try:
                value = float(asked) if asked is not None else 0.0
            except ValueError:
                raise QueryError(
                    72, "CANNOT_PARSE_NUMBER", f"Cannot parse {name} value {asked!r}"
                ) from None
            value = min(value, limit) if value > 0 else limit
            settings[name] = f"{value:g}" if name == "max_execution_time" else str(int(value))
        if config.max_result_rows or config.max_result_bytes:
            settings.setdefault("result_overflow_mode", "throw")

    def _encoder(self, params: dict[str, str], headers: dict[str, str]) -> _Encoder | None:
        if params.get("enable_http_compression") not in ("1", "true"):
            return None
        level = params.get("http_zlib_compression_level", "3")
        level_value = int(level) if level.isdigit() and 1 <= int(level) <= 9 else 3
        for item in headers.get("accept-encoding", "").split(","):
            name = item.split(";")[0].strip().lower()
            if name == "x-gzip":
                name = "gzip"
            if name in self.encodings:
                return _Encoder(name, level_value)
        return None

    # --- running ---------------------------------------------------------------------------
    async def _run(
        self,
        send: Send,
        receive: Receive,
        request: Request,
        query_id: str,
        encoder: _Encoder | None,
        wait_end: bool = False,
    ) -> None:
        limit = self.config.max_concurrent_queries
        if self.active >= limit:
            await self._error(
                send,
                QueryError(
                    202,
                    "TOO_MANY_SIMULTANEOUS_QUERIES",
                    f"Too many simultaneous queries. Maximum: {limit}",
                ),
                query_id,
            )
            return
        self.active += 1
        execution = Execution(self.store, request)
        pending: list[Future[Any]] = []
        # the body is read: the next message is the client's disconnect (uvicorn drops what
        # is sent after it silently, so the stream has to be stopped here)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            try:
                await self._off_loop(pending, execution.start)
                chunks: Iterator[bytes] = execution.chunks()
                if wait_end:
                    # the whole result before the status: a late error still gets its status
                    chunks = iter(await self._off_loop(pending, list, chunks))
            except QueryError as exc:
                await self._error(send, exc, query_id)
                return
            fmt = request.output_format
            headers = self._headers(query_id, fmt, execution)
            headers.append((b"Content-Type", content_type(fmt).encode()))
            if encoder is not None:
                headers.append((b"Content-Encoding", encoder.name.encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while not gone.done():
                try:
                    chunk = await self._off_loop(pending, next, chunks, None)
                except QueryError as exc:
                    # the status is out already: ClickHouse appends the exception to the body
                    tail = exc.text(self.version).encode()
                    await self._body_part(send, encoder, b"\n" + tail, more=True)
                    break
                if chunk is None:
                    break
                if chunk:
                    await self._body_part(send, encoder, chunk, more=True)
            final = encoder.flush() if encoder is not None else b""
            await send({"type": "http.response.body", "body": final, "more_body": False})
        except OSError:
            pass  # the client went away; the query is cancelled below
        finally:
            self.active -= 1
            gone.cancel()
            running = [future for future in pending if not future.done()]
            if running:
                # cancelled mid-call (shutdown): close once that engine call returns, on its
                # thread, never concurrently with it
                running[-1].add_done_callback(lambda _: execution.close())
            else:
                await asyncio.get_running_loop().run_in_executor(self.pool, execution.close)

    async def _off_loop(
        self, pending: list[Future[Any]], fn: Callable[..., Any], *args: Any
    ) -> Any:
        future = self.pool.submit(fn, *args)
        pending.append(future)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except QueryError:
            raise
        except Exception as exc:
            # anything else (a format re-framing failure, ...) still reaches the client in
            # ClickHouse's error shape
            log.warning("query failed", extra={"error": repr(exc)})
            raise engine_error(exc) from exc
        finally:
            if future.done():
                pending.remove(future)

    @staticmethod
    async def _body_part(send: Send, encoder: _Encoder | None, data: bytes, more: bool) -> None:
        if encoder is not None:
            data = encoder.compress(data)
            if not data:
                return
        await send({"type": "http.response.body", "body": data, "more_body": more})

    def _headers(
        self, query_id: str, fmt: str | None, execution: Execution | None
    ) -> list[tuple[bytes, bytes]]:
        progress = execution.progress if execution is not None else None
        summary = {
            "read_rows": str(progress.read_rows if progress else 0),
            "read_bytes": str(progress.read_bytes if progress else 0),
            "written_rows": "0",
            "written_bytes": "0",
            "total_rows_to_read": "0",
            "result_bytes": str(progress.result_bytes if progress else 0),
            "elapsed_ns": str(int((progress.elapsed if progress else 0) * 1e9)),
        }
        headers = [
            (b"X-ClickHouse-Query-Id", query_id.encode()),
            (b"X-ClickHouse-Timezone", self.timezone.encode()),
            (b"X-ClickHouse-Server-Display-Name", self.display_name.encode()),
            (b"X-ClickHouse-Summary", orjson.dumps(summary)),
        ]
        if fmt:
            headers.append((b"X-ClickHouse-Format", fmt.encode()))
        return headers

    async def _error(self, send: Send, exc: QueryError, query_id: str) -> None:
        headers = self._headers(query_id, None, None)
        headers += [
            (b"X-ClickHouse-Exception-Code", str(exc.code).encode()),
            (b"Content-Type", b"text/plain; charset=UTF-8"),
        ]
        if exc.status == 401:
            headers.append((b"WWW-Authenticate", b'Basic realm="ClickHouse server HTTP API"'))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": exc.text(self.version).encode()})

    @staticmethod
    async def _plain(send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"Content-Type", b"text/plain; charset=UTF-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class QueryServer:
    """The running endpoint; `port` is the bound one (useful with port 0)."""

    def __init__(self, service: QueryService, server: AsgiServer) -> None:
        self.service = service
        self._server = server

    @property
    def port(self) -> int:
        return self._server.port

    async def stop(self) -> None:
        await self._server.stop()
        self.service.pool.shutdown(wait=False, cancel_futures=True)


async def serve_queries(config: QueryEndpoint, store_path: str, database: str) -> QueryServer:
    """Start serving the store at config.endpoint in the running loop (OSError when the
    address cannot be bound)."""
    service = QueryService(config, store_path, database)
    await asyncio.get_running_loop().run_in_executor(service.pool, service.probe)
    host, port = config.address()
    server = AsgiServer(service, host, port, name="clickhouse-query-endpoint")
    await server.start()
    log.info(
        "Serving the embedded store over ClickHouse's HTTP interface",
        extra={"endpoint": f"{host}:{server.port}"},
    )
    return QueryServer(service, server)
