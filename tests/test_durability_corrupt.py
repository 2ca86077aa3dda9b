"""A damaged write-ahead log while the collector is stopped: the last segment is cut in the
middle of its last record (a torn write) or has a byte flipped in it (bit rot). The collector
still starts, truncates the damaged record with a warning, counts the discarded bytes, and
delivers everything else; exactly the requests of the damaged record are missing.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from storage import codec
from storage.wal import RECORD_HEADER, WriteAheadLog
from tests.durability_tools import (
    Stream,
    delivery_report,
    metric,
    persistent_config,
    stored_requests,
    unwritable,
    wait_for,
)
from tests.harness import Collector, ports


def request_ids(data: bytes) -> set[int]:
    """Request ids of the spans in a queued batch record (the first 8 trace id bytes)."""
    batch = codec.decode(data)
    return {int.from_bytes(t[:8], "big") for t in batch.tables["spans"]["trace_id"].to_pylist()}


@pytest.mark.parametrize("damage", ["torn", "flipped"])
def test_damaged_tail_is_truncated_and_the_rest_delivered(tmp_path: Path, damage: str) -> None:
    config = persistent_config(tmp_path)
    endpoints = ports(config)
    url = endpoints["metrics"]
    batch = 20
    with Collector(tmp_path, config, name="first") as first:
        with unwritable(tmp_path / "store"):
            with Stream("grpc://" + endpoints["grpc"], batch=batch, concurrency=2) as stream:
                stream.wait_acked(60)
            assert first.stop(signal.SIGTERM) == 0, first.logs()
    acked = set(stream.acked)

    # the collector is stopped: read its queue as it left it, then damage the last record
    log_dir = tmp_path / "queue" / "exporter_clickhouse__traces"
    wal = WriteAheadLog(log_dir)
    wal.open()
    pending = wal.pending_records()
    last = pending[-1]
    lost = request_ids(wal.read_sync(last))
    queued = set().union(*(request_ids(wal.read_sync(r)) for r in pending))
    wal.close_sync()
    assert acked <= queued, "every acknowledged request was in the queue"
    segment = last.segment.path
    with open(segment, "r+b") as f:
        if damage == "torn":
            f.truncate(last.offset + RECORD_HEADER.size + last.length // 2)
        else:
            f.seek(last.offset + RECORD_HEADER.size + last.length // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0x5A]))

    with Collector(tmp_path, config, name="second") as second:
        wait_for(
            lambda: (
                metric(url, "otelcol_exporter_queue_size", data_type="traces") == 0
                and metric(url, "airis_exporter_in_flight_exports", data_type="traces") == 0
                and metric(url, "otelcol_exporter_sent_spans") > 0
            ),
            what="the recovered queue to drain",
        )
        discarded = metric(url, "airis_exporter_queue_discarded_bytes", data_type="traces")
        assert second.stop(signal.SIGTERM) == 0, second.logs()
    assert discarded > 0
    logs = second.logs()
    assert "Write-ahead log was damaged" in logs and segment.name in logs
    report = delivery_report(acked, stored_requests(tmp_path / "store"), batch)
    print(f"{damage} tail:", {k: v for k, v in report.items() if k != "missing"}, "lost", lost)
    assert lost and set(report["missing"]) == lost & acked
    assert report["duplicated_requests"] == 0
