"""Where the backends are: a static list, or every address a DNS name resolves to (a
Kubernetes headless Service), re-resolved every `interval`."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable

from exporters.loadbalancing.config import DNSResolver, StaticResolver

log = logging.getLogger("airis.exporter.loadbalancing")

DEFAULT_PORT = "4317"
OnChange = Callable[[list[str]], None]


def with_port(hostname: str, port: str = DEFAULT_PORT) -> str:
    """`host` → `host:4317`; `host:port`, `[v6]:port` kept; a bare IPv6 gets brackets."""
    text = hostname.strip()
    if text.startswith("["):
        return text if "]:" in text else f"{text}:{port}"
    try:
        if ipaddress.ip_address(text).version == 6:
            return f"[{text}]:{port}"
    except ValueError:
        pass
    return text if ":" in text else f"{text}:{port}"


class Static:
    def __init__(self, config: StaticResolver) -> None:
        self.endpoints = sorted({with_port(h) for h in config.hostnames})

    async def start(self, on_change: OnChange) -> None:
        on_change(self.endpoints)

    async def shutdown(self) -> None:
        pass


class DNS:
    """Resolves `hostname` now (start fails only if it never answers: an empty answer is
    fine, the backends may not be up yet) and then every `interval`; a lookup that fails
    or times out keeps the last answer, as the Collector does."""

    def __init__(self, config: DNSResolver) -> None:
        self.config = config
        self.endpoints: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._on_change: OnChange | None = None

    async def resolve(self) -> list[str] | None:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(self.config.hostname, None, type=socket.SOCK_STREAM),
                timeout=self.config.timeout,
            )
        except (OSError, TimeoutError) as err:
            log.warning(
                "DNS resolution failed; keeping the previous backends",
                extra={"hostname": self.config.hostname, "error": repr(err)},
            )
            return None
        return sorted({with_port(str(info[4][0]), self.config.port) for info in infos})

    async def refresh(self) -> None:
        found = await self.resolve()
        if found is not None and found != self.endpoints:
            self.endpoints = found
            if self._on_change is not None:
                self._on_change(found)

    async def start(self, on_change: OnChange) -> None:
        self._on_change = on_change
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="loadbalancing-dns")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.refresh()
            except Exception:  # a resolver bug must not stop re-resolution for good
                log.exception("DNS refresh failed")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
