"""`airis` command line: run, validate, components, query later."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from importlib.metadata import version
from typing import TYPE_CHECKING

from otlp import memory, nopandas
from otlp.errors import ConfigError

if TYPE_CHECKING:
    from otlp import config as config_module
    from otlp import workers

log = logging.getLogger("airis")


def _version() -> str:
    try:
        return version("airis")
    except Exception:
        return "0+unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airis", description="OpenTelemetry-Collector-compatible ingest backend"
    )
    parser.add_argument("--version", action="version", version=f"airis {_version()}")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="config file (repeatable; later files merge over earlier ones), "
        "or 'yaml:key::path: value'",
    )
    sub = parser.add_subparsers(dest="command")
    validate = sub.add_parser("validate", help="check a config and exit")
    validate.add_argument("--config", action="append", default=[], metavar="FILE")
    sub.add_parser("components", help="list the available components")
    printer = sub.add_parser(
        "print-config", help="print the config as loaded (env expanded, files merged)"
    )
    printer.add_argument("--config", action="append", default=[], metavar="FILE")
    printer.add_argument(
        "--mode",
        choices=("redacted", "unredacted"),
        default="redacted",
        help="redacted (default) masks passwords, tokens, keys and header values",
    )
    from otlp import query_cli

    query_cli.add_arguments(sub.add_parser("query", help="query the stored data (SQL)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    # allocator settings first: a thread picks its malloc arena at its first allocation and
    # the Arrow pool is chosen when pyarrow is imported (below)
    memory.configure()
    nopandas.install()
    from otlp import config as config_module
    from otlp import workers

    args = _parser().parse_args(argv)
    if args.command == "components":
        return _components()
    if args.command == "query":
        from otlp import query_cli

        return query_cli.run(args)
    if not args.config:
        print("airis: at least one --config FILE is required", file=sys.stderr)
        return 2
    try:
        cfg = config_module.load(args.config)
        workers.check(cfg)
    except ConfigError as exc:
        print(f"airis: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    if args.command == "validate":
        print("configuration is valid")
        return 0
    if args.command == "print-config":
        import yaml

        from otlp.secrets import mask_config

        shown = cfg.raw if args.mode == "unredacted" else mask_config(cfg.raw)
        print(yaml.safe_dump(shown, sort_keys=False), end="")
        return 0
    from otlp.secrets import install_log_filter, secret_values
    from otlp.telemetry import setup_logging

    setup_logging(cfg.service.telemetry.logs.level, cfg.service.telemetry.logs.encoding)
    # secrets of the config never reach a log line, whoever logs them
    install_log_filter(secret_values(cfg.raw))
    log.info("Memory allocator settings", extra={"pid": os.getpid(), **memory.report()})
    link = workers.WorkerLink.from_env()
    if link is None and cfg.service.workers > 1:
        # this process supervises; the workers re-read the same config arguments
        return workers.supervise(cfg, [arg for path in args.config for arg in ("--config", path)])
    return run(cfg, link)


def _components() -> int:
    from otlp import registry

    by_kind: dict[str, list[str]] = {}
    for (kind, type_), _factory in sorted(registry.factories().items()):
        by_kind.setdefault(kind, []).append(type_)
    print(f"buildinfo:\n  command: airis\n  version: {_version()}")
    for kind in ("receiver", "processor", "exporter", "extension"):
        print(f"{kind}s:")
        for name in by_kind.get(kind, []):
            print(f"  - {name}")
    return 0


def run(cfg: config_module.Config, link: workers.WorkerLink | None = None) -> int:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep running without it
        runner = asyncio.run
    try:
        return runner(_serve(cfg, link))
    except KeyboardInterrupt:
        return 0


async def _serve(cfg: config_module.Config, link: workers.WorkerLink | None = None) -> int:
    from otlp.service import Service
    from otlp.telemetry import Telemetry
    from otlp.telemetry_server import serve_metrics

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = cfg.service.telemetry.metrics.listen_address()
    if link is not None:
        # a worker: the supervisor serves health and the configured metrics address (it
        # gathers each worker's metrics from a private loopback port)
        link.prepare(cfg)
        link.watch(loop, stop.set)
        address = ("127.0.0.1", 0) if address else None

    telemetry = Telemetry()
    try:
        service = Service(cfg, telemetry)
    except ConfigError as exc:
        # settings only a component can check when it is built (still before any port is bound)
        print(f"airis: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    if link is not None:
        for receiver in service.receivers.values():
            if hasattr(receiver, "reuse_port"):
                receiver.reuse_port = True

    metrics_server = None
    try:
        if address:
            metrics_server = await serve_metrics(telemetry, *address)
        await service.start()
        if link is not None:
            link.ready(metrics_server.port if metrics_server else None)
    except Exception as exc:
        log.error("Failed to start", extra={"error": str(exc)}, exc_info=True)
        await service.shutdown()
        if metrics_server:
            await metrics_server.stop()
        return 1
    await stop.wait()
    log.info("Received signal, shutting down")
    await service.shutdown()
    if metrics_server:
        await metrics_server.stop()
    log.info("Shutdown complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
