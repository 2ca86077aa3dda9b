"""OTLP load generator: pre-encoded requests over gRPC or HTTP/protobuf, counted and timed.

    python -m benchmarks.loadgen --target grpc://127.0.0.1:4317 --signal traces \\
        --batch 512 --concurrency 4 --rate 0 --duration 10

prints one JSON object (see `run`). It is built to stay light next to the system under test:
requests are encoded once (`benchmarks.payloads`) and only stamped with a request id per send,
gRPC goes through a generic unary call on raw bytes (no per-request protobuf work), HTTP goes
over keep-alive connections with a C response parser, and everything runs on one event loop
in one process. Requests are not retried: a refused or failed request counts as failed, so
`sent == acknowledged` means nothing was lost or refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import grpc
import httptools
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from benchmarks.payloads import SIGNALS, Template, make_templates

_GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
# The response message and its partial_success field counting refused items, per signal.
_RESPONSES = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
}


@dataclass
class LoadConfig:
    target: str  # grpc://host:port or http://host:port (OTLP/HTTP base; /v1/<signal> is added)
    signal: str = "traces"
    batch: int = 512  # items (spans, data points, log records) per request
    concurrency: int = 4  # requests in flight at most
    rate: float = 0.0  # items per second over all workers; 0 = as fast as acknowledged
    duration: float | None = 10.0  # seconds; None = until `requests` are sent
    requests: int | None = None  # stop after this many requests (whichever limit comes first)
    timeout: float = 10.0  # per request, seconds
    distinct: int = 8  # different pre-encoded requests to cycle through
    # gRPC: channels (TCP connections) to spread requests over, round robin. Several matter
    # when the server has several processes on one port (SO_REUSEPORT balances connections,
    # and one gRPC connection carries every request of a channel). HTTP already opens one
    # connection per request in flight.
    connections: int = 1
    id_base: int | None = None  # first request id; random when None (so runs don't collide)
    seed: int = 1
    headers: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}")
        if self.duration is None and self.requests is None:
            raise ValueError("give a duration, a request count, or both")
        if self.batch < 1 or self.concurrency < 1 or self.rate < 0 or self.connections < 1:
            raise ValueError("batch, concurrency and connections must be >= 1 and rate >= 0")
        scheme = urlsplit(self.target).scheme
        if scheme not in ("grpc", "http"):
            raise ValueError("target must start with grpc:// or http://")


class Sender(Protocol):
    async def send(self, data: bytes) -> int:
        """Export one request; returns the items the server refused (partial success)."""
        ...

    async def close(self) -> None: ...


class RequestFailed(Exception):
    """A request that was not acknowledged; `kind` names the error in the results."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _rejected(signal: str, body: bytes) -> int:
    if not body:  # the common case: an empty response message, no partial success
        return 0
    cls, name = _RESPONSES[signal]
    return getattr(cls.FromString(body).partial_success, name)


class GrpcSender:
    def __init__(self, cfg: LoadConfig) -> None:
        self._signal = cfg.signal
        self._timeout = cfg.timeout
        self._metadata = tuple((k.lower(), v) for k, v in cfg.headers.items()) or None
        # Channels to one target share their TCP connection through grpc's global subchannel
        # pool; a local pool per channel gives each its own connection.
        options = [("grpc.use_local_subchannel_pool", 1)] if cfg.connections > 1 else []
        netloc = urlsplit(cfg.target).netloc
        self.channels = [
            grpc.aio.insecure_channel(netloc, options=options) for _ in range(cfg.connections)
        ]
        self.channel = self.channels[0]
        # No serializers: the request goes out as the bytes given, the response comes back as
        # bytes, so a send costs no protobuf work at all.
        self._calls = [
            channel.unary_unary(
                _GRPC_METHODS[cfg.signal], request_serializer=None, response_deserializer=None
            )
            for channel in self.channels
        ]
        self._next = 0

    async def connect(self, timeout: float) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(channel.channel_ready() for channel in self.channels)), timeout
        )

    async def send(self, data: bytes) -> int:
        call = self._calls[self._next]
        self._next = (self._next + 1) % len(self._calls)
        try:
            body = await call(data, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise RequestFailed(err.code().name) from err
        return _rejected(self._signal, body)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


class _HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, responses parsed in C.

    httpx costs about 2 ms of CPU per request here, which would make the generator compete
    with the server it measures; a raw protocol with httptools' parser costs a small fraction.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes, bytes]] | None = None
        self._body: list[bytes] = []
        self._content_type = b""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not subclass asyncio.Transport, hence no isinstance check)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._abort(RequestFailed(f"bad response: {err}"))

    def eof_received(self) -> bool:
        self._abort(RequestFailed("connection closed"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._abort(RequestFailed("connection lost"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self._content_type = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        result = (self._parser.get_status_code(), self._content_type, b"".join(self._body))
        self._body.clear()
        self._content_type = b""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(result)
        if not keep_alive:
            self.close()

    def _abort(self, err: RequestFailed) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(err)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, head: bytes, body: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.writelines((head, body))
        try:
            return await asyncio.wait_for(self._waiter, timeout)
        except TimeoutError:
            self.close()  # a late response must not be taken for the next request's
            raise RequestFailed("timeout") from None


class HttpSender:
    """OTLP/HTTP protobuf POSTs over a pool of keep-alive connections (one per worker)."""

    def __init__(self, cfg: LoadConfig) -> None:
        parts = urlsplit(cfg.target)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._signal = cfg.signal
        self._timeout = cfg.timeout
        path = parts.path.rstrip("/") + f"/v1/{cfg.signal}"
        extra = "".join(f"{k}: {v}\r\n" for k, v in cfg.headers.items())
        self._head_prefix = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/x-protobuf\r\n{extra}Content-Length: "
        ).encode()
        self._idle: list[_HttpConnection] = []
        self._all: set[_HttpConnection] = set()

    async def _connect(self) -> _HttpConnection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(_HttpConnection, self._host, self._port), self._timeout
        )
        self._all.add(conn)
        return conn

    async def connect(self, timeout: float) -> None:
        self._idle.append(await self._connect())

    async def send(self, data: bytes) -> int:
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:  # the server may have closed an idle connection
                conn = candidate
                break
            self._all.discard(candidate)
        if conn is None:
            try:
                conn = await self._connect()
            except (OSError, TimeoutError) as err:
                raise RequestFailed(f"connect: {type(err).__name__}") from err
        head = self._head_prefix + b"%d\r\n\r\n" % len(data)
        try:
            status, content_type, body = await conn.request(head, data, self._timeout)
        finally:
            if conn.closed:
                self._all.discard(conn)
            else:
                self._idle.append(conn)
        if status != 200:
            raise RequestFailed(f"http {status}")
        if b"protobuf" not in content_type:
            return 0
        return _rejected(self._signal, body)

    async def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()


def make_sender(cfg: LoadConfig) -> GrpcSender | HttpSender:
    return GrpcSender(cfg) if urlsplit(cfg.target).scheme == "grpc" else HttpSender(cfg)


@dataclass
class _State:
    deadline: float | None
    max_requests: int | None
    interval: float  # seconds between request starts when rate-limited, else 0
    next_start: float = 0.0
    started: int = 0
    ok: int = 0
    failed: int = 0
    acknowledged: int = 0
    rejected: int = 0
    failed_items: int = 0
    bytes_sent: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def take(self) -> int | None:
        """The next request's sequence number, or None when a limit is reached."""
        if self.max_requests is not None and self.started >= self.max_requests:
            return None
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return None
        seq = self.started
        self.started += 1
        return seq

    def slot(self) -> float:
        """How long to wait before this request may start (the rate limit's schedule)."""
        now = time.monotonic()
        start = max(now, self.next_start)
        self.next_start = start + self.interval
        return start - now


async def _worker(
    state: _State, sender: Sender, templates: Sequence[Template], id_base: int
) -> None:
    while True:
        if state.interval:
            # Reserve a start time first, so workers spread out instead of bursting.
            wait = state.slot()
            if wait > 0:
                if state.deadline is not None and time.monotonic() + wait >= state.deadline:
                    return
                await asyncio.sleep(wait)
        seq = state.take()
        if seq is None:
            return
        template = templates[seq % len(templates)]
        data = template.render(id_base + seq)
        state.bytes_sent += len(data)
        began = time.perf_counter()
        try:
            rejected = await sender.send(data)
        except RequestFailed as err:
            state.failed += 1
            state.failed_items += template.items
            state.errors[err.kind] += 1
        else:
            state.ok += 1
            state.rejected += rejected
            state.acknowledged += template.items - rejected
        state.latencies.append(time.perf_counter() - began)


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        # Nearest rank: the smallest sample with at least q of all samples at or below it.
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    ms = 1000.0
    return {
        "p50": round(at(0.50) * ms, 3),
        "p90": round(at(0.90) * ms, 3),
        "p99": round(at(0.99) * ms, 3),
        "max": round(ordered[-1] * ms, 3),
        "mean": round(sum(ordered) / len(ordered) * ms, 3),
    }


async def run(cfg: LoadConfig, templates: Sequence[Template] | None = None) -> dict[str, Any]:
    """Send load as configured and return the results (the CLI prints them as JSON).

    Items: sent = acknowledged + rejected (partial success) + failed (request not acknowledged).
    Request ids run from `request_ids.first` for `request_ids.count` requests; every trace id
    of request N starts with N as 8 big-endian bytes, and every resource carries
    `loadgen.request.id` = N in 16 hex digits.
    """
    cfg.validate()
    if templates is None:
        templates = make_templates(cfg.signal, cfg.batch, cfg.distinct, cfg.seed)
    id_base = cfg.id_base if cfg.id_base is not None else random.getrandbits(31) << 32
    sender = make_sender(cfg)
    try:
        try:
            await sender.connect(cfg.timeout)
        except (OSError, TimeoutError) as err:
            raise ConnectionError(f"{cfg.target} not reachable: {err!r}") from err
        interval = templates[0].items / cfg.rate if cfg.rate else 0.0
        began = time.monotonic()
        cpu_began = time.process_time()
        state = _State(
            deadline=began + cfg.duration if cfg.duration is not None else None,
            max_requests=cfg.requests,
            interval=interval,
            next_start=began,
        )
        workers = [_worker(state, sender, templates, id_base) for _ in range(cfg.concurrency)]
        await asyncio.gather(*workers)
        elapsed = time.monotonic() - began
        cpu = time.process_time() - cpu_began
    finally:
        await sender.close()

    sent_items = state.acknowledged + state.rejected + state.failed_items
    return {
        "target": cfg.target,
        "signal": cfg.signal,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("target", "headers")},
        "elapsed_s": round(elapsed, 3),
        "requests": {"sent": state.started, "ok": state.ok, "failed": state.failed},
        "items": {
            "sent": sent_items,
            "acknowledged": state.acknowledged,
            "rejected": state.rejected,
            "failed": state.failed_items,
        },
        "acknowledged_items_per_s": round(state.acknowledged / elapsed, 1) if elapsed else 0.0,
        "latency_ms": _percentiles(state.latencies),
        "errors": dict(state.errors),
        "request_bytes_mean": round(state.bytes_sent / state.started) if state.started else 0,
        "request_ids": {"first": id_base, "count": state.started},
        # The generator's own CPU use, to show it did not starve the system under test.
        "loadgen_cpu_s": round(cpu, 3),
        "loadgen_cpu_share": round(cpu / elapsed, 3) if elapsed else 0.0,
    }


def _parse_args(argv: Sequence[str] | None) -> LoadConfig:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen", description=__doc__.split("\n")[0]
    )
    p.add_argument("--target", required=True, help="grpc://HOST:PORT or http://HOST:PORT")
    p.add_argument("--signal", choices=SIGNALS, default="traces")
    p.add_argument("--batch", type=int, default=512, help="items per request")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    p.add_argument("--rate", type=float, default=0.0, help="items/s in total; 0 = unlimited")
    p.add_argument("--duration", type=float, default=None, help="seconds (default 10)")
    p.add_argument("--requests", type=int, default=None, help="stop after N requests")
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    p.add_argument("--distinct", type=int, default=8, help="different requests to cycle")
    p.add_argument(
        "--connections", type=int, default=1, help="gRPC channels (TCP connections) to use"
    )
    p.add_argument("--id-base", type=lambda s: int(s, 0), default=None, help="first request id")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--header", action="append", default=[], metavar="K=V", help="gRPC metadata / HTTP header"
    )
    a = p.parse_args(argv)
    duration = a.duration if a.duration is not None else (None if a.requests else 10.0)
    headers = dict(h.split("=", 1) for h in a.header)
    return LoadConfig(
        target=a.target,
        signal=a.signal,
        batch=a.batch,
        concurrency=a.concurrency,
        rate=a.rate,
        duration=duration,
        requests=a.requests,
        timeout=a.timeout,
        distinct=a.distinct,
        connections=a.connections,
        id_base=a.id_base,
        seed=a.seed,
        headers=headers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = _parse_args(argv)
    try:
        cfg.validate()
    except ValueError as err:
        print(f"loadgen: {err}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        result = runner(run(cfg))
    except ConnectionError as err:
        print(f"loadgen: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    # Failed requests are a result, not an error of the generator: they are in the JSON.
    return 0


if __name__ == "__main__":
    sys.exit(main())
