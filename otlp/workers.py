"""`service.workers: N`: N processes share the receivers' ports (SO_REUSEPORT).

The process started by `airis --config FILE` becomes a supervisor; it never touches data:

- it validates the config (a bad one fails before any port is bound), then binds the
  health_check extension and the self-metrics endpoint, so both keep their configured
  addresses;
- it starts N workers (`python -m otlp.cli` with the same --config arguments), each running
  its own Service whose receivers listen with SO_REUSEPORT; the kernel spreads incoming
  *connections* over the workers (a gRPC client keeps one connection, so one client lands on
  one worker; many clients spread);
- health_check answers 200 once every worker has reported that its pipelines are up, and 503
  again when shutdown begins or a worker dies;
- GET /metrics gathers every worker's metrics and labels each series with `worker="<index>"`
  (`sum by (...)` over the label gives the collector's totals, as with replicas);
- SIGTERM/SIGINT are forwarded to every worker; when any worker exits on its own, the others
  are stopped too (no restarts, as a crashed Collector is not restarted by itself); the exit
  code is 0 only when every worker stopped cleanly;
- each worker watches its control socket: when the supervisor dies (even by `kill -9`), the
  workers shut down cleanly instead of staying orphaned;
- once the config is validated, the supervisor re-executes itself as `python -m otlp.workers`
  (same pid), handed only what it needs (a `Plan`) through a pipe: validating imported every
  component (pyarrow, numpy, grpc, ...), ~60 MiB resident that a process which never touches
  data should not keep.

Per-process state does not cross workers: memory_limiter limits apply to each worker, batches
are built per worker, and an embedded store (`chdb://`) cannot be shared, so such a config is
refused (see `check`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from otlp.component import EXTENSION, ComponentID, CreateSettings
from otlp.errors import ConfigError

if TYPE_CHECKING:
    # loading a config imports every component: the supervisor process never does
    from otlp.config import Config

log = logging.getLogger("airis.workers")

ENV_INDEX = "AIRIS_WORKER_INDEX"
ENV_FD = "AIRIS_WORKER_FD"
ENV_PLAN_FD = "AIRIS_SUPERVISOR_PLAN_FD"
# a plan travels through a pipe written before the exec: it must fit the pipe's buffer
_PLAN_MAX_BYTES = 60_000
# Extension types the supervisor runs itself (the workers run all others).
SUPERVISOR_EXTENSIONS = frozenset({"health_check"})


def check(cfg: Config) -> None:
    """Refuse what cannot work with several workers (called at validation, before binding)."""
    workers = cfg.service.workers
    if workers == 1:
        return
    for cid in cfg.components.get("processor", {}):
        if cid.type in ("rules", "tail_sampling"):
            # both need every record of a group/trace in one process
            raise ConfigError(
                f"processors.{cid}: sees only one worker's share of the data, but "
                f"service.workers is {workers}: use workers: 1, or put it on a gateway tier "
                "behind the loadbalancing exporter"
            )
    for cid, exporter_cfg in cfg.components.get("exporter", {}).items():
        endpoint = getattr(exporter_cfg, "endpoint", None)
        if isinstance(endpoint, str) and endpoint.strip().lower().startswith("chdb://"):
            raise ConfigError(
                f"exporters.{cid}.endpoint: the embedded store {endpoint!r} belongs to one "
                f"process, but service.workers is {workers}: use workers: 1 with the embedded "
                "store, or a ClickHouse server endpoint (http://HOST:8123) with several workers"
            )


# --- worker side ---------------------------------------------------------------------------


@dataclass
class WorkerLink:
    """A worker's end of its control socket: reports readiness, notices a dead supervisor."""

    index: int
    sock: socket.socket

    @classmethod
    def from_env(cls) -> WorkerLink | None:
        """The link when this process was started as a worker (the variables are consumed, so
        nothing this process starts inherits them)."""
        index, fd = os.environ.pop(ENV_INDEX, None), os.environ.pop(ENV_FD, None)
        if index is None or fd is None:
            return None
        sock = socket.socket(fileno=int(fd))
        sock.setblocking(False)
        return cls(int(index), sock)

    def prepare(self, cfg: Config) -> None:
        """Leave the supervisor's extensions out of this worker's service."""
        kept = [
            e
            for e in cfg.service.extensions
            if ComponentID.parse(e).type not in SUPERVISOR_EXTENSIONS
        ]
        cfg.service = cfg.service.model_copy(update={"extensions": kept})
        # each worker keeps its write-ahead logs in its own subdirectory: a log belongs to
        # one process, and a restarted worker (same index) recovers what it left
        extensions = cfg.components.get(EXTENSION, {})
        for cid, ext in extensions.items():
            if cid.type == "file_storage":
                directory = os.path.join(ext.directory, f"worker-{self.index}")
                extensions[cid] = ext.model_copy(
                    update={"directory": directory, "create_directory": True}
                )
        tag = _WorkerTag(self.index)
        for handler in logging.getLogger().handlers:
            handler.addFilter(tag)

    def ready(self, metrics_port: int | None) -> None:
        message = {"ready": True, "pid": os.getpid(), "metrics_port": metrics_port}
        # tiny message on a fresh socket buffer: a non-blocking send does not fall short
        self.sock.send(json.dumps(message).encode() + b"\n")

    def watch(self, loop: asyncio.AbstractEventLoop, on_lost: Any) -> None:
        """Call `on_lost()` when the supervisor's end closes (it exited or was killed)."""

        def readable() -> None:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self.sock.fileno())
                log.warning("Supervisor is gone, shutting down", extra={"worker": self.index})
                on_lost()

        loop.add_reader(self.sock.fileno(), readable)


class _WorkerTag(logging.Filter):
    """Adds `worker=<index>` to every log line of a worker."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


# --- supervisor side -----------------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    metrics_port: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    exited: asyncio.Future[int] | None = None
    listener: asyncio.Future[None] | None = None


class _Host:
    """What the supervisor's extensions may ask of it (the Host protocol)."""

    def __init__(self, telemetry: Any, extensions: dict[ComponentID, Any]) -> None:
        self.telemetry = telemetry
        self._extensions = extensions

    def extension(self, component_id: str) -> Any:
        return self._extensions.get(ComponentID.parse(component_id))


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class Plan:
    """What the supervisor needs of a validated config."""

    workers: int
    config_args: list[str]
    # (component id, raw config) of the extensions the supervisor runs itself
    extensions: list[tuple[str, Any]]
    metrics_address: tuple[str, int] | None
    log_level: str = "info"
    log_encoding: str = "console"
    secrets: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, cfg: Config, config_args: Sequence[str]) -> Plan:
        from otlp.secrets import secret_values

        # keyed as the config resolves them ("health_check" and "health_check/" are one id)
        raw_extensions = {
            ComponentID.parse(key): value
            for key, value in (cfg.raw.get("extensions") or {}).items()
        }
        extensions = [
            (name, raw_extensions.get(ComponentID.parse(name)))
            for name in cfg.service.extensions
            if ComponentID.parse(name).type in SUPERVISOR_EXTENSIONS
        ]
        logs = cfg.service.telemetry.logs
        return cls(
            workers=cfg.service.workers,
            config_args=list(config_args),
            extensions=extensions,
            metrics_address=cfg.service.telemetry.metrics.listen_address(),
            log_level=logs.level,
            log_encoding=logs.encoding,
            secrets=sorted(secret_values(cfg.raw)),
        )

    def dumps(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def loads(cls, data: bytes) -> Plan:
        doc = json.loads(data)
        # JSON has no tuples
        doc["extensions"] = [(name, raw) for name, raw in doc["extensions"]]
        address = doc["metrics_address"]
        doc["metrics_address"] = (address[0], int(address[1])) if address else None
        return cls(**doc)


class Supervisor:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.config_args = list(plan.config_args)
        self.workers: list[_Worker] = []
        self.extensions: dict[ComponentID, Any] = {}
        self._metrics_server: Any = None

    async def run(self) -> int:
        from otlp.telemetry import Telemetry

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        telemetry = Telemetry()
        try:
            await self._start_endpoints(telemetry)
            for index in range(self.plan.workers):
                self.workers.append(await self._spawn(index))
        except Exception as exc:
            log.error("Failed to start", extra={"error": str(exc)}, exc_info=True)
            await self._stop_workers()
            await self._stop_endpoints()
            return 1

        first_exit = asyncio.ensure_future(
            asyncio.wait(
                [w.exited for w in self.workers if w.exited], return_when="FIRST_COMPLETED"
            )
        )
        all_ready = asyncio.ensure_future(asyncio.gather(*(w.ready.wait() for w in self.workers)))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait((all_ready, first_exit, stopped), return_when="FIRST_COMPLETED")
        if all_ready.done() and not first_exit.done() and not stopped.done():
            self._set_ready(True)
            log.info("All workers are ready", extra={"workers": len(self.workers)})
            await asyncio.wait((first_exit, stopped), return_when="FIRST_COMPLETED")
        all_ready.cancel()

        unexpected = not stopped.done()
        if unexpected:
            gone = next(w for w in self.workers if w.exited and w.exited.done())
            assert gone.exited is not None
            log.error(
                "Worker exited, stopping the others",
                extra={"worker": gone.index, "code": gone.proc.returncode},
            )
        else:
            log.info("Received signal, stopping workers")
        stopped.cancel()
        codes = await self._stop_workers()
        first_exit.cancel()
        await self._stop_endpoints()
        log.info("Shutdown complete")
        if unexpected:
            # a worker that stopped on its own leaves the collector short: never success
            return next((c for c in codes if c), 1)
        return next((c for c in codes if c), 0)

    # -- endpoints ------------------------------------------------------------------------
    async def _start_endpoints(self, telemetry: Any) -> None:
        from otlp import registry
        from otlp.telemetry_server import AsgiServer

        host = _Host(telemetry, self.extensions)
        for name, raw in self.plan.extensions:
            cid = ComponentID.parse(name)
            factory = registry.lookup(EXTENSION, cid.type)
            assert factory is not None  # validated
            settings = CreateSettings(id=cid, kind=EXTENSION, telemetry=telemetry)
            # the same validation as the config's (it passed there): the settings object
            ext = factory.create(settings, factory.config_model.model_validate(raw or {}))
            await ext.start(host)
            self.extensions[cid] = ext
        address = self.plan.metrics_address
        if address:
            server = AsgiServer(self._metrics_app, *address, name="telemetry-metrics")
            await server.start()
            self._metrics_server = server

    async def _stop_endpoints(self) -> None:
        self._set_ready(False)
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        for ext in reversed(list(self.extensions.values())):
            await ext.shutdown()

    def _set_ready(self, ready: bool) -> None:
        for ext in self.extensions.values():
            set_status = getattr(ext, "set_status", None)
            if set_status is not None:
                set_status(ready)

    # -- workers --------------------------------------------------------------------------
    async def _spawn(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair()
        env = {**os.environ, ENV_INDEX: str(index), ENV_FD: str(theirs.fileno())}
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "otlp.cli",
                *self.config_args,
                env=env,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        worker = _Worker(index, proc, reader, writer)
        worker.exited = asyncio.ensure_future(proc.wait())
        worker.listener = asyncio.ensure_future(self._listen(worker))
        log.info("Started worker", extra={"worker": index, "pid": proc.pid})
        return worker

    async def _listen(self, worker: _Worker) -> None:
        while line := await worker.reader.readline():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("ready"):
                worker.metrics_port = message.get("metrics_port")
                worker.ready.set()

    async def _stop_workers(self) -> list[int]:
        """SIGTERM every live worker, wait for all; exit codes in worker order (a SIGTERM the
        supervisor sent before the worker could handle it counts as a clean stop)."""
        self._set_ready(False)
        for worker in self.workers:
            if worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signal.SIGTERM)
        codes = []
        for worker in self.workers:
            code = await worker.proc.wait()
            worker.writer.close()
            codes.append(0 if code == -signal.SIGTERM else _exit_code(code))
        return codes

    # -- /metrics -------------------------------------------------------------------------
    async def _metrics_app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            status, body = 404, b"404 page not found\n"
        else:
            texts = await asyncio.gather(
                *(_fetch_metrics(w.metrics_port) for w in self.workers if w.metrics_port)
            )
            indexed = [
                (w.index, t)
                for w, t in zip([w for w in self.workers if w.metrics_port], texts, strict=True)
                if t is not None
            ]
            status, body = 200, merge_expositions(indexed).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _fetch_metrics(port: int | None, timeout: float = 5.0) -> str | None:
    """One worker's exposition text, or None when it does not answer (it may be stopping)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        return None
    return body.decode("utf-8", "replace")


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{?)")


def merge_expositions(texts: Sequence[tuple[int, str]]) -> str:
    """Prometheus text expositions of several workers as one, each sample labelled with its
    worker; the samples of a metric family stay together as the format requires."""
    families: dict[str, list[str]] = {}  # name → HELP/TYPE lines then samples
    for index, text in texts:
        label = f'worker="{index}"'
        current: list[str] | None = None
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    current = families.get(parts[2])
                    if current is None:
                        current = families[parts[2]] = []
                    if line not in current:  # HELP/TYPE once per family
                        current.append(line)
                continue
            match = _SAMPLE.match(line)
            if match is None or current is None:
                continue
            name, brace = match.groups()
            rest = line[match.end() :]
            if brace:
                labelled = f"{name}{{{label}" + ("," if not rest.startswith("}") else "") + rest
            else:
                labelled = f"{name}{{{label}}}{rest}"
            current.append(labelled)
    return "".join(line + "\n" for lines in families.values() for line in lines)


def supervise(cfg: Config, config_args: Sequence[str]) -> int:
    """Become the supervisor of `cfg` (validated): re-executed as `python -m otlp.workers`
    when the plan fits the pipe, else (a huge list of secrets) in this process."""
    plan = Plan.of(cfg, config_args)
    data = plan.dumps()
    if len(data) <= _PLAN_MAX_BYTES and os.environ.get(ENV_PLAN_FD) is None:
        read_end, write_end = os.pipe()
        os.write(write_end, data)
        os.close(write_end)
        os.set_inheritable(read_end, True)
        os.environ[ENV_PLAN_FD] = str(read_end)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.execv(sys.executable, [sys.executable, "-m", "otlp.workers"])
    return _run(plan)


def _run(plan: Plan) -> int:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    try:
        return runner(Supervisor(plan).run())
    except KeyboardInterrupt:
        return 0


def _supervisor_main() -> int:
    """The re-executed supervisor: the plan from the pipe, logging as configured."""
    from otlp import memory
    from otlp.secrets import install_log_filter
    from otlp.telemetry import setup_logging

    memory.configure()
    fd = int(os.environ.pop(ENV_PLAN_FD))
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    plan = Plan.loads(b"".join(chunks))
    setup_logging(plan.log_level, plan.log_encoding)
    install_log_filter(plan.secrets)
    log.info("Memory allocator settings", extra={"pid": os.getpid(), **memory.report()})
    return _run(plan)


if __name__ == "__main__":
    sys.exit(_supervisor_main())
