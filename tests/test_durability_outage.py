"""Backend outage: the embedded store stops taking writes for a while under a steady stream,
then comes back. Clients keep being acknowledged (the data waits in the persistent queue),
the circuit breaker opens and closes, and afterwards every acknowledged request is in the
store; duplicates, if a retry made any, are counted and reported.

Why the store is made unwritable: chDB is embedded (one store per process) and no ClickHouse
server runs here, so there is no peer to stop. Making the store's directories immutable
(chattr +i as root, chmod a-w otherwise) is a real backend fault — a disk gone read-only —
that ClickHouse reports as a failed insert, exactly what a server with a broken disk does.
"""

from __future__ import annotations

import signal
from pathlib import Path

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


def test_outage_then_recovery_delivers_every_acknowledged_request(tmp_path: Path) -> None:
    config = persistent_config(tmp_path)
    endpoints = ports(config)
    url = endpoints["metrics"]
    batch = 50
    with Collector(tmp_path, config) as collector:
        with Stream("grpc://" + endpoints["grpc"], batch=batch, concurrency=4, rate=4000) as s:
            s.wait_acked(20)
            with unwritable(tmp_path / "store"):
                wait_for(
                    lambda: metric(url, "airis_exporter_circuit_breaker_state") == 2,
                    what="the circuit breaker to open",
                )
                during = len(s.acked)
                s.wait_acked(during + 40)  # acknowledged while the backend is down
                backlog = metric(url, "otelcol_exporter_queue_size", data_type="traces")
                assert backlog > 0
            wait_for(
                lambda: metric(url, "airis_exporter_circuit_breaker_state") == 0,
                what="the circuit breaker to close",
            )
            s.wait_acked(len(s.acked) + 20)
        # drained: nothing waiting, nothing in flight
        wait_for(
            lambda: (
                metric(url, "otelcol_exporter_queue_size", data_type="traces") == 0
                and metric(url, "airis_exporter_in_flight_exports", data_type="traces") == 0
            ),
            what="the queue to drain",
        )
        # (the metrics endpoint names counters without `_total`, as the Collector does)
        failed = metric(url, "otelcol_exporter_send_failed_spans")
        sent = metric(url, "otelcol_exporter_sent_spans")
        opened = metric(url, "airis_exporter_circuit_breaker_transitions", state="open")
        assert collector.stop(signal.SIGTERM) == 0, collector.logs()
    assert failed == 0 and opened >= 1 and sent > 0
    assert "Circuit breaker opened" in collector.logs()
    report = delivery_report(s.acked, stored_requests(tmp_path / "store"), batch)
    print("outage delivery:", {k: v for k, v in report.items() if k != "missing"})
    assert report["missing"] == []
    # a failed insert leaves nothing behind, so a retry stores whole requests only
    assert report["partial"] == []
    assert s.errors.total() == 0  # the outage never reached the clients
