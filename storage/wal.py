"""A segmented write-ahead log of opaque records with out-of-order acknowledgement.

It backs the persistent sending queue: the queue appends a record per batch before the
client is answered, hands records to its consumers, and acknowledges each one once the
exporter is done with it. What is acknowledged is never handed out again, what is not is
handed out again after a restart (at least once).

On disk, in the log's own directory:

* ``<first seq>.wal`` segments, appended to until they reach ``segment_size``. A segment
  starts with a 16-byte header (magic, format version); each record is a 20-byte header
  (payload length, CRC-32 of everything after the CRC field, sequence number, a 32-bit
  ``meta`` value for the caller) followed by the payload. Sequence numbers grow by one per
  record across segments.
* ``acks`` — the consumer side: a header with a watermark (every record at or below it is
  acknowledged) and then one 12-byte entry (seq, CRC-32) per acknowledgement. Entries are
  appended with one write each and no fsync: losing some (an OS crash, not a process crash)
  only means those records are delivered again. The file is rewritten (temp + rename) when
  it grows, keeping only what still matters.
* ``LOCK`` — held with flock while the log is open, so two processes never share a log.

A segment is reclaimed as soon as none of its records is waiting (segment by segment, no
compaction pass), and the total size of the segments is capped: an append that would pass
``max_bytes`` fails with WalFullError and nothing is written.

Reclaimed segments are recycled: up to ``MAX_SPARES`` are kept as ``*.spare`` files, zeroed on
the writer thread while it is idle, and renamed into place when a new segment is needed.
Writing over pages the OS already has is far cheaper than growing a new file (measured here:
6 MiB into a fresh file 35 ms, over cached pages of a recycled one 0.9 ms). Zeroing is what
keeps recovery exact: after the last record of a segment there are only zeros, so anything
else there is damage, never a leftover of the file's previous life.

Recovery (``open``) reads every segment and checks every record. A torn or corrupt record
ends its segment: the file is truncated there, the loss is logged as a warning and counted
in the report, and the log carries on — a damaged tail is never a reason not to start.

Appends run on one writer thread, in order; concurrent appends that arrive while it is busy
are written together and share one fdatasync (group commit), so a slow disk costs latency,
not throughput. Reads run on a second thread so they never wait behind an fsync.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("airis.storage.wal")
T = TypeVar("T")

SEGMENT_MAGIC = b"AIRISWAL"
ACKS_MAGIC = b"AIRISACK"
FORMAT_VERSION = 1
SEGMENT_HEADER = struct.Struct("<8sII")  # magic, version, reserved
RECORD_HEADER = struct.Struct("<IIQI")  # payload length, crc32, seq, meta
_CRC_COVERS = struct.Struct("<IQI")  # the header fields after the crc: length, seq, meta
ACKS_HEADER = struct.Struct("<8sIQI")  # magic, version, watermark, crc32 of the rest
ACK_ENTRY = struct.Struct("<QI")  # seq, crc32(seq)
SEGMENT_SUFFIX = ".wal"
# no record is larger (a header whose length field says more is garbage)
MAX_RECORD_BYTES = 1 << 30
SPARE_SUFFIX = ".spare"
# the acks file is rewritten once it has this many bytes of entries
ACKS_COMPACT_BYTES = 1 << 20
# reclaimed segments kept for reuse
MAX_SPARES = 2
_ZEROS = bytes(1 << 20)


class WalError(Exception):
    """The log cannot be used (locked by another process, not writable, closed)."""


class WalFullError(WalError):
    """Appending would take the log past its size cap; nothing was written."""


class RecordTooLargeError(WalError):
    """A single record larger than the log may ever hold."""


@dataclass(frozen=True, slots=True)
class WalOptions:
    segment_size: int = 16 << 20
    # cap on the bytes of all segments together; 0: no cap
    max_bytes: int = 0
    # fdatasync after every group of appends, before they are reported written
    fsync: bool = False
    # without fsync: fdatasync in the background this often (seconds); 0: never
    fsync_interval: float = 0.0
    # how long to wait for another process's lock on the directory
    lock_timeout: float = 1.0


@dataclass(eq=False, slots=True)
class Segment:
    first_seq: int
    path: Path
    size: int = 0
    last_seq: int = 0
    # records written and not acknowledged
    pending: int = 0


@dataclass(eq=False, slots=True)
class Record:
    seq: int
    segment: Segment
    offset: int  # of the record header in the segment file
    length: int  # payload bytes
    meta: int

    @property
    def size(self) -> int:
        return RECORD_HEADER.size + self.length


@dataclass(slots=True)
class RecoveryReport:
    """What `open` found: records to deliver again, and any damage it repaired."""

    records: int = 0
    bytes: int = 0
    segments: int = 0
    acknowledged_skipped: int = 0
    truncated_segments: list[str] = field(default_factory=list)
    discarded_bytes: int = 0
    quarantined_files: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return bool(self.truncated_segments or self.quarantined_files)


def _record_crc(length: int, seq: int, meta: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_CRC_COVERS.pack(length, seq, meta)))


def _ack_crc(seq: int) -> int:
    return zlib.crc32(seq.to_bytes(8, "little"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, parts: list[bytes | memoryview], offset: int | None = None) -> None:
    """Write every byte of `parts`, at `offset` (pwritev) or at the file position."""
    while parts:
        if offset is None:
            written = os.writev(fd, parts)
        else:
            written = os.pwritev(fd, parts, offset)
            offset += written
        # a short write (rare: signals, full disks) leaves a tail of the parts to write
        while parts and written >= len(parts[0]):
            written -= len(parts[0])
            parts = parts[1:]
        if parts and written:
            parts = [memoryview(parts[0])[written:], *parts[1:]]


def _zero_file(path: Path, limit: int) -> None:
    """Overwrite what `path` holds with zeros, cutting it to `limit` bytes at most (its pages
    stay allocated and cached, which is what makes the next use cheap)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            os.ftruncate(fd, limit)
            size = limit
        pos = 0
        while pos < size:
            n = min(len(_ZEROS), size - pos)
            _write_all(fd, [memoryview(_ZEROS)[:n]], pos)
            pos += n
    finally:
        os.close(fd)


@dataclass(eq=False, slots=True)
class _Spare:
    path: Path
    zeroed: bool = False


@dataclass(slots=True)
class _Append:
    payload: Callable[[], bytes | memoryview] | bytes | memoryview
    meta: int
    future: asyncio.Future[Record]


class WriteAheadLog:
    def __init__(self, directory: Path | str, options: WalOptions | None = None) -> None:
        self.directory = Path(directory)
        self.options = options or WalOptions()
        self.name = self.directory.name
        self._lock = threading.Lock()  # segments, pending counts, disk bytes
        self._segments: list[Segment] = []
        self._active: Segment | None = None
        self._active_fd = -1
        self._read_fds: dict[Path, int] = {}
        self._next_seq = 1
        self._disk_bytes = 0
        self._pending: dict[int, Record] = {}
        self._acked: set[int] = set()  # acknowledged seqs still inside a live segment
        self._acks_fd = -1
        self._acks_bytes = 0
        self._lock_fd = -1
        self._spares: list[_Spare] = []
        self._spare_serial = 0
        self._queue: list[_Append] = []
        self._flusher: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None
        self._dirty = False
        self._closed = True
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"wal-write-{self.name}")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"wal-read-{self.name}")
        # statistics for self-metrics and reports
        self.fsyncs = 0
        self.appended_records = 0
        self.appended_bytes = 0

    # --- state ---------------------------------------------------------------------------
    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def pending_records(self) -> list[Record]:
        """Records not acknowledged, oldest first (after `open`: what to deliver again)."""
        return sorted(self._pending.values(), key=lambda r: r.seq)

    # --- open / recovery -----------------------------------------------------------------
    async def open_async(self) -> RecoveryReport:
        """`open` on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, self.open)

    def open(self) -> RecoveryReport:
        """Lock the directory, check every record, repair a damaged tail. Blocking: call it
        from a thread (the queue does) — it reads the whole log once."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            report = self._recover()
        except BaseException:
            self._release_lock()
            raise
        self._closed = False
        if self._spares:
            self._writer.submit(self._zero_spares)
        return report

    def _take_lock(self) -> None:
        path = self.directory / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.options.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WalError(
                        f"{self.directory} is in use by another process (lock not released "
                        f"within {self.options.lock_timeout:g}s)"
                    ) from None
                time.sleep(0.05)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = -1

    def _recover(self) -> RecoveryReport:
        report = RecoveryReport()
        for stale in self.directory.glob("*.tmp"):
            stale.unlink(missing_ok=True)
        for i, spare in enumerate(sorted(self.directory.glob(f"*{SPARE_SUFFIX}"))):
            if i < MAX_SPARES:
                self._spares.append(_Spare(spare))  # zeroed again: a crash may have cut that
            else:
                spare.unlink()
        self._spare_serial = len(self._spares)
        watermark, acked = self._load_acks()
        segments: list[Segment] = []
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            try:
                first_seq = int(path.stem)
            except ValueError:
                continue
            segment = self._scan_segment(path, first_seq, watermark, acked, report)
            if segment is not None:
                segments.append(segment)
        segments.sort(key=lambda s: s.first_seq)
        last_seq = max([watermark, *(s.last_seq for s in segments), *acked], default=0)
        self._next_seq = last_seq + 1
        # the newest segment keeps taking appends if it has room; any other segment with
        # nothing left to deliver is reclaimed now
        active = None
        if segments and segments[-1].size < self.options.segment_size:
            active = segments[-1]
        keep = []
        with self._lock:
            for segment in segments:
                self._segments.append(segment)
                self._disk_bytes += segment.size
                if segment.pending == 0 and segment is not active:
                    self._drop_segment(segment)
                else:
                    keep.append(segment)
            self._segments = keep
            self._disk_bytes = sum(s.size for s in keep)
            self._acked = {
                seq for seq in acked if any(s.first_seq <= seq <= s.last_seq for s in keep)
            }
            if active is not None:
                self._active = active
                self._active_fd = os.open(active.path, os.O_WRONLY)
            report.segments = len(keep)
            self._rewrite_acks()
        if report.damaged:
            log.warning(
                "Write-ahead log was damaged; the torn or corrupt tail was truncated",
                extra={
                    "wal": str(self.directory),
                    "truncated_segments": report.truncated_segments,
                    "discarded_bytes": report.discarded_bytes,
                    "quarantined": report.quarantined_files,
                    "recovered_records": report.records,
                },
            )
        return report

    def _scan_segment(
        self,
        path: Path,
        first_seq: int,
        watermark: int,
        acked: set[int],
        report: RecoveryReport,
    ) -> Segment | None:
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < SEGMENT_HEADER.size or not any(data[: SEGMENT_HEADER.size]):
            # created, header not (fully) written: a crash right after rotation
            if any(data[: SEGMENT_HEADER.size]):
                report.truncated_segments.append(path.name)
                report.discarded_bytes += len(data)
            path.unlink()
            return None
        magic, version, _ = SEGMENT_HEADER.unpack_from(data)
        if magic != SEGMENT_MAGIC or version != FORMAT_VERSION:
            # not ours or not this version: keep it aside for a human, never delete it
            target = path.with_suffix(".corrupt")
            os.replace(path, target)
            report.quarantined_files.append(target.name)
            return None
        segment = Segment(first_seq, path, size=SEGMENT_HEADER.size, last_seq=first_seq - 1)
        pos = SEGMENT_HEADER.size
        view = memoryview(data)
        prev_seq = first_seq - 1
        while pos < len(data):
            good = False
            if pos + RECORD_HEADER.size <= len(data):
                length, crc, seq, meta = RECORD_HEADER.unpack_from(data, pos)
                end = pos + RECORD_HEADER.size + length
                if (
                    length <= MAX_RECORD_BYTES
                    and end <= len(data)
                    and seq > prev_seq
                    and _record_crc(length, seq, meta, view[pos + RECORD_HEADER.size : end]) == crc
                ):
                    good = True
            if not good:
                break
            if seq > watermark and seq not in acked:
                self._pending[seq] = Record(seq, segment, pos, length, meta)
                segment.pending += 1
                report.records += 1
                report.bytes += length
            else:
                report.acknowledged_skipped += 1
            prev_seq = seq
            pos = end
        segment.size = pos
        segment.last_seq = prev_seq
        # zeros after the last record are the unused end of a recycled segment
        if pos < len(data) and data.count(0, pos) != len(data) - pos:
            report.truncated_segments.append(path.name)
            report.discarded_bytes += len(data) - pos
            with open(path, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        return segment

    def _load_acks(self) -> tuple[int, set[int]]:
        path = self.directory / "acks"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return 0, set()
        if len(data) < ACKS_HEADER.size:
            return 0, set()
        magic, version, watermark, crc = ACKS_HEADER.unpack_from(data)
        if (
            magic != ACKS_MAGIC
            or version != FORMAT_VERSION
            or crc != zlib.crc32(watermark.to_bytes(8, "little"))
        ):
            # unreadable consumer state: deliver everything still in the log again
            log.warning(
                "Write-ahead log acknowledgements unreadable; records will be delivered again",
                extra={"wal": str(self.directory)},
            )
            return 0, set()
        acked = set()
        pos = ACKS_HEADER.size
        while pos + ACK_ENTRY.size <= len(data):
            seq, entry_crc = ACK_ENTRY.unpack_from(data, pos)
            if entry_crc != _ack_crc(seq):
                break  # a torn tail entry: those records are simply delivered again
            acked.add(seq)
            pos += ACK_ENTRY.size
        return watermark, acked

    def _rewrite_acks(self) -> None:
        """Replace the acks file by the watermark and the acknowledgements that still
        matter (those above it, in live segments). Called with the lock held."""
        watermark = (min(self._pending) - 1) if self._pending else self._next_seq - 1
        self._acked = {seq for seq in self._acked if seq > watermark}
        body = bytearray(
            ACKS_HEADER.pack(
                ACKS_MAGIC,
                FORMAT_VERSION,
                watermark,
                zlib.crc32(watermark.to_bytes(8, "little")),
            )
        )
        for seq in sorted(self._acked):
            body += ACK_ENTRY.pack(seq, _ack_crc(seq))
        tmp = self.directory / "acks.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, [bytes(body)])
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / "acks")
        if self._acks_fd >= 0:
            os.close(self._acks_fd)
        self._acks_fd = os.open(self.directory / "acks", os.O_WRONLY | os.O_APPEND)
        self._acks_bytes = len(body) - ACKS_HEADER.size

    # --- appends -------------------------------------------------------------------------
    async def append(
        self, payload: Callable[[], bytes | memoryview] | bytes | memoryview, meta: int = 0
    ) -> Record:
        """Write one record; returns once it is in the file (and fsynced, with `fsync`).

        `payload` may be a callable producing the bytes: it then runs on the writer thread,
        keeping serialization off the event loop.
        """
        if self._closed:
            raise WalError(f"write-ahead log {self.directory} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Record] = loop.create_future()
        self._queue.append(_Append(payload, meta, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        if self.options.fsync_interval > 0 and not self.options.fsync and self._background is None:
            self._background = asyncio.ensure_future(self._periodic_fsync())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            group, self._queue = self._queue, []
            try:
                results = await loop.run_in_executor(self._writer, self._write_group, group)
            except BaseException as exc:  # the whole group failed (e.g. the fsync)
                error = exc if isinstance(exc, Exception) else WalError(str(exc))
                results = [error] * len(group)
            for item, result in zip(group, results, strict=True):
                if item.future.done():
                    continue  # the caller went away; its record (if written) stays pending
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    def _write_group(self, group: list[_Append]) -> list[Record | Exception]:
        results: list[Record | Exception] = []
        wrote = False
        for item in group:
            try:
                payload = item.payload() if callable(item.payload) else item.payload
                results.append(self._write_one(payload, item.meta))
                wrote = True
            except Exception as exc:
                results.append(exc)
        if wrote:
            if self.options.fsync:
                assert self._active_fd >= 0
                os.fdatasync(self._active_fd)
                self.fsyncs += 1
            else:
                self._dirty = True
        return results

    def _write_one(self, payload: bytes | memoryview, meta: int) -> Record:
        length = len(payload)
        size = RECORD_HEADER.size + length
        cap = self.options.max_bytes
        if length > MAX_RECORD_BYTES or (cap and size + SEGMENT_HEADER.size > cap):
            raise RecordTooLargeError(
                f"record of {length} bytes exceeds what the queue may hold ({cap} bytes)"
            )
        with self._lock:
            active = self._active
            rotate = active is None or (
                active.size + size > self.options.segment_size and active.size > SEGMENT_HEADER.size
            )
            if cap:
                # a segment holding only delivered records goes away when it stops being active
                freed = active.size if active is not None and active.pending == 0 else 0
                if not rotate and freed > SEGMENT_HEADER.size and self._disk_bytes + size > cap:
                    rotate = True
                after = self._disk_bytes + size
                if rotate:
                    after += SEGMENT_HEADER.size - freed
                if after > cap:
                    raise WalFullError(
                        f"write-ahead log {self.name} is full ({self._disk_bytes} of {cap} bytes)"
                    )
            if rotate:
                self._rotate()
                active = self._active
            assert active is not None
            seq = self._next_seq
            offset = active.size
            fd = self._active_fd
        header = RECORD_HEADER.pack(length, _record_crc(length, seq, meta, payload), seq, meta)
        try:
            _write_all(fd, [header, payload], offset)
        except BaseException:
            # a partial record (a full disk) must not sit in front of the next one
            os.ftruncate(fd, offset)
            raise
        record = Record(seq, active, offset, length, meta)
        with self._lock:
            self._next_seq = seq + 1
            active.size += size
            active.last_seq = seq
            active.pending += 1
            self._disk_bytes += size
            self._pending[seq] = record
        self.appended_records += 1
        self.appended_bytes += size
        return record

    def _rotate(self) -> None:
        """Start a new segment (called on the writer thread with the lock held): a zeroed
        spare renamed into place, else a new file."""
        old = self._active
        if old is not None:
            if self._dirty and self.options.fsync_interval > 0:
                # the background fsync would not see this file again
                os.fdatasync(self._active_fd)
                self.fsyncs += 1
                self._dirty = False
            os.close(self._active_fd)
            self._active_fd = -1
        path = self.directory / f"{self._next_seq:020d}{SEGMENT_SUFFIX}"
        header = SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION, 0)
        spare = self._spares.pop(0) if self._spares else None
        if spare is not None:
            if not spare.zeroed:
                _zero_file(spare.path, self.options.segment_size)
            source = spare.path
            fd = os.open(source, os.O_WRONLY)
        else:
            source = path
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, [header], 0)
            if self.options.fsync:
                os.fdatasync(fd)
            if source != path:
                os.replace(source, path)
            if self.options.fsync:
                _fsync_dir(self.directory)  # the new name must survive a power loss too
        except BaseException:
            os.close(fd)
            source.unlink(missing_ok=True)
            raise
        segment = Segment(self._next_seq, path, size=SEGMENT_HEADER.size)
        segment.last_seq = self._next_seq - 1
        self._segments.append(segment)
        self._disk_bytes += SEGMENT_HEADER.size
        self._active = segment
        self._active_fd = fd
        if old is not None and old.pending == 0:
            self._drop_segment(old)

    def _zero_spares(self) -> None:
        """Zero the spares not zeroed yet (on the writer thread, between appends)."""
        for spare in list(self._spares):
            if not spare.zeroed and spare.path.exists():
                _zero_file(spare.path, self.options.segment_size)
                spare.zeroed = True

    async def _periodic_fsync(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(self.options.fsync_interval)
            if self._dirty and not self._closed:
                await loop.run_in_executor(self._writer, self._sync_now)

    def _sync_now(self) -> None:
        if self._active_fd >= 0 and self._dirty:
            self._dirty = False
            os.fdatasync(self._active_fd)
            self.fsyncs += 1

    # --- reads ---------------------------------------------------------------------------
    async def read(self, record: Record, transform: Callable[[bytes], T] | None = None) -> T:
        """The payload of a pending record, passed through `transform` (e.g. a decoder) on
        the reader thread when one is given."""
        loop = asyncio.get_running_loop()

        def work() -> Any:
            data = self.read_sync(record)
            return transform(data) if transform is not None else data

        return await loop.run_in_executor(self._reader, work)

    def read_sync(self, record: Record) -> bytes:
        """The payload of a pending record, checked against its CRC again (the disk may have
        changed under us since it was written)."""
        path = record.segment.path
        with self._lock:
            fd = self._read_fds.get(path)
            if fd is None:
                fd = os.open(path, os.O_RDONLY)
                self._read_fds[path] = fd
        data = os.pread(fd, record.size, record.offset)
        if len(data) != record.size:
            raise WalError(f"record {record.seq} in {path.name} is cut short")
        length, crc, seq, meta = RECORD_HEADER.unpack_from(data)
        payload = memoryview(data)[RECORD_HEADER.size :]
        if (
            seq != record.seq
            or length != record.length
            or crc != _record_crc(length, seq, meta, payload)
        ):
            raise WalError(f"record {record.seq} in {path.name} fails its checksum")
        return bytes(payload)

    # --- consumer side ---------------------------------------------------------------------
    def ack(self, record: Record) -> None:
        """The record is done with (delivered, or dropped for good): never hand it out again.
        Frees its segment once nothing else in it is waiting."""
        segment = record.segment
        with self._lock:
            if self._pending.pop(record.seq, None) is None:
                return
            segment.pending -= 1
            if segment.pending == 0 and segment is not self._active:
                # the whole segment is done with: deleting it is the acknowledgement
                self._drop_segment(segment)
            else:
                self._acked.add(record.seq)
                if self._acks_fd >= 0:
                    os.write(self._acks_fd, ACK_ENTRY.pack(record.seq, _ack_crc(record.seq)))
                    self._acks_bytes += ACK_ENTRY.size
            if self._acks_bytes > ACKS_COMPACT_BYTES:
                self._rewrite_acks()

    def _drop_segment(self, segment: Segment) -> None:
        """Reclaim a segment nothing waits on (lock held): kept as a spare for reuse while
        there are fewer than MAX_SPARES, deleted otherwise."""
        self._segments.remove(segment)
        self._disk_bytes -= segment.size
        fd = self._read_fds.pop(segment.path, None)
        if fd is not None:
            os.close(fd)
        self._acked = {s for s in self._acked if not segment.first_seq <= s <= segment.last_seq}
        if len(self._spares) >= MAX_SPARES:
            segment.path.unlink(missing_ok=True)
            return
        while True:
            self._spare_serial += 1
            spare = self.directory / f"{self._spare_serial:08d}{SPARE_SUFFIX}"
            if not spare.exists():
                break
        os.replace(segment.path, spare)
        self._spares.append(_Spare(spare))
        if not self._closed:
            # zero it while the writer is idle, not when the next rotation needs it
            self._writer.submit(self._zero_spares)

    # --- close ---------------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        self._closed = True
        if self._background is not None:
            self._background.cancel()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._close_files)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    def close_sync(self) -> None:
        """Close without an event loop (tests, and recovery tools)."""
        self._closed = True
        self._close_files()
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    def _close_files(self) -> None:
        with self._lock:
            if self._active_fd >= 0:
                if self._dirty:
                    os.fdatasync(self._active_fd)
                    self._dirty = False
                os.close(self._active_fd)
                self._active_fd = -1
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
            if self._acks_fd >= 0:
                self._rewrite_acks()
                os.close(self._acks_fd)
                self._acks_fd = -1
        self._release_lock()
