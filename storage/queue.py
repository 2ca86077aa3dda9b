"""The persistent sending queue: batches in a write-ahead log, handed to the exporter's
consumers oldest first, removed only once the exporter is done with them.

`put` returns once the batch is in the log (fsynced when the storage asks for it): that is
what lets a receiver acknowledge data it has not delivered yet. Records left from a previous
run come first, in their original order, then new data (at least once: a record that was
being exported when the process died is exported again).

Batches written by this process stay in memory too, up to `cache_bytes`, so the usual path
never reads back what it just wrote; beyond that, and for recovered records, consumers read
and decode from the log on the log's reader thread.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass
from functools import partial

from otlp.batch import Batch
from otlp.errors import BackpressureError, PermanentError, RetryableError
from otlp.exporterhelper import QueueDispatch, sized
from storage import codec
from storage.wal import (
    Record,
    RecordTooLargeError,
    RecoveryReport,
    WalError,
    WalFullError,
    WriteAheadLog,
)

log = logging.getLogger("airis.storage.queue")

DEFAULT_CACHE_BYTES = 64 << 20


@dataclass(eq=False, slots=True)
class QueueItem:
    size: int  # in the queue's sizer units
    batch: Batch | None = None
    record: Record | None = None
    cached: int = 0  # bytes of `batch` counted against the cache budget


class PersistentQueue(QueueDispatch):
    # after stop_dispatch consumers get nothing more: what is left stays for the next start
    drains_after_stop = False

    def __init__(
        self,
        wal: WriteAheadLog,
        *,
        sizer: str = "requests",
        capacity: int = 1000,
        block_on_overflow: bool = False,
        compression: str = "none",
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        name: str = "",
    ) -> None:
        super().__init__()
        self.wal = wal
        self.sizer = sizer
        self.capacity = capacity
        self.block_on_overflow = block_on_overflow
        self.compression = compression
        self.cache_bytes = cache_bytes
        self.name = name or wal.name
        self._cached = 0
        self.recovery: RecoveryReport | None = None

    # --- lifecycle -----------------------------------------------------------------------
    async def open(self) -> RecoveryReport:
        report = await self.wal.open_async()
        for record in self.wal.pending_records():
            size = self._record_size(record)
            self._ready.append(QueueItem(size, record=record))
            self.used += size
        if self._ready:
            self._not_empty.set()
        self.recovery = report
        return report

    async def close(self) -> None:
        self.stop_dispatch()
        await self.wal.close()

    # --- producer side -------------------------------------------------------------------
    def _record_size(self, record: Record) -> int:
        if self.sizer == "items":
            return record.meta
        if self.sizer == "bytes":
            return record.length
        return 1

    async def put(self, batch: Batch) -> None:
        size = sized(batch, self.sizer)
        await self._room_for(size)
        if self._closed:
            raise BackpressureError(f"sending queue {self.name} is shutting down", retry_after=1.0)
        # reserve the room before writing, so concurrent puts cannot overshoot the capacity
        self.used += size
        append = asyncio.ensure_future(
            self.wal.append(partial(codec.encode, batch, self.compression), batch.item_count())
        )
        try:
            record = await asyncio.shield(append)
        except asyncio.CancelledError:
            # the caller gave up (client gone), the write goes on: once in the log, the
            # batch is delivered like any other (at least once)
            append.add_done_callback(partial(self._late, batch, size))
            raise
        except Exception as exc:
            self._unreserve(size)
            raise _refusal(self.name, exc) from exc
        self._enqueue(batch, size, record)

    def _unreserve(self, size: int) -> None:
        self.used -= size
        self._space.set()

    def _late(self, batch: Batch, size: int, append: asyncio.Future[Record]) -> None:
        if append.cancelled() or append.exception() is not None:
            self._unreserve(size)
        else:
            self._enqueue(batch, size, append.result())

    def _enqueue(self, batch: Batch, size: int, record: Record) -> None:
        item = QueueItem(size, record=record)
        nbytes = batch.nbytes()
        if self._cached + nbytes <= self.cache_bytes:
            item.batch = batch
            item.cached = nbytes
            self._cached += nbytes
        self._ready.append(item)
        self._not_empty.set()

    # --- consumer side: get/get_nowait/wait from QueueDispatch --------------------------
    async def load(self, item: QueueItem) -> Batch:
        if item.batch is not None:
            return item.batch
        assert item.record is not None
        return await self.wal.read(item.record, codec.decode)

    def done(self, item: QueueItem, remove: bool) -> None:
        """The consumer is finished with `item`: `remove` it for good (delivered, or dropped
        as undeliverable), or leave it in the log for the next start (shutdown)."""
        self._cached -= item.cached
        item.cached = 0
        item.batch = None
        if remove and item.record is not None:
            self.wal.ack(item.record)


def _refusal(name: str, exc: BaseException) -> Exception:
    """What the client hears when the log would not take a batch."""
    if isinstance(exc, WalFullError):
        return BackpressureError(f"persistent queue {name} is full: {exc}", retry_after=1.0)
    if isinstance(exc, RecordTooLargeError):
        return PermanentError(f"persistent queue {name}: {exc}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackpressureError(f"persistent queue {name}: disk full: {exc}", retry_after=5.0)
    if isinstance(exc, OSError | WalError):
        return RetryableError(f"persistent queue {name}: write failed: {exc}")
    if isinstance(exc, Exception):
        return exc
    return RetryableError(f"persistent queue {name}: write interrupted")
