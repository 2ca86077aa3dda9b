"""Self-observability HTTP servers: the Prometheus endpoint of `service.telemetry.metrics`
(the Collector's 127.0.0.1:8888/metrics) and the ASGI server helper the health_check
extension shares.

Both run inside the service's event loop as tasks, never in threads, and never take the
process's signal handlers (the service owns SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, Counter, generate_latest

from otlp.telemetry import Telemetry

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METRICS_PATH = "/metrics"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn as a guest in someone else's loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn 0.54 replaces SIGINT/SIGTERM handlers for the duration of serve() (there is
        # no config switch any more); the service's own handlers must stay in place.
        yield


def bind_tcp(host: str, port: int) -> socket.socket:
    """Bind now, so that "address in use" fails the caller's start() instead of a task later.

    An empty host listens on every interface, as Go does for ":13133".
    """
    if not host:
        if socket.has_dualstack_ipv6():
            sock = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            sock = socket.create_server(("", port))
    else:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
    sock.setblocking(False)
    return sock


class AsgiServer:
    """Serves one ASGI app with uvicorn on a socket bound at start()."""

    def __init__(self, app: ASGIApp, host: str, port: int, name: str) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = bind_tcp(self.host, self.port)
        # the port actually bound (differs from the configured one when that was 0)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            # explicit: uvicorn's guess misreads bound methods as ASGI2 apps
            interface="asgi3",
            lifespan="off",
            proxy_headers=False,
            # None: leave the service's logging configuration alone
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = _EmbeddedServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        while not server.started:
            if self._task.done():
                self._task.result()  # surfaces the startup error
                raise RuntimeError(f"{self.name}: server stopped during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._server = None
            self._task = None


# --- process metrics -------------------------------------------------------------------------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        # no procfs: the peak RSS is the best available figure (KiB on Linux)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _advance_counter(counter: Any, sample_name: str, registry: Any, value: float) -> None:
    """Bring a monotonic metric up to `value`: a Counter only moves by increments."""
    if isinstance(counter, Counter):
        current = registry.get_sample_value(sample_name) or 0.0
        if value > current:
            counter.inc(value - current)
    else:
        counter.set(value)


def refresh_process_metrics(telemetry: Telemetry) -> None:
    """Update otelcol_process_memory_rss, _cpu_seconds and _uptime; called at scrape time
    (the Collector reads them in an asynchronous callback at collection, too)."""
    telemetry.process_rss.set(_rss_bytes())
    registry = telemetry.registry
    _advance_counter(
        telemetry.process_cpu, "otelcol_process_cpu_seconds_total", registry, _cpu_seconds()
    )
    _advance_counter(
        telemetry.process_uptime,
        "otelcol_process_uptime_total",
        registry,
        time.monotonic() - telemetry.started,
    )


# --- the /metrics endpoint -------------------------------------------------------------------


_COUNTER_TOTAL = re.compile(rb"^(# (?:HELP|TYPE) )?([a-zA-Z_:][a-zA-Z0-9_:]*)_total\b", re.M)


def render_text(registry: CollectorRegistry) -> bytes:
    """Prometheus text format with the Collector's names: the Collector (OTel Go's Prometheus
    exporter) exposes counters without the `_total` suffix that prometheus_client adds, so
    dashboards built on `otelcol_receiver_accepted_spans` work unchanged."""
    counters = {m.name.encode() for m in registry.collect() if m.type == "counter"}

    def strip(match: re.Match[bytes]) -> bytes:
        if match.group(2) in counters:
            return (match.group(1) or b"") + match.group(2)
        return match.group(0)

    return _COUNTER_TOTAL.sub(strip, generate_latest(registry))


def metrics_app(telemetry: Telemetry) -> ASGIApp:
    """GET /metrics in the Prometheus text format; other paths are 404 as in the Collector."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != METRICS_PATH:
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"404 page not found\n"})
            return
        refresh_process_metrics(telemetry)
        body = render_text(telemetry.registry)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


class MetricsServer:
    """The running self-metrics endpoint. `port` is the bound port (useful with port 0)."""

    def __init__(self, server: AsgiServer) -> None:
        self._server = server

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    async def stop(self) -> None:
        await self._server.stop()


async def serve_metrics(telemetry: Telemetry, host: str, port: int) -> MetricsServer:
    """Start serving `telemetry.registry` at http://host:port/metrics in the running loop.

    Raises OSError when the address cannot be bound."""
    server = AsgiServer(metrics_app(telemetry), host, port, name="telemetry-metrics")
    await server.start()
    return MetricsServer(server)
