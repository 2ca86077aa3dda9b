"""Group commit for the embedded store.

chDB runs one insert at a time (one engine thread per store). Rows that arrive for a table while
an insert runs wait, and the next insert takes all of them at once (up to `max_rows`): the
engine writes fewer, larger parts, and merging parts is most of what it spends its CPU on under
sustained load. Each caller still learns the outcome of the insert that carried its rows, so
retries and partial-failure tracking work per batch as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pyarrow as pa

from otlp.errors import RetryableError

Insert = Callable[[str, str, pa.Table], Awaitable[None]]

# ~100-250 MB of Arrow for realistic spans: big parts, bounded memory
DEFAULT_MAX_ROWS = 262_144


@dataclass(slots=True)
class _Waiting:
    rows: pa.Table
    done: asyncio.Future[None]


class InsertCoalescer:
    def __init__(self, insert: Insert, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self._insert = insert
        self.max_rows = max_rows
        # (database, table) -> rows waiting, oldest first; dict order = order of arrival
        self._waiting: dict[tuple[str, str], list[_Waiting]] = {}
        self._drainer: asyncio.Task[None] | None = None
        self._in_flight: list[_Waiting] = []
        self.inserts = 0  # insert calls made (tests and curiosity)

    async def insert(self, database: str, table: str, rows: pa.Table) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((database, table), []).append(_Waiting(rows, done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        # cancelled while still waiting (the export timed out): the rows are not inserted,
        # so the retry does not duplicate them
        await done

    def _take(self) -> tuple[tuple[str, str], list[_Waiting]]:
        key = next(iter(self._waiting))
        waiting = [w for w in self._waiting.pop(key) if not w.done.done()]
        taken: list[_Waiting] = []
        rows = 0
        for w in waiting:
            fits = not taken or (
                rows + w.rows.num_rows <= self.max_rows and w.rows.schema == taken[0].rows.schema
            )
            if not fits:
                break
            taken.append(w)
            rows += w.rows.num_rows
        rest = waiting[len(taken) :]
        if rest:
            self._waiting[key] = rest  # to the back: other tables get their turn first
        return key, taken

    async def close(self) -> None:
        """Stop; rows still waiting fail with `error` (their batches stay queued)."""
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        for w in [*self._in_flight, *(w for ws in self._waiting.values() for w in ws)]:
            if not w.done.done():
                w.done.set_exception(RetryableError("the exporter is shutting down"))
        self._waiting.clear()

    async def _drain(self) -> None:
        while self._waiting:
            (database, table), taken = self._take()
            if not taken:
                continue
            rows = taken[0].rows if len(taken) == 1 else pa.concat_tables(w.rows for w in taken)
            self._in_flight = taken
            try:
                self.inserts += 1
                await self._insert(database, table, rows)
            except Exception as exc:
                for w in taken:
                    if not w.done.done():
                        w.done.set_exception(exc)
            else:
                for w in taken:
                    if not w.done.done():
                        w.done.set_result(None)
