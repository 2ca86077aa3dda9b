"""Prometheus Alertmanager as a peer in tests: the binary (built from the Go module proxy by
tests/peers/alertmanager.sh and cached by version), a minimal config, a running process, its
v2 API. `alertmanager_binary()` builds it when missing, so a test that needs it builds it or
fails, never skips."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.harness import free_port, peer_binary

# a cold build takes about 3 minutes on 2 cores
BUILD_TIMEOUT_S = 1200

# every alert goes to a receiver that sends nothing: the tests read the API
CONFIG = """
route:
  receiver: "null"
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


def alertmanager_binary() -> Path:
    return peer_binary("alertmanager.sh", "Alertmanager", BUILD_TIMEOUT_S)


class Alertmanager:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Alertmanager:
        config = self.tmp / "alertmanager.yml"
        config.write_text(CONFIG)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(alertmanager_binary()),
                f"--config.file={config}",
                f"--storage.path={self.tmp / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # no gossip cluster: a single instance
                "--cluster.listen-address=",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"alertmanager not ready:\n{self.log_path.read_text()}")

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the active alerts (resolved ones are not listed)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
