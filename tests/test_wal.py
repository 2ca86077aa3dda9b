"""The write-ahead log (storage/wal.py) and its batch records (storage/codec.py): appends,
acknowledgements, recovery, damaged tails, space reclamation, the size cap, group commit.

A crash is a real one where it matters: a child process appends and dies with os._exit
(no close, no flush of anything but what the log itself wrote).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from otlp_samples import SAMPLES, assert_batches_equal

from otlp.decode import decode_protobuf
from storage import codec
from storage.wal import (
    ACK_ENTRY,
    ACKS_HEADER,
    RECORD_HEADER,
    SEGMENT_HEADER,
    RecordTooLargeError,
    WalError,
    WalFullError,
    WalOptions,
    WriteAheadLog,
)

ROOT = Path(__file__).resolve().parent.parent


def payload(i: int, size: int = 100) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


async def fill(wal: WriteAheadLog, n: int, size: int = 100) -> list:
    return [await wal.append(payload(i, size), meta=i) for i in range(n)]


def reopen(directory: Path, **options: object) -> tuple[WriteAheadLog, object]:
    wal = WriteAheadLog(directory, WalOptions(**options))  # type: ignore[arg-type]
    return wal, wal.open()


async def test_append_read_ack_and_reopen(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    records = await fill(wal, 5)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert await wal.read(records[3]) == payload(3)
    assert await wal.read(records[2], len) == 100
    wal.ack(records[1])
    wal.ack(records[3])  # out of order
    await wal.close()

    again, report = reopen(tmp_path / "q")
    assert report.records == 3 and not report.damaged
    pending = again.pending_records()
    assert [(r.seq, r.meta) for r in pending] == [(1, 0), (3, 2), (5, 4)]
    assert [again.read_sync(r) for r in pending] == [payload(0), payload(2), payload(4)]
    # sequence numbers are never reused
    assert (await again.append(b"x")).seq == 6
    await again.close()


def test_crash_loses_nothing_written(tmp_path: Path) -> None:
    """A child appends 50 records, acknowledges the first 20 and dies without closing."""
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        from storage.wal import WriteAheadLog, WalOptions
        async def main():
            wal = WriteAheadLog(sys.argv[1], WalOptions(segment_size=4096))
            wal.open()
            recs = [await wal.append(bytes([i]) * 300, meta=i) for i in range(50)]
            for r in recs[:20]:
                wal.ack(r)
            os._exit(0)
        asyncio.run(main())
        """
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "q")],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    wal, report = reopen(tmp_path / "q", segment_size=4096)
    assert report.records == 30 and not report.damaged
    assert [wal.read_sync(r)[0] for r in wal.pending_records()] == list(range(20, 50))
    wal.close_sync()


async def test_torn_tail_is_truncated_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    await fill(wal, 10)
    await wal.close()
    [segment] = segments(tmp_path / "q")
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.truncate(size - 30)  # the last record loses its end, as in a crash mid-write

    wal, report = reopen(tmp_path / "q")
    assert report.records == 9
    assert report.truncated_segments == [segment.name]
    assert report.discarded_bytes == RECORD_HEADER.size + 100 - 30
    assert segment.stat().st_size == size - RECORD_HEADER.size - 100
    assert "truncated" in caplog.text
    # the log goes on: new records land after the good ones and survive the next open
    await wal.append(b"after")
    await wal.close()
    wal, report = reopen(tmp_path / "q")
    assert report.records == 10 and not report.damaged
    assert wal.read_sync(wal.pending_records()[-1]) == b"after"
    wal.close_sync()


@pytest.mark.parametrize("where", ["payload", "header", "garbage_after"])
async def test_corrupt_tail_record_is_truncated(tmp_path: Path, where: str) -> None:
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    records = await fill(wal, 4)
    await wal.close()
    [segment] = segments(tmp_path / "q")
    data = bytearray(segment.read_bytes())
    last = records[-1].offset
    if where == "payload":
        data[last + RECORD_HEADER.size + 50] ^= 0xFF
    elif where == "header":
        data[last] ^= 0x01  # the length field
    else:
        data += os.urandom(57)
    segment.write_bytes(bytes(data))

    wal, report = reopen(tmp_path / "q")
    assert report.records == (4 if where == "garbage_after" else 3)
    assert report.truncated_segments == [segment.name]
    wal.close_sync()


async def test_foreign_or_empty_segment_files(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    await fill(wal, 2)
    await wal.close()
    (tmp_path / "q" / f"{10**6:020d}.wal").write_bytes(b"")  # crash right after creating it
    (tmp_path / "q" / f"{10**7:020d}.wal").write_bytes(b"not a wal segment at all")

    wal, report = reopen(tmp_path / "q")
    assert report.records == 2
    assert report.quarantined_files == [f"{10**7:020d}.corrupt"]
    assert (tmp_path / "q" / f"{10**7:020d}.corrupt").exists()
    assert not (tmp_path / "q" / f"{10**6:020d}.wal").exists()
    wal.close_sync()


async def test_read_checks_the_crc_again(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    [record] = await fill(wal, 1)
    with open(record.segment.path, "r+b") as f:
        f.seek(record.offset + RECORD_HEADER.size + 3)
        f.write(b"\xee")
    with pytest.raises(WalError, match="checksum"):
        await wal.read(record)
    await wal.close()


async def test_segments_are_reclaimed_one_by_one(tmp_path: Path) -> None:
    record_size = RECORD_HEADER.size + 1000
    # 4 records per segment
    seg = SEGMENT_HEADER.size + 4 * record_size
    wal = WriteAheadLog(tmp_path / "q", WalOptions(segment_size=seg))
    wal.open()
    records = await fill(wal, 16, size=1000)
    assert len(segments(tmp_path / "q")) == 4
    # everything but one record of the first segment: only the other full segments go
    for r in records[1:12]:
        wal.ack(r)
    names = [p.name for p in segments(tmp_path / "q")]
    assert names == [f"{1:020d}.wal", f"{13:020d}.wal"]
    assert wal.disk_bytes == sum(p.stat().st_size for p in segments(tmp_path / "q"))
    wal.ack(records[0])
    assert [p.name for p in segments(tmp_path / "q")] == [f"{13:020d}.wal"]
    await wal.close()
    wal, _ = reopen(tmp_path / "q", segment_size=seg)
    assert [r.seq for r in wal.pending_records()] == [13, 14, 15, 16]
    wal.close_sync()


async def test_reclaimed_segments_are_recycled_and_recover_cleanly(tmp_path: Path) -> None:
    """Reclaimed segments become zeroed spares, and new segments reuse their files: the
    stale bytes of their previous life are never read back, and are no damage either."""
    seg = SEGMENT_HEADER.size + 4 * (RECORD_HEADER.size + 1000)
    wal = WriteAheadLog(tmp_path / "q", WalOptions(segment_size=seg))
    wal.open()
    records = await fill(wal, 12, size=1000)
    for r in records[:8]:
        wal.ack(r)
    spares = sorted((tmp_path / "q").glob("*.spare"))
    assert len(spares) == 2
    inodes = {p.stat().st_ino for p in spares}
    await wal.append(payload(0, 10))  # lets the writer thread zero the spares first
    more = [await wal.append(payload(100 + i, 1000)) for i in range(7)]
    assert not list((tmp_path / "q").glob("*.spare"))
    assert {p.stat().st_ino for p in segments(tmp_path / "q")} >= inodes
    await wal.close()
    wal, report = reopen(tmp_path / "q", segment_size=seg)
    assert not report.damaged
    pending = wal.pending_records()
    assert [r.seq for r in pending] == [9, 10, 11, 12, 13, *(r.seq for r in more)]
    assert [wal.read_sync(r) for r in pending[5:]] == [payload(100 + i, 1000) for i in range(7)]
    wal.close_sync()


async def test_size_cap_refuses_then_frees(tmp_path: Path) -> None:
    record_size = RECORD_HEADER.size + 1000
    seg = SEGMENT_HEADER.size + 2 * record_size
    cap = 3 * seg
    wal = WriteAheadLog(tmp_path / "q", WalOptions(segment_size=seg, max_bytes=cap))
    wal.open()
    records = await fill(wal, 6, size=1000)
    with pytest.raises(WalFullError):
        await wal.append(payload(7, 1000))
    assert wal.disk_bytes <= cap
    with pytest.raises(RecordTooLargeError):
        await wal.append(b"x" * cap)
    wal.ack(records[0])
    wal.ack(records[1])  # the first segment goes
    assert (await wal.append(payload(7, 1000))).seq == 7
    # a refused append wrote nothing: the log reopens with exactly the accepted records
    await wal.close()
    wal, _ = reopen(tmp_path / "q", segment_size=seg, max_bytes=cap)
    assert [r.seq for r in wal.pending_records()] == [3, 4, 5, 6, 7]
    wal.close_sync()


async def test_concurrent_appends_share_fsyncs(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "q", WalOptions(fsync=True))
    wal.open()
    records = await asyncio.gather(*(wal.append(payload(i)) for i in range(64)))
    assert sorted(r.seq for r in records) == list(range(1, 65))
    # one writer thread, appends queued while it works go in the next group
    assert 1 <= wal.fsyncs < 64
    await wal.close()


async def test_serializer_runs_on_the_writer_thread(tmp_path: Path) -> None:
    import threading

    seen: list[str] = []

    def make() -> bytes:
        seen.append(threading.current_thread().name)
        return b"lazy"

    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    record = await wal.append(make)
    assert seen[0].startswith("wal-write") and await wal.read(record) == b"lazy"
    await wal.close()


async def test_acks_survive_compaction_and_torn_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.wal as walmod

    monkeypatch.setattr(walmod, "ACKS_COMPACT_BYTES", 10 * ACK_ENTRY.size)
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    records = await fill(wal, 40)
    for r in records[::2]:
        wal.ack(r)  # 20 acks: the acks file is rewritten on the way
    acks = tmp_path / "q" / "acks"
    assert acks.stat().st_size < ACKS_HEADER.size + 20 * ACK_ENTRY.size
    await wal.close()
    with open(acks, "ab") as f:
        f.write(b"\x01\x02\x03")  # a torn entry at the end
    wal, _ = reopen(tmp_path / "q")
    assert [r.seq for r in wal.pending_records()] == [r.seq for r in records[1::2]]
    wal.close_sync()


async def test_unreadable_acks_mean_redelivery_not_loss(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    records = await fill(wal, 3)
    wal.ack(records[0])
    await wal.close()
    (tmp_path / "q" / "acks").write_bytes(b"garbage")
    wal, report = reopen(tmp_path / "q")
    assert report.records == 3  # delivered again: a duplicate, never a loss
    wal.close_sync()


async def test_second_process_is_locked_out(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    other = WriteAheadLog(tmp_path / "q", WalOptions(lock_timeout=0.1))
    with pytest.raises(WalError, match="in use"):
        other.open()
    await wal.close()
    other.open()
    other.close_sync()


async def test_failed_write_leaves_no_partial_record(tmp_path: Path) -> None:
    def broken() -> bytes:
        raise RuntimeError("serializer failed")

    wal = WriteAheadLog(tmp_path / "q")
    wal.open()
    await wal.append(b"one")
    with pytest.raises(RuntimeError):
        await wal.append(broken)
    await wal.append(b"two")
    await wal.close()
    wal, report = reopen(tmp_path / "q")
    assert [wal.read_sync(r) for r in wal.pending_records()] == [b"one", b"two"]
    assert not report.damaged
    wal.close_sync()


# --- batch records -------------------------------------------------------------------------
@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
@pytest.mark.parametrize("compression", codec.COMPRESSIONS)
def test_batch_record_roundtrip(signal: str, compression: str) -> None:
    batch = decode_protobuf(signal, SAMPLES[signal]().SerializeToString())
    batch.context = {"tenant": "acme", "client.address": "10.0.0.1"}
    again = codec.decode(codec.encode(batch, compression))
    assert_batches_equal(again, batch)
    assert again.context == batch.context and again.signal == signal


def test_batch_record_from_an_older_schema_loads() -> None:
    batch = decode_protobuf("traces", SAMPLES["traces"]().SerializeToString())
    spans = batch.tables["spans"]
    # as if written by a version without `status_message` and with a narrower `flags`
    old = spans.drop_columns(["status_message"]).set_column(
        spans.schema.get_field_index("flags"), "flags", spans.column("flags").cast(pa.uint16())
    )
    batch.tables["spans"] = old
    again = codec.decode(codec.encode(batch))
    assert again.tables["spans"].schema.equals(spans.schema)
    assert again.tables["spans"].column("status_message").null_count == spans.num_rows
    assert again.tables["spans"].column("flags").to_pylist() == spans.column("flags").to_pylist()


def test_not_a_batch_record() -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(b"XX\x01\x00\x00")
