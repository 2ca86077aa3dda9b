"""`airis query "SQL" [--format F] [--config FILE]`: look at the stored data.

The query goes to the running collector's query endpoint (the `clickhouse` exporter's
`query_endpoint`, 127.0.0.1:8123 unless configured otherwise). When nothing listens there,
the embedded store is opened directly — possible only while no collector holds it, since
the engine locks its directory.

Output: a readable table (PrettyCompact) on a terminal, TabSeparated otherwise, unless
--format or a FORMAT clause says otherwise.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlencode

DEFAULT_CONFIG = "config/collector.yaml"
DEFAULT_ENDPOINT = ("127.0.0.1", 8123)


@dataclass(slots=True)
class Target:
    host: str
    port: int
    store: str
    database: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", nargs="?", help="the query; read from stdin when omitted or '-'")
    parser.add_argument(
        "--format", "-f", help="output format (default: PrettyCompact on a terminal, else TSV)"
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help=f"collector config to find the endpoint and store in (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument("--user", default=os.environ.get("AIRIS_QUERY_USER", ""))
    parser.add_argument(
        "--password",
        default=os.environ.get("AIRIS_QUERY_PASSWORD", ""),
        help="or set AIRIS_QUERY_PASSWORD",
    )
    parser.add_argument("--database", help="database of unqualified table names")


def find_target(paths: list[str]) -> Target:
    """The first clickhouse exporter with an embedded store in the config. Only that
    exporter's section is validated: loading every component would cost seconds."""
    from pydantic import ValidationError

    from exporters.clickhouse.config import ClickHouseConfig
    from otlp import config as config_module
    from otlp.component import ComponentID
    from otlp.errors import ConfigError

    if not paths and os.path.exists(DEFAULT_CONFIG):
        paths = [DEFAULT_CONFIG]
    target = Target(*DEFAULT_ENDPOINT, store="./data/clickhouse", database="otel")
    if not paths:
        return target
    raw = config_module.expand_env(config_module.read_files(paths))
    for key, section in (raw.get("exporters") or {}).items():
        if ComponentID.parse(str(key)).type != "clickhouse":
            continue
        try:
            exporter = ClickHouseConfig.model_validate(section or {})
        except ValidationError as exc:
            message = config_module.format_validation_error(f"exporters.{key}", exc)
            raise ConfigError(message) from None
        if exporter.target.kind != "chdb":
            continue
        target.store = exporter.target.path
        target.database = exporter.query_endpoint.database or exporter.database_name()
        if exporter.query_endpoint.endpoint:
            host, port = exporter.query_endpoint.address()
            # a wildcard listen address is reached over loopback
            target.host = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
            target.port = port
        break
    return target


def _over_http(target: Target, args: argparse.Namespace, sql: str, fmt: str, out: BinaryIO) -> int:
    params = {"database": args.database or target.database, "default_format": fmt}
    host = f"[{target.host}]" if ":" in target.host else target.host
    request = urllib.request.Request(
        f"http://{host}:{target.port}/?{urlencode(params)}", data=sql.encode(), method="POST"
    )
    if args.user or args.password:
        token = base64.b64encode(f"{args.user or 'default'}:{args.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        response = urllib.request.urlopen(request, timeout=3600)
    except urllib.error.HTTPError as exc:
        sys.stderr.write(exc.read().decode(errors="replace"))
        return 1
    with response:
        while chunk := response.read(1 << 16):
            out.write(chunk)
    out.flush()
    return 0


def _direct(target: Target, args: argparse.Namespace, sql: str, fmt: str, out: BinaryIO) -> int:
    from exporters.clickhouse.query_engine import Execution, QueryError, Request, store_location

    store = store_location(target.store)
    if store != ":memory:" and not os.path.isdir(store):
        sys.stderr.write(f"airis query: no store at {store} and no collector answers queries\n")
        return 1
    request = Request(
        sql=sql,
        user="default",
        # the operator who can open the files may change them too
        readonly=0,
        database=args.database or target.database,
        default_format=fmt,
    )
    execution = Execution(store, request)
    try:
        execution.start()
        for chunk in execution.chunks():
            out.write(chunk)
    except QueryError as exc:
        out.flush()
        sys.stderr.write(exc.text("chdb"))
        if "lock" in exc.message.lower() or "EmbeddedServer" in exc.message:
            sys.stderr.write(
                "the store is held by a running collector: enable its query_endpoint\n"
            )
        return 1
    finally:
        execution.close()
    out.flush()
    return 0


def _refused(exc: urllib.error.URLError) -> bool:
    reason = exc.reason
    return isinstance(reason, ConnectionRefusedError | FileNotFoundError) or (
        isinstance(reason, OSError) and reason.errno in (111, 61, 10061)
    )


def run(args: argparse.Namespace, out: BinaryIO | None = None) -> int:
    from otlp.errors import ConfigError

    out = out or sys.stdout.buffer
    sql = args.sql if args.sql not in (None, "-") else sys.stdin.read()
    if not sql.strip():
        sys.stderr.write("airis query: empty query\n")
        return 2
    fmt = args.format or ("PrettyCompact" if sys.stdout.isatty() else "TabSeparated")
    try:
        target = find_target(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"airis: invalid configuration:\n{exc}\n")
        return 1
    try:
        return _over_http(target, args, sql, fmt, out)
    except urllib.error.URLError as exc:
        if not _refused(exc):
            sys.stderr.write(f"airis query: {target.host}:{target.port}: {exc.reason}\n")
            return 1
    except ConnectionRefusedError:
        pass
    return _direct(target, args, sql, fmt, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airis query", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
