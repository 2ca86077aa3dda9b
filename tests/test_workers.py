"""`service.workers: 2`: two processes share the OTLP ports, the supervisor serves health and
the workers' metrics, SIGTERM stops everything with nothing acknowledged lost.

The data goes to the debug exporter (JSON logs): every worker logs each batch it exported with
its item count and its worker index, so the log of a stopped collector tells what was
delivered and by whom (an embedded store cannot be shared by workers; see test_chdb_...).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.loadgen import LoadConfig, run
from otlp import cli
from otlp.workers import merge_expositions
from tests.harness import Collector, base_config, ports


def _config(tmp: Path, **exporter: Any) -> dict[str, Any]:
    config = base_config(tmp)
    config["exporters"] = {"debug": {"verbosity": "basic", **exporter}}
    config["processors"]["batch"] = {"timeout": "100ms"}
    config["service"]["workers"] = 2
    config["service"]["telemetry"]["logs"] = {"encoding": "json"}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["exporters"] = ["debug"]
    return config


def _exported(logs: str, unit: str = "spans") -> dict[int, int]:
    """Items each worker's debug exporter logged (JSON lines of the whole process tree)."""
    per_worker: dict[int, int] = {}
    for line in logs.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if doc.get("logger") == "airis.exporter.debug" and unit in doc:
            per_worker[doc["worker"]] = per_worker.get(doc["worker"], 0) + doc[unit]
    return per_worker


def _metric(url: str, name: str) -> dict[tuple[str, str], float]:
    """(worker, transport) → value of a counter, from the supervisor's /metrics."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for labels, value in re.findall(rf"^{name}(?:_total)?\{{([^}}]*)\}} (\S+)$", text, re.M):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        key = (fields["worker"], fields.get("transport", ""))
        out[key] = out.get(key, 0.0) + float(value)
    return out


def _load(target: str, requests: int, connections: int = 1) -> dict[str, Any]:
    cfg = LoadConfig(
        target=target,
        batch=20,
        concurrency=16,
        duration=None,
        requests=requests,
        connections=connections,
        distinct=2,
    )
    return asyncio.run(run(cfg))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose (its parent has not reaped it yet)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _worker_pids(collector: Collector) -> list[int]:
    assert collector.proc is not None
    children = Path(f"/proc/{collector.proc.pid}/task/{collector.proc.pid}/children")
    return [int(p) for p in children.read_text().split()]


def test_two_workers_share_the_ports_and_stop_cleanly(tmp_path: Path) -> None:
    config = _config(tmp_path)
    endpoints = ports(config)
    with Collector(tmp_path, config) as collector:
        workers = _worker_pids(collector)
        assert len(workers) == 2
        # 16 connections over each transport: the kernel spreads them over both workers
        grpc = _load("grpc://" + endpoints["grpc"], 200, connections=16)
        http = _load(endpoints["http"], 200)
        acked = grpc["items"]["acknowledged"] + http["items"]["acknowledged"]
        assert acked == 2 * 200 * 20, (grpc, http)

        accepted = _metric(endpoints["metrics"], "otelcol_receiver_accepted_spans")
        for worker in ("0", "1"):
            for transport in ("grpc", "http"):
                assert accepted.get((worker, transport), 0) > 0, accepted
        assert sum(accepted.values()) == acked
        with urllib.request.urlopen(collector.health_url, timeout=5) as resp:
            assert resp.status == 200

        assert collector.stop(signal.SIGTERM) == 0, collector.logs()
    assert not any(_alive(pid) for pid in workers)
    exported = _exported(collector.logs())
    assert set(exported) == {0, 1}
    assert sum(exported.values()) == acked


def _stream(target: str, out: dict[str, Any], key: str) -> None:
    cfg = LoadConfig(
        target=target, batch=50, concurrency=8, duration=5.0, timeout=5.0, connections=8
    )
    out[key] = asyncio.run(run(cfg))


def test_sigterm_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    # a long batch timeout: at SIGTERM there is data waiting in both workers' batchers
    config = _config(tmp_path)
    config["processors"]["batch"] = {"timeout": "1s", "send_batch_size": 5000}
    endpoints = ports(config)
    results: dict[str, Any] = {}
    with Collector(tmp_path, config) as collector:
        senders = [
            threading.Thread(target=_stream, args=("grpc://" + endpoints["grpc"], results, "g")),
            threading.Thread(target=_stream, args=(endpoints["http"], results, "h")),
        ]
        for sender in senders:
            sender.start()
        time.sleep(2.0)
        assert collector.stop(signal.SIGTERM) == 0, collector.logs()
        for sender in senders:
            sender.join(30)
    acked = sum(r["items"]["acknowledged"] for r in results.values())
    sent = sum(r["items"]["sent"] for r in results.values())
    assert acked > 0
    assert results["g"]["items"]["failed"] > 0  # the collector really stopped mid-stream
    exported = _exported(collector.logs())
    # at least once: a request cut by the shutdown after it was queued may be exported
    # without its acknowledgement reaching the client
    assert acked <= sum(exported.values()) <= sent


def test_a_dying_worker_stops_the_collector(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with Collector(tmp_path, config) as collector:
        first, second = _worker_pids(collector)
        os.kill(first, signal.SIGKILL)
        assert collector.proc is not None
        code = collector.proc.wait(60)
        collector.stop()
    assert code == 128 + signal.SIGKILL, collector.logs()
    assert not _alive(second)
    assert "Worker exited, stopping the others" in collector.logs()


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with Collector(tmp_path, config) as collector:
        workers = _worker_pids(collector)
        assert collector.proc is not None
        collector.proc.kill()
        collector.proc.wait()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), collector.logs()
    assert "Supervisor is gone" in collector.logs()


def test_an_embedded_store_with_workers_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = base_config(tmp_path)
    config["service"]["workers"] = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["validate", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "exporters.clickhouse.endpoint" in err and "service.workers is 2" in err
    config["service"]["workers"] = 1
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["validate", "--config", str(path)]) == 0


@pytest.mark.parametrize("processor", ["rules", "tail_sampling"])
def test_processors_that_need_all_the_data_refuse_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], processor: str
) -> None:
    config = base_config(tmp_path)
    config["exporters"] = {"nop": {}}
    config["processors"] = {processor: {"policies": [{"name": "all", "type": "always_sample"}]}}
    if processor == "rules":
        config["processors"] = {processor: {}}
    config["service"]["workers"] = 2
    config["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "processors": [processor], "exporters": ["nop"]}
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["validate", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"processors.{processor}: sees only one worker's share" in err, err


def test_each_worker_keeps_its_queues_in_its_own_directory(tmp_path: Path) -> None:
    """Persistent sending queues with workers: a write-ahead log belongs to one process, so
    each worker's file_storage directory is a subdirectory named by its index."""
    import socket

    from otlp.component import EXTENSION, ComponentID
    from otlp.config import load
    from otlp.workers import WorkerLink

    config = base_config(tmp_path)
    config["service"]["workers"] = 2
    config["extensions"] = {"file_storage": {"directory": str(tmp_path)}}
    config["service"]["extensions"] = ["file_storage"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    directories = []
    for index in (0, 1):
        cfg = load([str(path)])
        ours, theirs = socket.socketpair()
        with ours, theirs:
            WorkerLink(index, ours).prepare(cfg)
        directories.append(cfg.components[EXTENSION][ComponentID.parse("file_storage")].directory)
    assert directories == [str(tmp_path / "worker-0"), str(tmp_path / "worker-1")]


def test_metrics_of_workers_are_merged_per_family() -> None:
    worker = (
        "# HELP a_total Things.\n# TYPE a_total counter\n"
        'a_total{receiver="otlp"} 3.0\n'
        "# HELP g Level.\n# TYPE g gauge\ng 1.0\n"
    )
    merged = merge_expositions([(0, worker), (1, worker.replace("3.0", "4.0"))])
    assert merged.splitlines() == [
        "# HELP a_total Things.",
        "# TYPE a_total counter",
        'a_total{worker="0",receiver="otlp"} 3.0',
        'a_total{worker="1",receiver="otlp"} 4.0',
        "# HELP g Level.",
        "# TYPE g gauge",
        'g{worker="0"} 1.0',
        'g{worker="1"} 1.0',
    ]
