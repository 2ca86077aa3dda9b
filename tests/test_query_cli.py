"""`airis query`: through the running collector's query endpoint, and straight from the store
once the collector is stopped."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from benchmarks.loadgen import LoadConfig, run
from tests.harness import ROOT, Collector, base_config, free_port, ports


def _airis_query(
    tmp: Path, *args: str, tty: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "otlp.cli", "query", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not tty:
        return subprocess.run(command, cwd=tmp, env=env, capture_output=True, timeout=timeout)
    # stdout on a terminal: the readable table
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            command, cwd=tmp, env=env, stdout=follower, stderr=subprocess.PIPE, timeout=timeout
        )
        os.close(follower)
        follower = -1
        output = b""
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
        return subprocess.CompletedProcess(command, proc.returncode, output, proc.stderr)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)


def test_airis_query_running_then_stopped(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    port = free_port()
    config["exporters"]["clickhouse"]["query_endpoint"] = {"endpoint": f"127.0.0.1:{port}"}
    collector = Collector(tmp_path, config)
    config_file = str(collector.config_path)
    count_sql = "SELECT count() FROM otel_traces"
    with collector:
        load = LoadConfig(
            target="grpc://" + ports(config)["grpc"], batch=50, requests=4, duration=None
        )
        result = asyncio.run(run(load))
        acked = result["items"]["acknowledged"]
        assert acked == 200, result
        # the batch processor flushes within 50 ms; read until the rows are there
        for _ in range(100):
            done = _airis_query(tmp_path, count_sql, "--config", config_file)
            assert done.returncode == 0, done.stderr
            if int(done.stdout) >= acked:
                break
        assert int(done.stdout) == acked
        # the collector holds the store: this answer can only come over HTTP
        done = _airis_query(
            tmp_path,
            "SELECT count() AS n, uniqExact(TraceId) > 0 AS any FROM otel_traces",
            "--format",
            "JSONEachRow",
            "--config",
            config_file,
        )
        assert json.loads(done.stdout) == {"n": str(acked), "any": True} or json.loads(
            done.stdout
        ) == {"n": acked, "any": True}
        done = _airis_query(tmp_path, "SELEC 1", "--config", config_file)
        assert done.returncode == 1 and b"Code: 62. DB::Exception" in done.stderr
        done = _airis_query(tmp_path, "SELECT 1 AS one", "--config", config_file, tty=True)
        assert done.returncode == 0 and "┌─one─┐" in done.stdout.decode(), done.stdout
        # a config whose endpoint nobody serves: the store is locked by the collector
        elsewhere = json.loads(json.dumps(config))
        elsewhere["exporters"]["clickhouse"]["query_endpoint"]["endpoint"] = (
            f"127.0.0.1:{free_port()}"
        )
        (tmp_path / "elsewhere.yaml").write_text(json.dumps(elsewhere))
        done = _airis_query(tmp_path, count_sql, "--config", str(tmp_path / "elsewhere.yaml"))
        assert done.returncode == 1 and b"enable its query_endpoint" in done.stderr, done.stderr
        assert collector.stop() == 0, collector.logs()

    # nothing listens now: the store is opened directly
    done = _airis_query(tmp_path, count_sql, "--config", config_file)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == acked
    done = _airis_query(
        tmp_path,
        "SELECT ServiceName FROM otel_traces LIMIT 1 FORMAT JSONEachRow",
        "--config",
        config_file,
    )
    assert done.returncode == 0 and "ServiceName" in json.loads(done.stdout)
    done = _airis_query(tmp_path, count_sql, "--config", config_file, tty=True)
    assert done.returncode == 0 and "count()" in done.stdout.decode()


def test_airis_query_without_a_store(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["exporters"]["clickhouse"]["query_endpoint"] = {"endpoint": f"127.0.0.1:{free_port()}"}
    config_file = tmp_path / "c.yaml"
    config_file.write_text(json.dumps(config))
    done = _airis_query(tmp_path, "SELECT 1", "--config", str(config_file))
    assert done.returncode == 1
    assert b"no store at" in done.stderr
