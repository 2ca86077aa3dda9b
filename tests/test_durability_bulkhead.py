"""Two exporters in one pipeline, one of them blocked for good: the other keeps its rate.

The collector writes every span to the embedded ClickHouse and forwards it with the `otlp`
exporter to a peer AIRIS process which is frozen with SIGSTOP for the whole run: its kernel
still accepts the connection and buffers the requests, nothing ever answers, so each export
hangs until its timeout — a backend that is there but stuck. The clients send at a fixed
rate; every request must be acknowledged, the ClickHouse exporter must deliver all of it
while the peer is still frozen, and the stuck exporter may never have more than its
`num_consumers` exports in flight.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.durability_tools import (
    Stream,
    delivery_report,
    metric,
    process_status,
    stored_requests,
    wait_for,
)
from tests.harness import Collector, base_config, ports

CONSUMERS = 2


def rate_over(stream: Stream, seconds: float) -> float:
    """Requests acknowledged per second over the next `seconds` (printed, not asserted)."""
    began, before = time.monotonic(), len(stream.acked)
    time.sleep(seconds)
    return (len(stream.acked) - before) / (time.monotonic() - began)


def test_a_stuck_exporter_does_not_slow_the_other(tmp_path: Path) -> None:
    peer_config = base_config(tmp_path / "peer-dir")
    (tmp_path / "peer-dir").mkdir()
    peer_config["exporters"] = {"nop": {}}
    for pipeline in peer_config["service"]["pipelines"].values():
        pipeline["exporters"] = ["nop"]
    config = base_config(tmp_path)
    config["exporters"]["otlp"] = {
        "endpoint": ports(peer_config)["grpc"],
        "tls": {"insecure": True},
        "timeout": "500ms",
        "sending_queue": {"num_consumers": CONSUMERS, "queue_size": 100_000},
        "retry_on_failure": {"initial_interval": "100ms", "max_interval": "200ms"},
        "circuit_breaker": {"failure_threshold": 1000},  # keep hammering: the worst case
    }
    config["service"]["pipelines"]["traces"]["exporters"] = ["clickhouse", "otlp"]
    endpoints = ports(config)
    url = endpoints["metrics"]
    batch = 50
    with Collector(tmp_path / "peer-dir", peer_config, name="peer") as peer:
        assert peer.proc is not None
        with Collector(tmp_path, config, name="front") as front:
            assert front.proc is not None
            stuck_in_flight = []
            with Stream("grpc://" + endpoints["grpc"], batch=batch, rate=2000) as stream:
                stream.wait_acked(20)
                # the rate with both backends up, then with the peer frozen
                normal = rate_over(stream, 3.0)
                os.kill(peer.proc.pid, signal.SIGSTOP)
                try:
                    threads_before = int(process_status(front.proc.pid)["Threads"])
                    began, acked_before = time.monotonic(), len(stream.acked)
                    while time.monotonic() < began + 5:
                        stuck_in_flight.append(
                            metric(url, "airis_exporter_in_flight_exports", exporter="otlp")
                        )
                        time.sleep(0.2)
                    stuck = (len(stream.acked) - acked_before) / (time.monotonic() - began)
                    threads_after = int(process_status(front.proc.pid)["Threads"])
                    stream.stop()
                    # the healthy exporter has everything while the peer is still frozen
                    spans = len(stream.acked) * batch
                    wait_for(
                        lambda: (
                            metric(url, "otelcol_exporter_sent_spans", exporter="clickhouse")
                            >= spans
                        ),
                        timeout=60,
                        what="the ClickHouse exporter to catch up",
                    )
                    backlog = metric(url, "otelcol_exporter_queue_size", exporter="otlp")
                    failed = metric(url, "otelcol_exporter_send_failed_spans", exporter="otlp")
                finally:
                    os.kill(peer.proc.pid, signal.SIGCONT)
            assert front.stop(signal.SIGTERM) == 0, front.logs()
    print(
        f"stuck peer: acked {normal:.1f} req/s before, {stuck:.1f} req/s while frozen; "
        f"errors {dict(stream.errors)}; otlp in flight max {max(stuck_in_flight):.0f}, "
        f"backlog {backlog:.0f}; threads {threads_before} -> {threads_after}"
    )
    assert stream.errors.total() == 0 and stream.acked
    assert max(stuck_in_flight) <= CONSUMERS
    assert backlog > 0 and failed == 0  # the other exporter really was stuck, and kept it all
    assert threads_after <= threads_before + CONSUMERS
    report = delivery_report(stream.acked, stored_requests(tmp_path / "store"), batch)
    assert report["missing"] == [] and report["duplicated_requests"] == 0
