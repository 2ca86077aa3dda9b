"""Overload: clients send at least twice as fast as the exporter can drain, and the memory
bound holds.

Two AIRIS processes: the front one (measured) receives from the clients and forwards with
the `otlp` exporter through an in-memory queue large enough that only its memory_limiter
stands between the backlog and its memory; the peer stores into the embedded ClickHouse.
The peer is up only half of the time — stopped and continued with SIGSTOP/SIGCONT every half
second, a real stalled process — so the front drains at most half of what it could while
the clients push as fast as they are acknowledged.

Why a peer and not the embedded store behind the front: the engine's own working memory
(inserts, merges, caches) lives in the same process and grows with the work it is given;
the memory_limiter can refuse new data but cannot shrink an insert in progress. With the
store in another process the front's memory is the pipeline's and the queue's, which is
what the limiter is there to bound.

What must hold: the front's peak resident memory as the kernel recorded it (VmHWM in
/proc/PID/status, so no sampling can miss a peak) stays under the configured limit; clients
are refused with retryable errors (gRPC UNAVAILABLE), not dropped; and afterwards every
acknowledged request is in the peer's store.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.durability_tools import (
    Stream,
    delivery_report,
    kib,
    metric,
    process_status,
    stored_requests,
    wait_for,
)
from tests.harness import Collector, base_config, ports

HEADROOM_MIB = 200  # limit_mib = the front's memory at rest + this
# what the work in flight may add between two checks (decoding, batching, encoding for
# the peer): refusing starts this far below the limit
SPIKE_MIB = 100


class Stalling:
    """SIGSTOP / SIGCONT a process every `period`/2 seconds."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        self.pid = pid
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            os.kill(self.pid, signal.SIGSTOP)
            try:
                self._stop.wait(self.period / 2)
            finally:
                os.kill(self.pid, signal.SIGCONT)
            self._stop.wait(self.period / 2)

    def __enter__(self) -> Stalling:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        os.kill(self.pid, signal.SIGCONT)


def front_config(tmp: Path, peer_grpc: str, limit_mib: int | None) -> dict[str, Any]:
    config = base_config(tmp)
    config["exporters"] = {
        "otlp": {
            "endpoint": peer_grpc,
            "tls": {"insecure": True},
            "compression": "none",
            "timeout": "1s",
            # the backlog may take all the memory there is: the limiter has to stop it
            "sending_queue": {"queue_size": 10_000_000, "sizer": "items", "num_consumers": 2},
            "retry_on_failure": {"initial_interval": "50ms", "max_interval": "200ms"},
            "circuit_breaker": {"failure_threshold": 3, "open_interval": "200ms"},
        }
    }
    processors = ["batch"]
    if limit_mib is not None:
        config["processors"]["memory_limiter"] = {
            "check_interval": "50ms",
            "limit_mib": limit_mib,
            "spike_limit_mib": SPIKE_MIB,
        }
        processors = ["memory_limiter", "batch"]
    config["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "processors": processors, "exporters": ["otlp"]}
    }
    return config


def test_overload_stays_under_the_memory_limit_and_loses_nothing(tmp_path: Path) -> None:
    peer_config = base_config(tmp_path)
    peer = ports(peer_config)["grpc"]
    batch = 500
    with Collector(tmp_path, peer_config, name="peer") as backend:
        assert backend.proc is not None
        # the front's memory at rest, after some traffic, sets the limit just above it
        probe_config = front_config(tmp_path, peer, None)
        with Collector(tmp_path, probe_config, name="probe") as probe:
            with Stream("grpc://" + ports(probe_config)["grpc"], batch=batch) as warmup:
                warmup.wait_acked(40)
            assert probe.proc is not None
            at_rest_mib = kib(process_status(probe.proc.pid)["VmRSS"]) // 1024

        limit_mib = at_rest_mib + HEADROOM_MIB
        config = front_config(tmp_path, peer, limit_mib)
        endpoints = ports(config)
        url = endpoints["metrics"]
        with Collector(tmp_path, config, name="front") as front:
            assert front.proc is not None
            streams = [
                Stream("grpc://" + endpoints["grpc"], batch=batch, concurrency=4) for _ in range(3)
            ]
            with Stalling(backend.proc.pid):
                for s in streams:
                    s.__enter__()
                wait_for(
                    lambda: metric(url, "airis_memory_limiter_refusing") == 1,
                    timeout=120,
                    what="the memory limiter to refuse data",
                )
                time.sleep(3)  # keep pushing against the limit
                for s in streams:
                    s.stop()
                peak_mib = kib(process_status(front.proc.pid)["VmHWM"]) // 1024
            wait_for(
                lambda: (
                    metric(url, "otelcol_exporter_queue_size", data_type="traces") == 0
                    and metric(url, "airis_exporter_in_flight_exports", data_type="traces") == 0
                ),
                timeout=180,
                what="the backlog to drain",
            )
            refused = metric(url, "otelcol_receiver_refused_spans")
            failed = metric(url, "otelcol_exporter_send_failed_spans")
            assert front.stop(signal.SIGTERM) == 0, front.logs()
        assert backend.stop(signal.SIGTERM) == 0, backend.logs()

    acked = set().union(*(s.acked for s in streams))
    errors: dict[str, int] = {}
    for s in streams:
        for kind, n in s.errors.items():
            errors[kind] = errors.get(kind, 0) + n
    report = delivery_report(acked, stored_requests(tmp_path / "store"), batch)
    print(
        f"overload: at rest {at_rest_mib} MiB, limit {limit_mib} MiB, peak {peak_mib} MiB; "
        f"acked {len(acked)} requests, refused {refused:.0f} spans, client errors {errors}; "
        f"duplicates {report['duplicated_requests']}"
    )
    assert peak_mib < limit_mib
    assert refused > 0 and set(errors) <= {"UNAVAILABLE"}
    assert failed == 0
    assert report["missing"] == []
