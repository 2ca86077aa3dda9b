"""Starts the collector as a real process and reads the embedded store after it stops.

The embedded ClickHouse (chDB) locks its directory and allows one store path per process,
so the collector runs as a subprocess and the store is read by another short-lived one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

# waiting for a peer's ports: the benchmark harness's, re-exported for the peers' helpers
from benchmarks.targets import wait_listening as wait_listening

ROOT = Path(__file__).resolve().parent.parent


def peer_binary(script: str, what: str, timeout: float) -> Path:
    """A real peer's binary, from tests/peers/<script>: cached by version under
    ~/.cache/airis (the script answers at once then), built first when missing. Raises when
    the build fails: a test that needs a peer builds it or fails, never skips."""
    result = subprocess.run(
        ["bash", str(ROOT / "tests" / "peers" / script)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building {what} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now and that this process has not handed out before (the
    kernel may offer a just-released port twice in a row, and configs take several)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Collector:
    """`airis --config FILE` in a subprocess, with ports picked free."""

    def __init__(self, tmp: Path, config: dict[str, Any], name: str = "collector") -> None:
        self.tmp = tmp
        self.config_path = tmp / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        ext = config.get("extensions", {}).get("health_check", {})
        self.health_url = f"http://{ext.get('endpoint', '127.0.0.1:13133')}/"

    def start(self, wait: bool = True, timeout: float = 60) -> Collector:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otlp.cli", "--config", str(self.config_path)],
            cwd=self.tmp,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"collector not healthy after {timeout}s:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            self._log.close()
        return code

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def query_store(path: Path, sql: str) -> list[dict[str, Any]]:
    """Run `sql` against a stopped collector's embedded store; rows as dicts (JSONEachRow)."""
    script = (
        "import sys, chdb\n"
        "s = chdb.session.Session(sys.argv[1])\n"
        "print(s.query(sys.argv[2], 'JSONEachRow').bytes().decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), sql],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"query failed: {sql}\n{result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def base_config(tmp: Path, store: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """OTLP in on free ports → batch → embedded ClickHouse, health and metrics on free ports."""
    grpc_port, http_port, health_port, metrics_port = (free_port() for _ in range(4))
    store = store or tmp / "store"
    signals = ("traces", "metrics", "logs")
    config: dict[str, Any] = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        "processors": {"batch": {"timeout": "50ms"}},
        "exporters": {"clickhouse": {"endpoint": f"chdb://{store}"}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health_port}"}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": {"address": f"127.0.0.1:{metrics_port}"}},
            "pipelines": {
                s: {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["clickhouse"]}
                for s in signals
            },
        },
    }
    for key, value in overrides.items():
        config[key] = value
    return config


def ports(config: dict[str, Any]) -> dict[str, str]:
    protocols = config["receivers"]["otlp"]["protocols"]
    return {
        "grpc": protocols["grpc"]["endpoint"],
        "http": "http://" + protocols["http"]["endpoint"],
        "metrics": "http://" + config["service"]["telemetry"]["metrics"]["address"] + "/metrics",
    }
