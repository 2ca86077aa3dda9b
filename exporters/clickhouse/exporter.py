"""The `clickhouse` exporter: creates the contrib exporter's schema and inserts each batch
as Arrow, one insert per ClickHouse table.

One instance serves every pipeline it is named in (traces, metrics, logs); the runtime
calls `export` from several queue workers at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict

import pyarrow as pa

from exporters.clickhouse.client import (
    Connection,
    classify,
    close_connection,
    open_connection,
)
from exporters.clickhouse.coalesce import InsertCoalescer
from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.convert import logs_table, metric_tables, traces_table
from exporters.clickhouse.query_endpoint import QueryServer, serve_queries
from exporters.clickhouse.schema import Schema, ident
from otlp.batch import LOGS_SIGNAL, METRICS_SIGNAL, SIGNALS, TRACES, Batch
from otlp.component import CreateSettings, Exporter, Host
from otlp.errors import PermanentError, RetryableError

log = logging.getLogger("airis.exporter.clickhouse")

# batches with some tables already inserted, so a retry does not insert those again
_PROGRESS_LIMIT = 256
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")


class ClickHouseExporter(Exporter):
    def __init__(self, settings: CreateSettings, config: ClickHouseConfig) -> None:
        self.id = str(settings.id)
        self.config = config
        self.signals = set(settings.signals) or set(SIGNALS)
        self.schema = Schema(config)
        self.database = self.schema.database
        self.conn: Connection | None = None
        self.logs_event_name = True
        self._progress: OrderedDict[int, tuple[Batch, set[str]]] = OrderedDict()
        self.query_server: QueryServer | None = None
        # tenant databases whose schema exists (tenant_database)
        self._tenant_databases: dict[str, asyncio.Future[None]] = {}
        # the embedded engine inserts one at a time: group what waits (see coalesce.py)
        self.coalescer = InsertCoalescer(self._insert) if config.target.kind == "chdb" else None

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        try:
            self.conn = await open_connection(self.config)
        except Exception as exc:
            raise RuntimeError(
                f"exporter {self.id}: cannot open ClickHouse at {self.config.endpoint}: {exc}"
            ) from exc
        if self.config.create_schema:
            for statement in self.schema.ddl(self.signals, self.conn.server_version):
                try:
                    await self.conn.call(self.conn.client.command, statement)
                except Exception as exc:
                    raise RuntimeError(
                        f"exporter {self.id}: creating the schema failed: {exc}\n{statement}"
                    ) from exc
        if LOGS_SIGNAL in self.signals:
            await self._detect_logs_columns()
        if self.config.query_endpoint.endpoint:
            # after the schema exists, so the first query already sees the tables
            try:
                self.query_server = await serve_queries(
                    self.config.query_endpoint, self.config.target.path, self.database
                )
            except OSError as exc:
                raise RuntimeError(
                    f"exporter {self.id}: query_endpoint "
                    f"{self.config.query_endpoint.endpoint}: {exc}"
                ) from exc

    async def _detect_logs_columns(self) -> None:
        """As the Collector does: insert EventName only when the logs table has it."""
        assert self.conn is not None
        query = f"DESC TABLE {ident(self.database)}.{ident(self.schema.logs)}"
        try:
            result = await self.conn.call(self.conn.client.query, query)
            self.logs_event_name = "EventName" in {row[0] for row in result.result_rows}
        except Exception as exc:
            log.error("schema detection failed", extra={"exporter": self.id, "error": str(exc)})
            self.logs_event_name = False

    async def shutdown(self) -> None:
        if self.coalescer is not None:
            await self.coalescer.close()
        server, self.query_server = self.query_server, None
        if server is not None:
            await server.stop()
        conn, self.conn = self.conn, None
        if conn is not None:
            await close_connection(conn)

    # --- data ------------------------------------------------------------------------------
    def tables_for(self, batch: Batch) -> dict[str, pa.Table]:
        """ClickHouse table name -> rows to insert (the conversion, no I/O)."""
        if batch.signal == TRACES:
            return {self.schema.traces: traces_table(batch)}
        if batch.signal == LOGS_SIGNAL:
            return {self.schema.logs: logs_table(batch, self.logs_event_name)}
        if batch.signal == METRICS_SIGNAL:
            return {self.schema.metrics[k]: t for k, t in metric_tables(batch).items()}
        raise PermanentError(f"unknown signal {batch.signal!r}")

    async def export(self, batch: Batch) -> None:
        conn = self.conn
        if conn is None:
            raise RetryableError(f"exporter {self.id} is not started")
        if not batch.item_count():
            return
        try:
            tables = await asyncio.to_thread(self.tables_for, batch)
        except Exception as exc:
            raise PermanentError(f"converting {batch.signal} for ClickHouse failed: {exc}") from exc
        database = await self._database_for(conn, batch)
        key = id(batch)
        entry = self._progress.get(key)
        done = entry[1] if entry is not None and entry[0] is batch else set()
        pending = {name: rows for name, rows in tables.items() if name not in done}
        insert = self.coalescer.insert if self.coalescer is not None else self._insert
        results = await asyncio.gather(
            *(insert(database, name, rows) for name, rows in pending.items()),
            return_exceptions=True,
        )
        failures = []
        for name, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(classify(result, f"insert into {database}.{name}"))
            else:
                done.add(name)
        if not failures:
            self._progress.pop(key, None)
            return
        retryable = [f for f in failures if isinstance(f, RetryableError)]
        if not retryable:
            self._progress.pop(key, None)
            raise failures[0]
        self._progress[key] = (batch, done)
        self._progress.move_to_end(key)
        while len(self._progress) > _PROGRESS_LIMIT:
            self._progress.popitem(last=False)
        raise retryable[0]

    async def _database_for(self, conn: Connection, batch: Batch) -> str:
        """The batch's database: its tenant's (`tenant_database`, schema created on first
        use when `create_schema` is on) or the exporter's."""
        tenant = batch.context.get("tenant") if self.config.tenant_database else None
        if not tenant:
            return self.database
        database = self.config.tenant_database.replace(
            "{tenant}", _NOT_IN_NAME.sub("_", str(tenant))
        )
        if self.config.create_schema:
            ready = self._tenant_databases.get(database)
            if ready is None or (ready.done() and ready.exception() is not None):
                ready = asyncio.ensure_future(self._create_tenant_schema(conn, database))
                self._tenant_databases[database] = ready
            try:
                await asyncio.shield(ready)
            except Exception as exc:
                raise classify(exc, f"creating the schema of {database}") from exc
        return database

    async def _create_tenant_schema(self, conn: Connection, database: str) -> None:
        schema = Schema(self.config.model_copy(update={"database": database}))
        for statement in schema.ddl(self.signals, conn.server_version):
            await conn.call(conn.client.command, statement)
        log.info("Created a tenant's database", extra={"exporter": self.id, "database": database})

    async def _insert(self, database: str, table: str, rows: pa.Table) -> None:
        conn = self.conn
        if conn is None:
            raise RetryableError(f"exporter {self.id} is not started")
        await conn.call(conn.insert_arrow, database, table, rows)
