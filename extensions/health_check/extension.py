"""The health_check extension: an HTTP probe that answers 200 once every pipeline is up.

The runtime tells it the service state through `set_status(ready)`: True after every
pipeline has started (the Collector's PipelineWatcher.Ready), False when shutdown begins
(NotReady). Until the first `set_status(True)` it answers 503.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson

from extensions.health_check.config import HealthCheckConfig
from otlp.component import Component, Host
from otlp.telemetry_server import AsgiServer, Receive, Scope, Send

log = logging.getLogger("airis.extension.health_check")

_NOT_FOUND = b"404 page not found\n"


def rfc3339nano(unix_ns: int) -> str:
    """Go's time.Time JSON form in UTC: fraction to the nanosecond, trailing zeros dropped."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 1h2m3.5s, 1.5ms, 0s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)

    def decimal(value: int, unit: int, digits: int) -> str:
        whole, frac = divmod(value, unit)
        return str(whole) + ("." + f"{frac:0{digits}d}".rstrip("0") if frac else "")

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{decimal(ns, 1_000, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{decimal(ns, 1_000_000, 6)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = decimal(rest, 1_000_000_000, 9) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


class HealthCheckExtension(Component):
    def __init__(self, component_id: str, config: HealthCheckConfig) -> None:
        self.id = component_id
        self.config = config
        self.ready = False
        # as in the Collector, upSince is when the extension was created
        self._created_ns = time.time_ns()
        self._created_monotonic = time.monotonic_ns()
        host, port = config.host_port
        self._server = AsgiServer(self._app, host, port, name=f"extension/{component_id}")

    @property
    def port(self) -> int:
        """The bound port once started (the configured one, unless that was 0)."""
        return self._server.port

    def set_status(self, ready: bool) -> None:
        """True when every pipeline is up, False when the service stops (or a pipeline fails)."""
        if ready != self.ready:
            log.info(
                "Health Check state change",
                extra={"extension": self.id, "status": "ready" if ready else "unavailable"},
            )
        self.ready = ready

    async def start(self, host: Host) -> None:
        if self.config.check_collector_pipeline.enabled:
            log.warning(
                "check_collector_pipeline is deprecated and ignored, as in the Collector",
                extra={"extension": self.id},
            )
        await self._server.start()
        log.info(
            "Starting health_check extension",
            extra={"extension": self.id, "endpoint": f"{self._server.host}:{self.port}"},
        )

    async def shutdown(self) -> None:
        self.ready = False
        await self._server.stop()

    def _matches(self, path: str) -> bool:
        # Go's ServeMux: a pattern ending in "/" matches its whole subtree, others exactly
        pattern = self.config.path
        return path.startswith(pattern) if pattern.endswith("/") else path == pattern

    def _answer(self) -> tuple[int, bytes, bytes]:
        status = 200 if self.ready else 503
        custom = self.config.response_body
        if custom is not None:
            body = custom.healthy if self.ready else custom.unhealthy
            return status, b"text/plain; charset=utf-8", body.encode()
        if self.ready:
            uptime = go_duration(time.monotonic_ns() - self._created_monotonic)
            doc = {
                "status": "Server available",
                "upSince": rfc3339nano(self._created_ns),
                "uptime": uptime,
            }
        else:
            # Go marshals the unset fields as their zero values
            doc = {
                "status": "Server not available",
                "upSince": "0001-01-01T00:00:00Z",
                "uptime": "",
            }
        return status, b"application/json", orjson.dumps(doc)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._matches(scope["path"]):
            status, content_type, body = self._answer()
        else:
            status, content_type, body = 404, b"text/plain; charset=utf-8", _NOT_FOUND
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": body})
