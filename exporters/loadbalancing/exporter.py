"""`loadbalancing` exporter: splits each batch by routing key over a consistent-hash ring of
backends and sends each part through that backend's own `otlp` exporter.

Delivery: the runtime's queue and retries sit in front of this exporter (top-level
sending_queue / retry_on_failure / timeout). Behind it, each backend has its own queue (a
"lane": `protocol.otlp.sending_queue` / `retry_on_failure`, as the Collector gives each
backend its own otlp exporter), so a slow backend fills only its own lane and the others keep
flowing. A lane whose backend was removed (DNS) or ejected (backend_health) routes what it
holds again on the current ring instead of sending it, so that share reaches the others.
When a lane cannot take its part (full), only the parts not yet handed over are kept (per
batch) and a retryable error is raised; the retry routes them again, so nothing is handed
over twice. With `protocol.otlp.sending_queue.enabled: false` there are no lanes: each
export waits for every backend's answer and the same keep-what-failed rule applies.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from exporters.loadbalancing.config import (
    ALLOWED_ROUTING,
    DEFAULT_ROUTING,
    BackendOTLPConfig,
    LoadBalancingConfig,
)
from exporters.loadbalancing.resolver import DNS, Static
from exporters.loadbalancing.ring import HashRing
from exporters.loadbalancing.routing import Router
from exporters.otlp.errors import UnavailableError
from exporters.otlp.exporter import OTLPGrpcExporter
from otlp.batch import Batch
from otlp.batch_ops import concat
from otlp.component import Exporter, Host
from otlp.errors import ConfigError, PermanentError, RetryableError
from otlp.exporterhelper import QueuedExporter
from otlp.telemetry import Telemetry

log = logging.getLogger("airis.exporter.loadbalancing")

# a batch's undelivered remainder is forgotten after this long without a retry (the
# runtime gave up on it): bounds the memory a stream of failures can hold
_PENDING_TTL = 3600.0


@dataclass(slots=True)
class _Pending:
    batch: Batch  # held so that id(batch) cannot be reused while the entry lives
    remaining: Batch
    touched: float


@dataclass(slots=True)
class _Health:
    failures: int = 0
    down_until: float = 0.0
    cooldown: float = 0.0


class _Metrics:
    def __init__(self, telemetry: Telemetry) -> None:
        r = telemetry.registry
        self.backends = Gauge(
            "otelcol_loadbalancer_num_backends",
            "Current number of backends in use",
            ("exporter",),
            registry=r,
        )
        self.outcome = Counter(
            "otelcol_loadbalancer_backend_outcome",
            "Number of sends to each backend, by outcome",
            ("exporter", "endpoint", "success"),
            registry=r,
        )
        self.resolved = Counter(
            "otelcol_loadbalancer_num_resolutions",
            "Number of times the resolver changed the backends",
            ("exporter",),
            registry=r,
        )


_METRICS: weakref.WeakKeyDictionary[Telemetry, _Metrics] = weakref.WeakKeyDictionary()


def _metrics(telemetry: Telemetry) -> _Metrics:
    found = _METRICS.get(telemetry)
    if found is None:
        found = _METRICS[telemetry] = _Metrics(telemetry)
    return found


class LoadBalancingExporter(Exporter):
    def __init__(
        self,
        exporter_id: str,
        config: LoadBalancingConfig,
        telemetry: Telemetry,
        signals: set[str] | None = None,
    ) -> None:
        self.id = exporter_id
        self.config = config
        self.telemetry = telemetry
        self.routers: dict[str, Router] = {}
        for signal in ("traces", "metrics", "logs"):
            key = config.routing_key or DEFAULT_ROUTING[signal]
            if signals and signal in signals and key not in ALLOWED_ROUTING[signal]:
                raise ConfigError(
                    f"exporters::{exporter_id}: routing_key: {key!r} cannot route {signal} "
                    f"(use one of {sorted(ALLOWED_ROUTING[signal])})"
                )
            self.routers[signal] = Router(key, config.routing_attributes)
        resolver = config.resolver
        self.resolver: Static | DNS = (
            Static(resolver.static) if resolver.static is not None else DNS(resolver.dns)  # type: ignore[arg-type]
        )
        self.backends: dict[str, OTLPGrpcExporter] = {}
        self.ring = HashRing([])
        self._healthy_ring = self.ring
        self._health: dict[str, _Health] = {}
        self._pending: dict[int, _Pending] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._changes: list[asyncio.Task[None]] = []
        self._metrics = _metrics(telemetry)
        self._host: Host | None = None
        self._lanes: dict[tuple[str, str], QueuedExporter] = {}
        self._lane_starts: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._signals = signals or {"traces", "metrics", "logs"}
        self._retiring: dict[tuple[str, str], QueuedExporter] = {}
        self._lane_config = self._lane_settings(config)
        self._reaper: asyncio.Task[None] | None = None

    # --- backends ----------------------------------------------------------------------------
    @staticmethod
    def _lane_settings(config: LoadBalancingConfig) -> BackendOTLPConfig | None:
        """The per-backend queue settings, or None for no lanes. A lane takes over data the
        top-level queue has let go of, so when that queue is on disk and the lane's is not,
        the lane uses the same storage: acknowledged data stays on disk until delivered."""
        lane = config.protocol.otlp
        if not lane.sending_queue.enabled:
            return None
        if config.sending_queue.storage and not lane.sending_queue.storage:
            queue = lane.sending_queue.model_copy(update={"storage": config.sending_queue.storage})
            lane = lane.model_copy(update={"sending_queue": queue})
        return lane

    async def start(self, host: Host | None = None) -> None:
        self._host = host
        await self.resolver.start(self._on_change)
        if self._lane_config is not None:
            await self._adopt_orphaned_lanes()
            self._reaper = asyncio.create_task(self._reap_retired_lanes())

    async def _adopt_orphaned_lanes(self) -> None:
        """On-disk lanes a previous run left for backends that are not resolved now (in
        Kubernetes a restarted gateway pod has a new address) are opened as retiring lanes:
        what they hold is routed on the current ring."""
        name = self._lane_config.sending_queue.storage if self._lane_config else None
        storage = self._host.extension(name) if name and self._host is not None else None
        if storage is None or not hasattr(storage, "client_names"):
            return
        for client in storage.client_names("exporter", f"{self.id}/"):
            endpoint, _, signal = client.rpartition("_")
            # endpoints always carry a port and never a "/" (another exporter's name would)
            if ":" not in endpoint or "/" in endpoint or signal not in self._signals:
                continue
            if endpoint in self.backends or (endpoint, signal) in self._retiring:
                continue
            lane = self._new_lane(endpoint, signal)
            await lane.start(self._host)
            self._retiring[(endpoint, signal)] = lane
            log.info(
                "Re-routing a queue a previous run left for a backend that is gone",
                extra={"exporter": self.id, "endpoint": endpoint, "data_type": signal},
            )

    def _on_change(self, endpoints: list[str]) -> None:
        added = [e for e in endpoints if e not in self.backends]
        removed = [e for e in self.backends if e not in endpoints]
        for endpoint in added:
            sub = self.config.protocol.otlp.model_copy(update={"endpoint": endpoint})
            exporter = OTLPGrpcExporter(f"{self.id}/{endpoint}", sub, self.telemetry)
            self.backends[endpoint] = exporter
            self._limits[endpoint] = asyncio.Semaphore(sub.sending_queue.num_consumers)
            # grpc.aio channels connect lazily: starting one only creates it
            self._changes.append(asyncio.ensure_future(exporter.start(self._host)))
            lanes = self._lane_config
            if lanes is not None and lanes.sending_queue.storage:
                # open on-disk lanes now: what a previous run left in them is sent at once
                for signal in self._signals:
                    self._changes.append(asyncio.ensure_future(self._open_lane(endpoint, signal)))
        for endpoint in removed:
            exporter = self.backends.pop(endpoint)
            self._limits.pop(endpoint, None)
            self._health.pop(endpoint, None)
            self._changes.append(asyncio.ensure_future(exporter.shutdown()))
            # its lanes stay until empty: what they hold is routed to the others
            for key in [k for k in self._lanes if k[0] == endpoint]:
                self._retiring[key] = self._lanes.pop(key)
        self.ring = HashRing(self.backends)
        self._rebuild_healthy()
        self._metrics.backends.labels(self.id).set(len(self.backends))
        self._metrics.resolved.labels(self.id).inc()
        log.info(
            "Load balancer backends changed",
            extra={"exporter": self.id, "added": added, "removed": removed},
        )

    def _rebuild_healthy(self) -> None:
        now = time.monotonic()
        healthy = [
            e for e in self.ring.endpoints if self._health.get(e, _Health()).down_until <= now
        ]
        # with every backend down, keep routing by the full ring: the keys stay put and the
        # retries wait for their own backend
        if len(healthy) == len(self.ring.endpoints) or not healthy:
            self._healthy_ring = self.ring
        else:
            self._healthy_ring = HashRing(healthy)

    def _current_ring(self) -> HashRing:
        now = time.monotonic()
        ring = self._healthy_ring
        if ring is not self.ring and any(
            self._health[e].down_until <= now
            for e in self.ring.endpoints
            if e in self._health and e not in ring.endpoints
        ):
            self._rebuild_healthy()  # a cooldown ended: let that backend back in
        return self._healthy_ring

    def _record(self, endpoint: str, ok: bool, unreachable: bool) -> None:
        self._metrics.outcome.labels(self.id, endpoint, str(ok).lower()).inc()
        settings = self.config.backend_health
        if not settings.enabled:
            return
        health = self._health.setdefault(endpoint, _Health())
        if ok:
            if health.failures or health.cooldown:
                self._health[endpoint] = _Health()
            return
        if not unreachable:
            return
        health.failures += 1
        if health.failures >= settings.failure_threshold:
            health.cooldown = min(
                settings.max_cooldown, health.cooldown * 2 if health.cooldown else settings.cooldown
            )
            health.down_until = time.monotonic() + health.cooldown
            health.failures = 0
            log.warning(
                "Backend keeps failing; routing its share to the others for a while",
                extra={"exporter": self.id, "endpoint": endpoint, "cooldown": health.cooldown},
            )
            self._rebuild_healthy()

    async def shutdown(self) -> None:
        await self.resolver.shutdown()
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(*self._changes, return_exceptions=True)
        await asyncio.gather(*self._lane_starts.values(), return_exceptions=True)
        # lanes drain first (memory: delivered with retries; disk: kept for the next start),
        # retiring ones last so that their data can still move to a live lane's backend
        await asyncio.gather(*(lane.shutdown() for lane in self._lanes.values()))
        await asyncio.gather(*(lane.shutdown() for lane in self._retiring.values()))
        self._lanes.clear()
        self._retiring.clear()
        await asyncio.gather(*(b.shutdown() for b in self.backends.values()))
        self.backends.clear()

    # --- lanes (per-backend queues) ----------------------------------------------------------
    async def _lane(self, endpoint: str, signal: str) -> QueuedExporter:
        key = (endpoint, signal)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._retiring.pop(key, None)  # the backend came back before it drained
            if lane is None:
                lane = self._new_lane(endpoint, signal)
                self._lane_starts[key] = asyncio.ensure_future(lane.start(self._host))
            self._lanes[key] = lane
        starting = self._lane_starts.get(key)
        if starting is not None:
            await asyncio.shield(starting)  # callers racing for a new lane wait for one start
            self._lane_starts.pop(key, None)
        return lane

    def _new_lane(self, endpoint: str, signal: str) -> QueuedExporter:
        assert self._lane_config is not None
        return QueuedExporter(
            f"{self.id}/{endpoint}",
            signal,
            _LaneExporter(self, endpoint),
            self._lane_config,
            self.telemetry,
        )

    async def _open_lane(self, endpoint: str, signal: str) -> None:
        await self._lane(endpoint, signal)

    async def _reap_retired_lanes(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for key, lane in list(self._retiring.items()):
                if lane.idle and self._retiring.get(key) is lane:
                    del self._retiring[key]
                    await lane.shutdown()

    def routable(self, endpoint: str) -> bool:
        """Still on the ring traffic is routed by (not removed, not ejected)."""
        return endpoint in self.backends and endpoint in self._current_ring().endpoints

    async def reroute(self, endpoint: str, part: Batch) -> None:
        """A lane whose backend left the ring hands its part to the lanes of the current ring;
        what would go back to the same backend (every backend down) is sent there directly."""
        ring = self._current_ring()
        if not len(ring):
            raise RetryableError(f"{self.id}: no backends to re-route to", retry_after=1.0)
        for target, piece in self.routers[part.signal].split(part, ring).items():
            if target == endpoint:
                await self._send(endpoint, piece)
            else:
                await (await self._lane(target, part.signal)).consume(piece)

    # --- data --------------------------------------------------------------------------------
    async def _send(self, endpoint: str, part: Batch) -> None:
        exporter = self.backends.get(endpoint)
        limit = self._limits.get(endpoint)
        if exporter is None or limit is None:
            raise RetryableError(f"backend {endpoint} was removed", retry_after=0.0)
        async with limit:
            try:
                await exporter.export(part)
            except UnavailableError:
                self._record(endpoint, False, True)
                raise
            except RetryableError:
                # slow or overloaded, not gone: its keys stay (moving them would break
                # trace affinity and push the load onto the others)
                self._record(endpoint, False, False)
                raise
            except PermanentError:
                self._record(endpoint, False, False)
                raise
        self._record(endpoint, True, False)

    def _forget_stale(self, now: float) -> None:
        if len(self._pending) < 64:
            return
        for key in [k for k, p in self._pending.items() if now - p.touched > _PENDING_TTL]:
            del self._pending[key]

    async def export(self, batch: Batch) -> None:
        now = time.monotonic()
        self._forget_stale(now)
        pending = self._pending.get(id(batch))
        remaining = pending.remaining if pending is not None and pending.batch is batch else batch
        if self._changes:
            await asyncio.gather(*self._changes, return_exceptions=True)
            self._changes.clear()
        ring = self._current_ring()
        if not len(ring):
            self._pending[id(batch)] = _Pending(batch, remaining, now)
            raise RetryableError(f"{self.id}: no backends resolved yet", retry_after=1.0)
        parts = self.routers[batch.signal].split(remaining, ring)
        endpoints = list(parts)
        outcomes: list[BaseException | None] = [None] * len(endpoints)
        done = [False] * len(endpoints)

        async def one(i: int) -> None:
            endpoint, part = endpoints[i], parts[endpoints[i]]
            try:
                if self._lane_config is None:
                    await self._send(endpoint, part)
                else:
                    await (await self._lane(endpoint, batch.signal)).consume(part)
                done[i] = True
            except Exception as exc:
                outcomes[i] = exc

        try:
            await asyncio.gather(*(one(i) for i in range(len(endpoints))))
        finally:
            # also on cancellation (the runtime's timeout): remember what is left to send
            retry = [
                parts[e]
                for i, e in enumerate(endpoints)
                if not done[i] and not isinstance(outcomes[i], PermanentError)
            ]
            if retry:
                self._pending[id(batch)] = _Pending(batch, concat(retry), time.monotonic())
            else:
                self._pending.pop(id(batch), None)
        permanent = [o for o in outcomes if isinstance(o, PermanentError)]
        for error in permanent:
            log.error(
                "A backend rejected data permanently; dropping that part",
                extra={"exporter": self.id, "error": str(error)},
            )
        failed = [o for o in outcomes if o is not None and not isinstance(o, PermanentError)]
        if failed:
            delays = [getattr(o, "retry_after", None) for o in failed]
            known = [d for d in delays if d is not None]
            raise RetryableError(
                f"{len(failed)} of {len(endpoints)} backends failed: {failed[0]}",
                retry_after=min(known) if known else None,
            )
        if permanent and len(permanent) == len(endpoints):
            raise PermanentError(str(permanent[0]))


class _LaneExporter(Exporter):
    """What a backend's lane sends through: the backend while it is on the ring, the ring
    itself (re-routing) once it has left."""

    def __init__(self, balancer: LoadBalancingExporter, endpoint: str) -> None:
        self.balancer = balancer
        self.endpoint = endpoint

    async def export(self, batch: Batch) -> None:
        if self.balancer.routable(self.endpoint):
            await self.balancer._send(self.endpoint, batch)
        else:
            await self.balancer.reroute(self.endpoint, batch)
