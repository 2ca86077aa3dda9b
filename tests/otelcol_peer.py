"""The OpenTelemetry Collector as a peer in tests: its binary, a config, a running process.

The binary is built from the Go module proxy by tests/peers/otelcol.sh (which `make test` runs
through tests/peers/install.sh) and cached by version; `otelcol_binary()` runs that script when
the binary is missing, so a test that needs the Collector builds it or fails, never skips.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.harness import free_port, peer_binary, wait_listening

VERSION = "0.165.0"
# A cold build takes about 3 minutes on 2 cores; tests that may trigger it allow for that.
BUILD_TIMEOUT_S = 1200


def otelcol_binary() -> Path:
    return peer_binary("otelcol.sh", "the OTel Collector", BUILD_TIMEOUT_S)


def otelcol_config(
    exporters: dict[str, Any],
    pipeline_exporters: list[str] | None = None,
    processors: dict[str, Any] | None = None,
    signals: tuple[str, ...] = ("traces", "metrics", "logs"),
) -> dict[str, Any]:
    """OTLP receiver (gRPC and HTTP) on free loopback ports → processors → exporters.

    The Collector's own metrics are served on a free port too: its default, localhost:8888,
    would clash between Collectors running at the same time.
    """
    processors = processors or {}
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{free_port()}"},
                    "http": {"endpoint": f"127.0.0.1:{free_port()}"},
                }
            }
        },
        "processors": processors,
        "exporters": exporters,
        "service": {
            "telemetry": {
                "logs": {"level": "info"},
                "metrics": {
                    "level": "normal",
                    "readers": [
                        {
                            "pull": {
                                "exporter": {
                                    "prometheus": {"host": "127.0.0.1", "port": free_port()}
                                }
                            }
                        }
                    ],
                },
            },
            "pipelines": {
                s: {
                    "receivers": ["otlp"],
                    "processors": list(processors),
                    "exporters": pipeline_exporters or list(exporters),
                }
                for s in signals
            },
        },
    }


class OtelCol:
    """`otelcol --config FILE` in a subprocess; ready once its OTLP ports accept connections."""

    def __init__(self, binary: Path, tmp: Path, config: dict[str, Any], name: str = "otelcol"):
        self.binary = binary
        self.config = config
        self.config_path = tmp / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"{name}.log"
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        protocols = config["receivers"]["otlp"]["protocols"]
        self.grpc_endpoint: str = protocols["grpc"]["endpoint"]
        self.http_endpoint: str = protocols["http"]["endpoint"]
        reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
        prom = reader["prometheus"]
        self.metrics_url = f"http://{prom['host']}:{prom['port']}/metrics"

    def start(self, timeout: float = 60) -> OtelCol:
        self._log = open(self.log_path, "ab")  # closed in stop() / __exit__
        self.proc = subprocess.Popen(
            [str(self.binary), "--config", str(self.config_path)],
            cwd=self.tmp,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        endpoints = [self.grpc_endpoint, self.http_endpoint]
        wait_listening(self.proc, endpoints, time.monotonic() + timeout, self.logs, "otelcol")
        return self

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metric_sum(self, name: str) -> float:
        """Sum of a self-metric over all its label sets (e.g. otelcol_receiver_accepted_spans)."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        # 0.165 names counters without the _total suffix; accept both.
        pattern = re.compile(rf"^{re.escape(name)}(?:_total)?(?:{{[^}}]*}})? (\S+)$", re.M)
        return sum(float(v) for v in pattern.findall(text))

    def __enter__(self) -> OtelCol:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
