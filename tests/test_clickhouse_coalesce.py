"""Group commit for the embedded store (exporters/clickhouse/coalesce.py): rows that wait while
an insert runs go in together with the next one, each caller learns its own outcome, and a
caller that gave up is not inserted. The insert function here records what it is given: the
checks are about which rows travel together, which a real store cannot tell afterwards (the
embedded store itself is exercised through this path by tests/test_clickhouse_exporter.py)."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest

from exporters.clickhouse.coalesce import InsertCoalescer
from otlp.errors import RetryableError


class Store:
    def __init__(self) -> None:
        self.inserts: list[tuple[str, str, list[int]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def insert(self, database: str, table: str, rows: pa.Table) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.inserts.append((database, table, rows.column("v").to_pylist()))


def rows(*values: int) -> pa.Table:
    return pa.table({"v": pa.array(values, pa.int64())})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_rows_waiting_behind_an_insert_go_in_together() -> None:
    store = Store()
    coalescer = InsertCoalescer(store.insert)
    store.gate.clear()
    first = asyncio.ensure_future(coalescer.insert("db", "t", rows(1)))
    await settle()  # the first insert is running (held at the gate)
    waiting = [asyncio.ensure_future(coalescer.insert("db", "t", rows(i))) for i in (2, 3, 4)]
    other_table = asyncio.ensure_future(coalescer.insert("db", "u", rows(9)))
    await settle()
    store.gate.set()
    await asyncio.gather(first, *waiting, other_table)
    assert store.inserts == [("db", "t", [1]), ("db", "t", [2, 3, 4]), ("db", "u", [9])]


async def test_a_failed_insert_fails_every_caller_it_carried() -> None:
    store = Store()
    coalescer = InsertCoalescer(store.insert)
    store.gate.clear()
    store.fail = RetryableError("store is down")
    calls = [asyncio.ensure_future(coalescer.insert("db", "t", rows(i))) for i in (1, 2)]
    await settle()
    store.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RetryableError) for r in results)
    store.fail = None
    await coalescer.insert("db", "t", rows(3))  # the next insert works again
    assert store.inserts == [("db", "t", [3])]


async def test_a_caller_that_gave_up_while_waiting_is_not_inserted() -> None:
    store = Store()
    coalescer = InsertCoalescer(store.insert)
    store.gate.clear()
    first = asyncio.ensure_future(coalescer.insert("db", "t", rows(1)))
    await settle()
    abandoned = asyncio.ensure_future(coalescer.insert("db", "t", rows(2)))
    kept = asyncio.ensure_future(coalescer.insert("db", "t", rows(3)))
    await settle()
    abandoned.cancel()  # e.g. the export timed out: its retry will bring the rows again
    store.gate.set()
    await asyncio.gather(first, kept)
    assert store.inserts == [("db", "t", [1]), ("db", "t", [3])]


async def test_groups_respect_max_rows_and_schema() -> None:
    store = Store()
    coalescer = InsertCoalescer(store.insert, max_rows=4)
    store.gate.clear()
    first = asyncio.ensure_future(coalescer.insert("db", "t", rows(0)))
    await settle()
    calls = [
        coalescer.insert("db", "t", rows(1, 2)),
        coalescer.insert("db", "t", rows(3, 4)),
        coalescer.insert("db", "t", rows(5)),  # over max_rows: next insert
        coalescer.insert("db", "t", pa.table({"v": pa.array([6], pa.int32())})),  # other schema
    ]
    tasks = [asyncio.ensure_future(c) for c in calls]
    await settle()
    store.gate.set()
    await asyncio.gather(first, *tasks)
    assert [values for _, _, values in store.inserts] == [[0], [1, 2, 3, 4], [5], [6]]


async def test_close_fails_what_still_waits() -> None:
    store = Store()
    coalescer = InsertCoalescer(store.insert)
    store.gate.clear()
    first = asyncio.ensure_future(coalescer.insert("db", "t", rows(1)))
    await settle()
    waiting = asyncio.ensure_future(coalescer.insert("db", "t", rows(2)))
    await settle()
    await coalescer.close()
    for call in (first, waiting):  # the one in flight too: nothing is left hanging
        with pytest.raises(RetryableError, match="shutting down"):
            await call
    assert store.inserts == []
