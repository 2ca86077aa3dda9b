"""The `loadbalancing` exporter: the consistent-hash ring, routing keys, resolvers, re-routing
of a failed backend's share (against stand-in gRPC backends: minimal grpc.aio servers that
record what they receive, because the checks need to see every request), and the end-to-end
run over three real AIRIS gateway processes with one killed mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks.loadgen import LoadConfig, run
from benchmarks.payloads import make_templates
from exporters.loadbalancing import LoadBalancingConfig, LoadBalancingExporter
from exporters.loadbalancing.resolver import DNS, with_port
from exporters.loadbalancing.ring import HashRing, key_hash
from exporters.loadbalancing.routing import Router
from otlp import batch_ops, decode, registry
from otlp.batch import POINT_TABLES, Batch
from otlp.errors import RetryableError
from otlp.telemetry import Telemetry
from tests.harness import Collector, base_config, ports, query_store

# ---- ring ----------------------------------------------------------

KEYS = [os.urandom(16) for _ in range(20000)]


def _owners(ring: HashRing) -> list[str]:
    hashes = np.array([key_hash(k) for k in KEYS], dtype=np.uint64)
    return [ring.endpoints[i] for i in ring.locate(hashes)]


def test_ring_spreads_keys_evenly() -> None:
    ring = HashRing([f"10.0.0.{i}:4317" for i in range(4)])
    counts = Counter(_owners(ring))
    assert len(counts) == 4
    assert all(0.15 < n / len(KEYS) < 0.35 for n in counts.values()), counts


def test_adding_a_backend_moves_only_its_share() -> None:
    three = [f"10.0.0.{i}:4317" for i in range(3)]
    before = _owners(HashRing(three))
    after = _owners(HashRing([*three, "10.0.0.9:4317"]))
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    # every moved key went to the new backend, and about a quarter of the keys moved
    assert all(b == "10.0.0.9:4317" for _, b in moved)
    assert 0.15 < len(moved) / len(KEYS) < 0.35


def test_removing_a_backend_moves_only_its_keys() -> None:
    four = [f"10.0.0.{i}:4317" for i in range(4)]
    before = _owners(HashRing(four))
    after = _owners(HashRing(four[1:]))
    for a, b in zip(before, after, strict=True):
        if a != four[0]:
            assert a == b  # keys of the remaining backends stay put
    assert "10.0.0.0:4317" not in after


def test_ring_is_independent_of_order() -> None:
    a = HashRing(["b:1", "a:1", "c:1"])
    b = HashRing(["c:1", "b:1", "a:1"])
    assert _owners(a) == _owners(b)


# ---- routing ----------------------------------------------------------


def _traces(requests: int = 4, batch: int = 200) -> Batch:
    template = make_templates("traces", batch, distinct=1)[0]
    return batch_ops.concat(
        [decode.decode_protobuf("traces", template.render(i + 1)) for i in range(requests)]
    )


def test_trace_id_routing_keeps_each_trace_whole() -> None:
    batch = _traces()
    ring = HashRing(["a:1", "b:1", "c:1"])
    parts = Router("traceID").split(batch, ring)
    assert len(parts) == 3
    seen: dict[bytes, str] = {}
    total = 0
    for endpoint, part in parts.items():
        total += part.item_count()
        for trace_id in part.tables["spans"].column("trace_id").to_pylist():
            assert seen.setdefault(trace_id, endpoint) == endpoint
            assert ring.endpoint_for(trace_id) == endpoint
    assert total == batch.item_count()


def test_service_routing_keeps_each_service_whole() -> None:
    batch = _traces()
    parts = Router("service").split(batch, HashRing(["a:1", "b:1", "c:1", "d:1"]))
    owner: dict[str, str] = {}
    for endpoint, part in parts.items():
        for name in part.resources.column("service_name").to_pylist():
            assert owner.setdefault(name, endpoint) == endpoint
    assert sum(p.item_count() for p in parts.values()) == batch.item_count()


@pytest.mark.parametrize("key", ["service", "resource", "metric", "streamID"])
def test_metric_routing_keeps_every_point(key: str) -> None:
    template = make_templates("metrics", 300, distinct=1)[0]
    batch = decode.decode_protobuf("metrics", template.render(5))
    parts = Router(key).split(batch, HashRing(["a:1", "b:1", "c:1"]))
    assert sum(p.item_count() for p in parts.values()) == batch.item_count()
    if key == "metric":
        owner: dict[str, str] = {}
        for endpoint, part in parts.items():
            for table in POINT_TABLES:
                metrics = part.tables["metrics"].column("name").to_pylist()
                for i in part.tables[table].column("metric_index").to_pylist():
                    assert owner.setdefault(metrics[i], endpoint) == endpoint


def test_logs_without_trace_id_still_route() -> None:
    template = make_templates("logs", 200, distinct=1)[0]
    batch = decode.decode_protobuf("logs", template.render(3))
    parts = Router("traceID").split(batch, HashRing(["a:1", "b:1"]))
    assert sum(p.item_count() for p in parts.values()) == batch.item_count()


def test_attribute_routing() -> None:
    batch = _traces(1)
    parts = Router("attributes", ["service.name"]).split(batch, HashRing(["a:1", "b:1", "c:1"]))
    assert sum(p.item_count() for p in parts.values()) == batch.item_count()


# ---- config and resolvers ----------------------------------------------------------


def test_config_keys() -> None:
    assert registry.lookup("exporter", "loadbalancing") is not None
    assert registry.lookup("exporter", "load_balancing") is not None
    cfg = LoadBalancingConfig.model_validate(
        {
            "routing_key": "traceID",
            "protocol": {"otlp": {"timeout": "1s", "tls": {"insecure": True}}},
            "resolver": {
                "dns": {
                    "hostname": "gw-headless",
                    "port": "4317",
                    "interval": "5s",
                    "timeout": "1s",
                }
            },
        }
    )
    assert cfg.resolver.dns is not None and cfg.resolver.dns.interval == 5.0
    assert cfg.protocol.otlp.timeout == 1.0 and cfg.protocol.otlp.endpoint == ""
    with pytest.raises(ValidationError, match="exactly one resolver"):
        LoadBalancingConfig.model_validate(
            {"resolver": {"static": {"hostnames": ["a"]}, "dns": {"hostname": "b"}}}
        )
    with pytest.raises(ValidationError, match="k8s"):
        LoadBalancingConfig.model_validate({"resolver": {"k8s": {"service": "gw"}}})
    with pytest.raises(ValidationError, match="routing_key"):
        LoadBalancingConfig.model_validate(
            {"routing_key": "spanID", "resolver": {"static": {"hostnames": ["a"]}}}
        )


def test_with_port() -> None:
    assert with_port("gw") == "gw:4317"
    assert with_port("gw:1234") == "gw:1234"
    assert with_port("::1", "55") == "[::1]:55"
    assert with_port("10.0.0.1", "55") == "10.0.0.1:55"


async def test_dns_resolver_resolves_and_keeps_last_answer_on_failure() -> None:
    cfg = LoadBalancingConfig.model_validate(
        {"resolver": {"dns": {"hostname": "localhost", "port": "5555", "interval": "1h"}}}
    )
    assert cfg.resolver.dns is not None
    resolver = DNS(cfg.resolver.dns)
    changes: list[list[str]] = []
    await resolver.start(changes.append)
    try:
        assert changes and "127.0.0.1:5555" in changes[0]
        resolver.config = resolver.config.model_copy(update={"hostname": "no-such-host.invalid"})
        await resolver.refresh()  # fails: the previous backends stay
        assert resolver.endpoints == changes[0] and len(changes) == 1
    finally:
        await resolver.shutdown()


# ---- re-routing against stand-in backends -------------------------------------------------------

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


@dataclass
class Backend:
    server: grpc.aio.Server
    port: int
    spans: list[bytes] = field(default_factory=list)  # trace_id + span_id per received span
    hold: asyncio.Event | None = None  # set: requests wait for it before they are answered
    held: int = 0  # spans of requests waiting for `hold`

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


async def _backend(hold: asyncio.Event | None = None, port: int = 0) -> Backend:
    backend: Backend

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        spans = decode.decode_protobuf("traces", request).tables["spans"]
        if backend.hold is not None and not backend.hold.is_set():
            backend.held += spans.num_rows
            await backend.hold.wait()
            backend.held -= spans.num_rows
        backend.spans.extend(
            t + s
            for t, s in zip(
                spans.column("trace_id").to_pylist(),
                spans.column("span_id").to_pylist(),
                strict=True,
            )
        )
        return b""

    handler = grpc.method_handlers_generic_handler(
        TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    backend = Backend(server, port, hold=hold)
    return backend


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    started = [await _backend() for _ in range(3)]
    yield started
    for backend in started:
        await backend.server.stop(None)


# per-backend queues ("lanes") retry quickly here so that the tests need no long waits
FAST_LANES = {
    "tls": {"insecure": True},
    "timeout": "2s",
    "retry_on_failure": {"initial_interval": "10ms", "max_interval": "50ms"},
}


def _lb(hostnames: list[str], lanes: bool = False, **extra: Any) -> LoadBalancingExporter:
    otlp = {**FAST_LANES, "sending_queue": {"enabled": lanes}}
    cfg = LoadBalancingConfig.model_validate(
        {
            "protocol": {"otlp": otlp},
            "resolver": {"static": {"hostnames": hostnames}},
            "backend_health": {"failure_threshold": 1, "cooldown": "1h"},
            **extra,
        }
    )
    return LoadBalancingExporter("loadbalancing", cfg, Telemetry(), {"traces"})


async def _lanes_drained(lb: LoadBalancingExporter) -> None:
    for _ in range(1000):
        if all(lane.idle for lane in [*lb._lanes.values(), *lb._retiring.values()]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the per-backend queues did not drain")


async def test_dead_backend_share_is_rerouted_without_duplicates(backends: list[Backend]) -> None:
    lb = _lb([b.endpoint for b in backends])
    await lb.start()
    try:
        batch = _traces(6)
        dead = backends[1]
        await dead.server.stop(None)
        with pytest.raises(RetryableError):
            await lb.export(batch)  # the dead backend's part fails, the rest is delivered
        delivered_first = sum(len(b.spans) for b in backends)
        assert 0 < delivered_first < batch.item_count()
        await lb.export(batch)  # the runtime's retry: only the failed part, on the new ring
    finally:
        await lb.shutdown()
    _assert_once_and_whole(backends, batch)


async def test_dead_backend_lane_reroutes_its_share(backends: list[Backend]) -> None:
    """With per-backend queues the export returns once every part is queued; the dead
    backend's lane fails, the backend leaves the ring and the lane hands its part over."""
    lb = _lb([b.endpoint for b in backends], lanes=True)
    await lb.start()
    try:
        batch = _traces(6)
        await backends[1].server.stop(None)
        await lb.export(batch)
        await _lanes_drained(lb)
    finally:
        await lb.shutdown()
    assert not backends[1].spans
    _assert_once_and_whole(backends, batch)


async def test_slow_backend_fills_only_its_own_lane(backends: list[Backend]) -> None:
    """A backend that hangs holds its own share; the other backends get theirs meanwhile."""
    slow = await _backend(hold=asyncio.Event())
    lb = _lb([slow.endpoint, backends[0].endpoint], lanes=True, backend_health={"enabled": False})
    lb.config.protocol.otlp.timeout = 60.0
    await lb.start()
    try:
        batches = [_traces(4) for _ in range(20)]
        for batch in batches:
            await lb.export(batch)  # returns once queued, although one backend hangs
        total = sum(b.item_count() for b in batches)
        fast_lane = lb._lanes[(backends[0].endpoint, "traces")]
        for _ in range(1000):
            if backends[0].spans and fast_lane.idle:
                break
            await asyncio.sleep(0.01)
        assert 0 < len(backends[0].spans) < total and not slow.spans
        assert slow.hold is not None
        slow.hold.set()
        await _lanes_drained(lb)
    finally:
        await lb.shutdown()
        await slow.server.stop(None)
    assert len(backends[0].spans) + len(slow.spans) == total


async def test_removed_backend_lane_hands_its_queue_to_the_others(
    backends: list[Backend],
) -> None:
    a, b, c = backends
    lb = _lb([a.endpoint, b.endpoint, c.endpoint], lanes=True, backend_health={"enabled": False})
    await lb.start()
    try:
        await b.server.stop(None)  # its lane keeps retrying: health checks are off
        batch = _traces(6)
        await lb.export(batch)
        for _ in range(1000):
            if lb._lanes[(b.endpoint, "traces")].idle is False and a.spans and c.spans:
                break
            await asyncio.sleep(0.01)
        lb._on_change([a.endpoint, c.endpoint])  # e.g. DNS no longer lists it
        await _lanes_drained(lb)
        assert not lb._retiring or all(lane.idle for lane in lb._retiring.values())
    finally:
        await lb.shutdown()
    _assert_once_and_whole(backends, batch)


@pytest.mark.parametrize("comes_back", [True, False], ids=["same-address", "gone"])
async def test_on_disk_lanes_keep_a_dead_backends_share_across_restart(
    tmp_path: Path, backends: list[Backend], comes_back: bool
) -> None:
    """With the exporter's queue on disk, each lane's queue is on disk too (the same
    storage): a backend's share that was handed over survives a restart. It is sent when
    the backend is back at its address; when the address is gone (a rescheduled pod), the
    lane left on disk is re-routed to the backends resolved now."""
    from extensions.file_storage import FileStorageConfig, FileStorageExtension

    class Host:
        def __init__(self, storage: FileStorageExtension) -> None:
            self.telemetry = Telemetry()
            self.storage = storage

        def extension(self, component_id: str) -> Any:
            return self.storage if component_id == "file_storage" else None

    def lb_with_storage(
        endpoints: list[str],
    ) -> tuple[LoadBalancingExporter, FileStorageExtension]:
        lb = _lb(
            endpoints,
            lanes=True,
            backend_health={"enabled": False},
            sending_queue={"storage": "file_storage"},
        )
        storage_cfg = FileStorageConfig.model_validate({"directory": str(tmp_path)})
        return lb, FileStorageExtension("file_storage", storage_cfg)

    a, b, c = backends
    await b.server.stop(None)
    lb, storage = lb_with_storage([x.endpoint for x in backends])
    await storage.start(Host(storage))
    await lb.start(Host(storage))
    batch = _traces(6)
    try:
        await lb.export(batch)
        b_lane = lb._lanes[(b.endpoint, "traces")]
        for _ in range(1000):
            others = [lb._lanes.get((x.endpoint, "traces")) for x in (a, c)]
            if all(lane is not None and lane.idle for lane in others) and not b_lane.idle:
                break
            await asyncio.sleep(0.01)
        assert a.spans and c.spans and not b_lane.idle
    finally:
        await lb.shutdown()  # b's share stays on disk
        await storage.shutdown()
    if comes_back:
        backends[1] = await _backend(port=b.port)
        now = [x.endpoint for x in backends]
    else:
        backends[1] = await _backend()  # stands in for b's replacement, at a new address
        now = [a.endpoint, c.endpoint]
    lb, storage = lb_with_storage(now)
    await storage.start(Host(storage))
    await lb.start(Host(storage))
    try:
        if not comes_back:
            assert (b.endpoint, "traces") in lb._retiring  # adopted from disk
        for _ in range(1000):
            lanes = [*lb._lanes.values(), *lb._retiring.values()]
            delivered = sum(len(x.spans) for x in backends)
            if delivered >= batch.item_count() and all(lane.idle for lane in lanes):
                break
            await asyncio.sleep(0.01)
    finally:
        await lb.shutdown()
        await storage.shutdown()
    _assert_once_and_whole(backends, batch)


def _assert_once_and_whole(backends: list[Backend], batch: Batch) -> None:
    received = [s for b in backends for s in b.spans]
    assert len(received) == len(set(received)) == batch.item_count()
    owners: dict[bytes, int] = {}
    for n, backend in enumerate(backends):
        for span in backend.spans:
            assert owners.setdefault(span[:16], n) == n  # each trace on one backend


async def test_dns_resolver_drives_the_ring(backends: list[Backend]) -> None:
    cfg = LoadBalancingConfig.model_validate(
        {
            "protocol": {"otlp": {"tls": {"insecure": True}, "timeout": "2s"}},
            "resolver": {"dns": {"hostname": "127.0.0.1", "port": str(backends[0].port)}},
        }
    )
    lb = LoadBalancingExporter("loadbalancing", cfg, Telemetry(), {"traces"})
    await lb.start()
    try:
        assert list(lb.backends) == [backends[0].endpoint]
        batch = _traces(1)
        await lb.export(batch)
        await _lanes_drained(lb)
        assert len(backends[0].spans) == batch.item_count()
        # what a re-resolution does when the headless Service's addresses change
        lb._on_change([backends[1].endpoint, backends[2].endpoint])
        await lb.export(batch)
        await _lanes_drained(lb)
    finally:
        await lb.shutdown()
    assert len(backends[1].spans) + len(backends[2].spans) == batch.item_count()


async def test_no_backends_is_retryable() -> None:
    cfg = LoadBalancingConfig.model_validate(
        {"resolver": {"dns": {"hostname": "no-such-host.invalid", "timeout": "1s"}}}
    )
    lb = LoadBalancingExporter("loadbalancing", cfg, Telemetry(), {"traces"})
    await lb.start()
    try:
        with pytest.raises(RetryableError, match="no backends"):
            await lb.export(_traces(1))
    finally:
        await lb.shutdown()


# ---- three gateway processes ----------------------------------------------------------


# Gateways on a busy machine (four collectors and the load on two cores): slow inserts must
# wait, not trip the breaker and be dropped at shutdown (the test is about the agent).
STURDY = {"timeout": "60s", "circuit_breaker": {"enabled": False}}


def _accepted(config: dict[str, Any]) -> float:
    """otelcol_receiver_accepted_spans of a running AIRIS collector."""
    try:
        with urllib.request.urlopen(ports(config)["metrics"], timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("otelcol_receiver_accepted_spans")
    )


@pytest.mark.timeout(300)
def test_three_gateways_trace_affinity_and_failover(tmp_path: Path) -> None:
    gateways: list[tuple[Collector, dict[str, Any], Path]] = []
    for n in range(3):
        home = tmp_path / f"gw{n}"
        home.mkdir()
        config = base_config(home, store=home / "store")
        config["exporters"]["clickhouse"].update(STURDY)
        gateways.append((Collector(home, config, f"gateway{n}"), config, home / "store"))
    (tmp_path / "agent").mkdir()
    agent_config = base_config(tmp_path / "agent")
    agent_config["exporters"] = {
        "loadbalancing": {
            "routing_key": "traceID",
            "protocol": {"otlp": {"tls": {"insecure": True}, "timeout": "10s"}},
            "resolver": {"static": {"hostnames": [ports(c)["grpc"] for _, c, _ in gateways]}},
            "timeout": "30s",
            "retry_on_failure": {
                "initial_interval": "50ms",
                "max_interval": "500ms",
                "max_elapsed_time": "0",
            },
            "circuit_breaker": {"enabled": False},
            "backend_health": {"cooldown": "1h"},
        }
    }
    agent_config["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["loadbalancing"]}
    }
    agent = Collector(tmp_path / "agent", agent_config, "agent")
    for gateway, _, _ in gateways:
        gateway.start()
    try:
        with agent:

            async def load_and_kill() -> dict[str, Any]:
                load = asyncio.create_task(
                    run(
                        LoadConfig(
                            target="grpc://" + ports(agent_config)["grpc"],
                            batch=20,
                            concurrency=4,
                            duration=None,
                            requests=600,
                            rate=3000,  # spread over seconds, so the kill lands mid-run
                            distinct=4,
                        )
                    )
                )
                # kill one gateway once it has taken a share of the load
                victim, victim_config, _ = gateways[1]
                while not load.done() and _accepted(victim_config) < 500:
                    await asyncio.sleep(0.05)
                assert not load.done(), "the load finished before the kill"
                await asyncio.to_thread(victim.stop, signal.SIGTERM)
                return await load

            result = asyncio.run(load_and_kill())
            assert result["items"]["failed"] == 0, result
            assert agent.stop() == 0, agent.logs()
            # the killed gateway's share went to the others
            assert "routing its share to the others" in agent.logs()
    finally:
        for gateway, _, _ in gateways:
            if gateway.proc is not None and gateway.proc.poll() is None:
                gateway.stop()
    stored: list[list[dict[str, Any]]] = [
        query_store(store, "SELECT TraceId AS t, SpanId AS s FROM otel.otel_traces")
        for _, _, store in gateways
    ]
    assert all(stored), [len(s) for s in stored]  # every gateway got a share
    spans = [(r["t"], r["s"]) for rows in stored for r in rows]
    assert len(set(spans)) == result["items"]["acknowledged"]  # nothing acknowledged lost
    # every trace on one gateway. Delivery is at least once: a send that timed out after the
    # gateway took it is sent again, so a trace may be there twice, but whole each time.
    per_gateway: list[dict[str, set[str]]] = []
    for rows in stored:
        traces: dict[str, set[str]] = {}
        for r in rows:
            traces.setdefault(r["t"], set()).add(r["s"])
        per_gateway.append(traces)
    split = []
    for trace_id in {t for g in per_gateway for t in g}:
        copies = [g[trace_id] for g in per_gateway if trace_id in g]
        if any(c != copies[0] for c in copies):
            split.append(trace_id)
    assert not split, f"{len(split)} traces spread over gateways"


class ScriptedDNS(DNS):
    """DNS answers from a list instead of the system resolver (which cannot be made to
    change its answer in a test); everything else is the real resolver loop."""

    def __init__(self, answers: list[list[str]], interval: float) -> None:
        cfg = LoadBalancingConfig.model_validate(
            {"resolver": {"dns": {"hostname": "gw", "interval": f"{interval}s"}}}
        )
        assert cfg.resolver.dns is not None
        super().__init__(cfg.resolver.dns)
        self.answers = answers
        self.lookups = 0

    async def resolve(self) -> list[str] | None:
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return answer


async def test_periodic_re_resolution_updates_the_ring(backends: list[Backend]) -> None:
    a, b, c = (x.endpoint for x in backends)
    lb = _lb([a])
    lb.resolver = ScriptedDNS([[a], [a, b], [a, b, c], [b, c]], interval=0.01)
    await lb.start()
    try:
        for _ in range(500):  # the loop re-resolves on its own; wait for the last answer
            if sorted(lb.backends) == sorted([b, c]):
                break
            await asyncio.sleep(0.01)
        assert sorted(lb.backends) == sorted([b, c])
        assert lb.ring.endpoints == tuple(sorted([b, c]))
        batch = _traces(2)
        await lb.export(batch)
        await _lanes_drained(lb)
    finally:
        await lb.shutdown()
    assert not backends[0].spans
    assert len(backends[1].spans) + len(backends[2].spans) == batch.item_count()
