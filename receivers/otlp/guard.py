"""uvicorn's httptools protocol with guards against slow and greedy clients.

uvicorn only times out idle keep-alive connections. A client that connects and sends
nothing, trickles its headers, or stops half way through a body would hold a connection (and
an ASGI task) for ever. This protocol adds, per connection:

* read_header_timeout: from the connection (or a request's first byte) to the end of the
  request's headers;
* read_timeout: from the end of the headers to the end of the body;
* max_header_bytes: request line and headers larger than this get 431 and the connection is
  closed (llhttp itself has no limit);
* max_connections: connections beyond this many are closed as soon as they are accepted.

A timeout closes the connection; an ASGI app waiting for the body sees `http.disconnect`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# used when the config says 0: generous for real clients, finite for hostile ones
DEFAULT_READ_HEADER_TIMEOUT = 60.0
DEFAULT_READ_TIMEOUT = 120.0

_TOO_LARGE_BODY = b"431 request header fields too large\n"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TOO_LARGE_BODY
)


def guarded_protocol(
    read_header_timeout: float,
    read_timeout: float,
    max_header_bytes: int,
    max_connections: int,
) -> type[HttpToolsProtocol]:
    """A protocol class with these settings bound (uvicorn instantiates it per connection)."""
    header_timeout = read_header_timeout or DEFAULT_READ_HEADER_TIMEOUT
    body_timeout = read_timeout or DEFAULT_READ_TIMEOUT

    class GuardedProtocol(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _in_headers = True
        _header_bytes = 0

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if max_connections and len(self.connections) > max_connections:
                transport.abort()
                return
            self._arm(header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_headers:
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes:
                    self._disarm()
                    self.transport.write(_TOO_LARGE)
                    self.transport.close()
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers = True
            if self._timer is None:
                self._arm(header_timeout)

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._header_bytes = 0
            self._arm(body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            # uvicorn's keep-alive timer takes over until the next request begins; bytes
            # before that (the rest of a body answered early) are not headers
            self._disarm()
            self._in_headers = False
            self._header_bytes = 0
            super().on_response_complete()

    return GuardedProtocol
