"""DDL for the exporter's tables, rendered from the .sql templates next to this module.

The templates reproduce the OTel Collector contrib clickhouseexporter v0.165.0 default
(Map-attribute) schema; `metrics_rollup_*.sql` are AIRIS's per-minute metric rollup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

from exporters.clickhouse.config import DEFAULT_DATABASE, ClickHouseConfig

SQL_DIR = Path(__file__).with_name("sql")
# ClickHouse version from which the logs table gets text (full-text) indexes, as the
# exporter decides with proto.CheckMinVersion(26.2)
FULL_TEXT_SEARCH_VERSION = (26, 2)
ROLLUP_SOURCES = ("gauge", "sum")


@cache
def _template(name: str) -> Template:
    lines = (SQL_DIR / name).read_text().splitlines()
    return Template("\n".join(line for line in lines if not line.startswith("--")))


def _index_block(name: str) -> str:
    return (SQL_DIR / name).read_text().rstrip("\n")


def ident(name: str) -> str:
    """A ClickHouse identifier in backticks (the exporter's `ident` template function)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def literal(value: str) -> str:
    """A ClickHouse string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ttl_expr(seconds: float, time_field: str) -> str:
    """internal.GenerateTTLExpr: the largest whole unit among days, hours, minutes, seconds."""
    ttl = int(seconds)
    if ttl <= 0:
        return ""
    for unit, size in (("Day", 86400), ("Hour", 3600), ("Minute", 60)):
        if ttl % size == 0:
            return f"TTL {time_field} + toInterval{unit}({ttl // size})"
    return f"TTL {time_field} + toIntervalSecond({ttl})"


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def _aggregating(engine: str) -> str:
    """The AggregatingMergeTree flavour of the configured MergeTree-family engine
    (ReplicatedMergeTree(...) -> ReplicatedAggregatingMergeTree(...))."""
    name, paren, params = engine.partition("(")
    if name.endswith("MergeTree") and not name.endswith("AggregatingMergeTree"):
        name = name[: -len("MergeTree")] + "AggregatingMergeTree"
    return f"{name}{paren}{params}"


@dataclass(frozen=True, slots=True)
class Statement:
    signal: str
    description: str
    sql: str


class Schema:
    """Names and DDL derived from one config."""

    def __init__(self, config: ClickHouseConfig) -> None:
        self.config = config
        self.database = config.database_name()
        self.traces = config.traces_table_name
        self.traces_id_ts = f"{self.traces}_trace_id_ts"
        self.traces_id_ts_mv = f"{self.traces}_trace_id_ts_mv"
        self.logs = config.logs_table_name
        self.metrics = {
            kind: config.metric_table(kind)
            for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary")
        }
        self.rollup = config.metrics_rollup.table_name if config.metrics_rollup.enabled else ""

    # --- pieces ------------------------------------------------------------------------
    def engine(self) -> str:
        engine = self.config.table_engine
        if not engine.name:
            return "MergeTree()"
        return f"{engine.name}({engine.params})"

    def cluster(self) -> str:
        if not self.config.cluster_name:
            return ""
        return "ON CLUSTER `" + self.config.cluster_name.replace("`", "``") + "`"

    def table_cluster(self) -> str:
        # a Replicated database replicates table DDL itself and rejects ON CLUSTER
        if self.config.database_engine.name == "Replicated" and self.database != DEFAULT_DATABASE:
            return ""
        return self.cluster()

    def database_engine(self) -> str:
        engine = self.config.database_engine
        if not engine.name:
            return ""
        if not engine.params:
            return f"ENGINE = {engine.name}"
        return f"ENGINE = {engine.name}({engine.params})"

    def _render(self, template: str, **values: str) -> str:
        values.setdefault("database", ident(self.database))
        values.setdefault("cluster", self.table_cluster())
        values.setdefault("engine", self.engine())
        return _template(template).substitute(values).strip() + "\n"

    # --- statements --------------------------------------------------------------------
    def create_database(self) -> str | None:
        if self.database == DEFAULT_DATABASE:
            return None
        parts = ["CREATE DATABASE IF NOT EXISTS", ident(self.database)]
        parts += [p for p in (self.cluster(), self.database_engine()) if p]
        return " ".join(parts)

    def traces_ddl(self) -> list[Statement]:
        ttl = self.config.ttl
        return [
            Statement(
                "traces",
                self.traces,
                self._render(
                    "traces_table.sql",
                    table=ident(self.traces),
                    ttl=ttl_expr(ttl, "toDateTime(Timestamp)"),
                ),
            ),
            Statement(
                "traces",
                self.traces_id_ts,
                self._render(
                    "traces_id_ts_table.sql",
                    table=ident(self.traces_id_ts),
                    ttl=ttl_expr(ttl, "toDateTime(Start)"),
                ),
            ),
            Statement(
                "traces",
                self.traces_id_ts_mv,
                self._render(
                    "traces_id_ts_mv.sql",
                    view=ident(self.traces_id_ts_mv),
                    target=ident(self.traces_id_ts),
                    source=ident(self.traces),
                ),
            ),
        ]

    def logs_ddl(self, server_version: str) -> list[Statement]:
        text_indexes = version_tuple(server_version)[:2] >= FULL_TEXT_SEARCH_VERSION
        indexes = "logs_indexes_text.sql" if text_indexes else "logs_indexes_bloom.sql"
        return [
            Statement(
                "logs",
                self.logs,
                self._render(
                    "logs_table.sql",
                    table=ident(self.logs),
                    ttl=ttl_expr(self.config.ttl, "toDateTime(Timestamp)"),
                    indexes=_index_block(indexes),
                ),
            )
        ]

    def metrics_ddl(self) -> list[Statement]:
        ttl = ttl_expr(self.config.ttl, "toDateTime(TimeUnix)")
        files = {
            "gauge": "metrics_gauge_table.sql",
            "sum": "metrics_sum_table.sql",
            "histogram": "metrics_histogram_table.sql",
            "exponential_histogram": "metrics_exp_histogram_table.sql",
            "summary": "metrics_summary_table.sql",
        }
        statements = [
            Statement("metrics", table, self._render(files[kind], table=ident(table), ttl=ttl))
            for kind, table in self.metrics.items()
        ]
        if self.rollup:
            statements += self.rollup_ddl()
        return statements

    def rollup_ddl(self) -> list[Statement]:
        rollup = self.config.metrics_rollup
        ttl_seconds = self.config.ttl if rollup.ttl is None else rollup.ttl
        statements = [
            Statement(
                "metrics",
                self.rollup,
                self._render(
                    "metrics_rollup_table.sql",
                    table=ident(self.rollup),
                    engine=_aggregating(self.engine()),
                    ttl=ttl_expr(ttl_seconds, "Minute"),
                ),
            )
        ]
        for kind in ROLLUP_SOURCES:
            view = f"{self.rollup}_{kind}_mv"
            statements.append(
                Statement(
                    "metrics",
                    view,
                    self._render(
                        "metrics_rollup_mv.sql",
                        view=ident(view),
                        target=ident(self.rollup),
                        source=ident(self.metrics[kind]),
                        metric_type=kind,
                    ),
                )
            )
        return statements

    def ddl(self, signals: set[str], server_version: str) -> list[str]:
        """Every statement for the given signals, database first."""
        statements = [s for s in (self.create_database(),) if s]
        if "traces" in signals:
            statements += [s.sql for s in self.traces_ddl()]
        if "logs" in signals:
            statements += [s.sql for s in self.logs_ddl(server_version)]
        if "metrics" in signals:
            statements += [s.sql for s in self.metrics_ddl()]
        return statements
