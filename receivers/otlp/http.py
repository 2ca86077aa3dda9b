"""OTLP/HTTP: a raw ASGI app (no framework on the hot path) served by uvicorn (httptools)
as a task in the running loop.

Per request, in order (status when it fails):
unknown path 404 → method other than POST 405 (Allow: POST) → Content-Type other than
application/x-protobuf or application/json 415 → unsupported Content-Encoding 400 →
body over max_request_body_size as sent 413 (the connection is closed) → decompressed body
over the same limit 413 (decompression stops at the limit) or corrupt 400 → undecodable
400 → consumer errors (503 / 429 with Retry-After, partial success on permanent errors).

Errors from 400 on carry a google.rpc.Status encoded like the request; 404/405/415 are
text/plain, as the Collector answers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import grpc
import uvicorn

from otlp import jsonpb
from otlp.auth import Principal, lower_headers
from otlp.errors import InvalidRequestError
from receivers.otlp import compression, status
from receivers.otlp.config import SUPPORTED_COMPRESSION, HTTPServerConfig, split_endpoint
from receivers.otlp.cors import CORS
from receivers.otlp.guard import guarded_protocol

if TYPE_CHECKING:
    from receivers.otlp.receiver import OTLPReceiver

log = logging.getLogger("airis.receiver.otlp")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

PROTOBUF = b"application/x-protobuf"
JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
NOT_FOUND = b"404 page not found\n"
NOT_ALLOWED = b"405 method not allowed, supported: [POST]"
UNSUPPORTED_TYPE = (
    b"415 unsupported media type, supported: [application/json, application/x-protobuf]"
)
# as confighttp's auth handler: the status text and nothing else
UNAUTHORIZED = b"Unauthorized\n"

# a successful Export*ServiceResponse without partial_success
EMPTY_RESPONSE = {PROTOBUF: b"", JSON: b"{}"}
# idle keep-alive connections are kept this long when no idle/read timeout is configured
DEFAULT_KEEP_ALIVE = 3600.0
GRACE_SECONDS = 5.0


class OTLPHTTPApp:
    def __init__(self, receiver: OTLPReceiver, cfg: HTTPServerConfig) -> None:
        self.receiver = receiver
        self.include_metadata = cfg.include_metadata
        self.secured = "http" in receiver.authenticators
        self.request_params = cfg.auth.request_params if cfg.auth else []
        self.limit = cfg.body_limit()
        paths = cfg.url_paths()
        # a signal without a pipeline has no route: 404, as the Collector's mux answers
        self.routes = {paths[s]: s for s in receiver.consumers if s in paths}
        self.cors = CORS(cfg.cors) if cfg.cors and cfg.cors.allowed_origins else None
        encodings = {"identity" if a == "" else a for a in cfg.compression_algorithms}
        self.encodings = encodings & SUPPORTED_COMPRESSION
        self.extra_headers: Headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in cfg.response_headers.items()
        ]
        if not cfg.keep_alives_enabled:
            self.extra_headers.append((b"connection", b"close"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        content_type = encoding = length = origin = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-encoding":
                encoding = value
            elif name == b"content-length":
                length = value
            elif name == b"origin":
                origin = value
        headers = self.extra_headers
        if self.cors is not None and origin is not None:
            origin_text = origin.decode("latin-1")
            if method == "OPTIONS":
                request_method = _header(scope, b"access-control-request-method")
                if request_method is not None:
                    preflight = self.cors.preflight(
                        origin_text,
                        request_method.decode("latin-1"),
                        (_header(scope, b"access-control-request-headers") or b"").decode(
                            "latin-1"
                        ),
                    )
                    await _respond(send, 204, None, b"", headers + preflight)
                    return
            headers = headers + self.cors.actual(origin_text, method)

        signal = self.routes.get(scope["path"])
        principal = None
        if self.secured:
            # as confighttp: authentication wraps every route (after CORS preflights)
            try:
                principal = await self.receiver.authenticate(
                    "http", signal or "", self._auth_headers(scope)
                )
            except status.Failure as failure:
                media = (content_type or b"").partition(b";")[0].strip().lower()
                if failure.http_status == 401 or media not in (PROTOBUF, JSON):
                    body = UNAUTHORIZED if failure.http_status == 401 else b"Forbidden\n"
                    await _respond(send, failure.http_status, TEXT, body, headers)
                else:
                    await _fail(send, media, failure, headers)
                return
        if signal is None:
            await _respond(send, 404, TEXT, NOT_FOUND, headers)
            return
        if method != "POST":
            await _respond(send, 405, TEXT, NOT_ALLOWED, [*headers, (b"allow", b"POST")])
            return
        media = content_type.partition(b";")[0].strip().lower() if content_type else b""
        if media != PROTOBUF and media != JSON:
            await _respond(send, 415, TEXT, UNSUPPORTED_TYPE, headers)
            return
        await self._export(
            signal, media, encoding, length, scope, receive, send, headers, principal
        )

    def _auth_headers(self, scope: Scope) -> dict[str, list[str]]:
        found = lower_headers(scope["headers"])
        if self.request_params and scope.get("query_string"):
            from urllib.parse import parse_qs

            query = parse_qs(scope["query_string"].decode("latin-1"))
            for name in self.request_params:
                if name in query:
                    found.setdefault(name.lower(), []).extend(query[name])
        return found

    async def _export(
        self,
        signal: str,
        media: bytes,
        encoding: bytes | None,
        length: bytes | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers,
        principal: Principal | None = None,
    ) -> None:
        codec = encoding.strip().lower().decode("latin-1") if encoding else "identity"
        if codec not in self.encodings:
            failure = status.invalid(f"unsupported Content-Encoding: {codec}")
            await _fail(send, media, failure, headers)
            return
        limit = self.limit
        if length is not None and length.isdigit() and int(length) > limit:
            await _fail(send, media, _too_large(limit), [*headers, (b"connection", b"close")])
            return

        # the body as sent, refused as soon as it passes the limit
        body = b""
        chunks: list[bytes] | None = None
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > limit:
                await _fail(send, media, _too_large(limit), [*headers, (b"connection", b"close")])
                return
            if chunks is not None:
                chunks.append(chunk)
            elif more:
                chunks = [chunk]
            else:
                body = chunk
        if chunks is not None:
            body = b"".join(chunks)

        try:
            if codec != "identity":
                body = compression.decompress(codec, body, limit)
            batch = self.receiver.decode(signal, body, media == JSON, "http")
        except compression.TooLarge:
            await _fail(send, media, _too_large(limit), headers)
            return
        except (compression.CorruptBody, InvalidRequestError) as exc:
            await _fail(send, media, status.invalid(str(exc)), headers)
            return
        except Exception as exc:
            # a decoder bug on odd input: the same bytes will fail again, do not retry
            log.exception("decoding failed", extra={"receiver": self.receiver.id})
            await _fail(send, media, status.invalid(f"cannot decode request: {exc}"), headers)
            return

        if self.include_metadata:
            batch.context.update(_metadata(scope))
        try:
            partial = await self.receiver.export(signal, batch, "http", principal, len(body))
        except status.Failure as failure:
            await _fail(send, media, failure, headers)
            return
        if partial is None:
            await _respond(send, 200, media, EMPTY_RESPONSE[media], headers)
            return
        response = status.partial_success_response(signal, *partial)
        if media == PROTOBUF:
            payload = response.SerializeToString()
        else:
            payload = jsonpb.message_to_json(response)
        await _respond(send, 200, media, payload, headers)


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value  # type: ignore[no-any-return]
    return None


def _metadata(scope: Scope) -> dict[str, str]:
    """include_metadata: `client.address` and `metadata.<header>` (repeats joined by ",")."""
    out: dict[str, str] = {}
    client = scope.get("client")
    if client:
        out["client.address"] = str(client[0])
    for name, value in scope["headers"]:
        key = "metadata." + name.decode("latin-1")
        text = value.decode("latin-1")
        out[key] = f"{out[key]},{text}" if key in out else text
    return out


def _too_large(limit: int) -> status.Failure:
    return status.Failure(
        grpc.StatusCode.INVALID_ARGUMENT,
        413,
        f"request body exceeds max_request_body_size ({limit} bytes)",
    )


async def _fail(send: Send, media: bytes, failure: status.Failure, headers: Headers) -> None:
    if media == PROTOBUF:
        payload = status.status_protobuf(failure)
    else:
        payload = status.status_json(failure)
    retry_after = failure.retry_after_header()
    if retry_after is not None:
        headers = [*headers, (b"retry-after", retry_after)]
    await _respond(send, failure.http_status, media, payload, headers)


async def _respond(
    send: Send, code: int, content_type: bytes | None, body: bytes, headers: Headers
) -> None:
    out = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        out.append((b"content-type", content_type))
    out.extend(headers)
    await send({"type": "http.response.start", "status": code, "headers": out})
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the service owns SIGINT/SIGTERM."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def bind(cfg: HTTPServerConfig, reuse_port: bool, backlog: int) -> list[socket.socket]:
    """Listening sockets bound here (not by uvicorn, which exits the process on failure)."""
    if cfg.transport == "unix":
        targets: list[tuple[int, Any]] = [(socket.AF_UNIX, cfg.endpoint)]
    else:
        host, port = split_endpoint(cfg.endpoint)
        family = {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}.get(
            cfg.transport, socket.AF_UNSPEC
        )
        infos = socket.getaddrinfo(
            host or None, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
        targets = list(dict.fromkeys((info[0], info[4]) for info in infos))
    sockets: list[socket.socket] = []
    try:
        for family, address in targets:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                # "::" and "0.0.0.0" are bound separately, as asyncio does
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise OSError(f"otlp receiver: cannot listen for HTTP on {cfg.endpoint}: {exc}") from None
    return sockets


class HTTPServer:
    def __init__(self, receiver: OTLPReceiver, cfg: HTTPServerConfig) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.app = OTLPHTTPApp(receiver, cfg)
        self.port: int | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.cfg
        unsupported = set(cfg.compression_algorithms) - SUPPORTED_COMPRESSION
        # the default list names them too (the Collector's); only an explicit choice is worth a word
        if unsupported and "compression_algorithms" in cfg.model_fields_set:
            log.warning(
                "compression algorithms without a decoder are refused with 400",
                extra={"receiver": self.receiver.id, "algorithms": sorted(unsupported)},
            )
        ssl_context = None
        if cfg.tls is not None:
            from receivers.otlp.tls import ssl_context as make_ssl_context

            ssl_context = make_ssl_context(cfg.tls)
        config = uvicorn.Config(
            self.app,
            http=guarded_protocol(
                cfg.read_header_timeout, cfg.read_timeout, cfg.max_header_bytes, cfg.max_connections
            ),
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=cfg.idle_timeout or cfg.read_timeout or DEFAULT_KEEP_ALIVE,  # type: ignore[arg-type]
            timeout_graceful_shutdown=int(GRACE_SECONDS),
            ssl_context_factory=(lambda *_: ssl_context) if ssl_context else None,
        )
        config.load()
        sockets = bind(cfg, self.receiver.reuse_port, config.backlog)
        if sockets[0].family != socket.AF_UNIX:
            self.port = sockets[0].getsockname()[1]
        server = _Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets), name=f"{self.receiver.id}-http")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait((ready, self._task), return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            ready.cancel()
            for sock in sockets:
                sock.close()
            self._task.result()  # raises what stopped it
            raise OSError(f"otlp receiver: HTTP server on {cfg.endpoint} stopped while starting")
        log.info(
            "Starting HTTP server",
            extra={"receiver": self.receiver.id, "endpoint": cfg.endpoint, "port": self.port},
        )

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None
