"""Jaeger (v2, the OTel-Collector-based all-in-one binary) as a peer in tests.

The binary is built from the Go module proxy by tests/peers/jaeger.sh (which `make test` runs
through tests/peers/install.sh) and cached by version; `jaeger_binary()` runs that script when
the binary is missing, so a test that needs Jaeger builds it or fails, never skips.

`Jaeger` starts it with in-memory storage, an OTLP gRPC receiver, the `jaeger` receiver with
api_v2 gRPC (what `protocol: grpc` talks to) and the query service's HTTP API, all on free
loopback ports, and reads traces back through that API.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.harness import free_port, peer_binary, wait_listening

# A cold build takes several minutes on 2 cores; tests that may trigger it allow for that.
BUILD_TIMEOUT_S = 1800


def jaeger_binary() -> Path:
    return peer_binary("jaeger.sh", "Jaeger", BUILD_TIMEOUT_S)


def jaeger_config(otlp_grpc: str, api_v2_grpc: str, query_http: str, query_grpc: str) -> dict:
    """Jaeger v2's config (cmd/jaeger/config.yaml's shape) reduced to what the tests use."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp", "jaeger"],
                    "processors": [],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                "logs": {"level": "info"},
                # its default, :8888, would clash with other collectors running at once
                "metrics": {
                    "level": "basic",
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
        },
        "extensions": {
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": query_http},
                "grpc": {"endpoint": query_grpc},
            },
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100000}}}},
        },
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": otlp_grpc}}},
            "jaeger": {"protocols": {"grpc": {"endpoint": api_v2_grpc}}},
        },
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


class Jaeger:
    """`jaeger --config FILE` in a subprocess; ready once its query API answers."""

    def __init__(self, tmp: Path) -> None:
        self.binary = jaeger_binary()
        self.tmp = tmp
        self.otlp_grpc = f"127.0.0.1:{free_port()}"
        self.api_v2_grpc = f"127.0.0.1:{free_port()}"
        self.query_http = f"127.0.0.1:{free_port()}"
        self.config = jaeger_config(
            self.otlp_grpc, self.api_v2_grpc, self.query_http, f"127.0.0.1:{free_port()}"
        )
        self.config_path = tmp / "jaeger.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log_path = tmp / "jaeger.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://{self.query_http}/api"

    def start(self, timeout: float = 60) -> Jaeger:
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            [str(self.binary), "--config", str(self.config_path)],
            cwd=self.tmp,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jaeger exited {self.proc.returncode}:\n{self.logs()}")
            try:
                self.get("/services")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jaeger not answering:\n{self.logs()}") from None
                time.sleep(0.1)
        # the query API comes up with the extensions, before the receivers listen
        wait_listening(self.proc, [self.otlp_grpc, self.api_v2_grpc], deadline, self.logs, "jaeger")
        return self

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.api + path, timeout=10) as resp:
            return json.loads(resp.read())

    def services(self) -> list[str]:
        return self.get("/services").get("data") or []

    def trace(self, trace_id: str) -> dict | None:
        """The trace as the query API returns it, or None while Jaeger does not have it."""
        try:
            data = self.get(f"/traces/{trace_id}").get("data") or []
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise
        return data[0] if data else None

    def wait_trace(self, trace_id: str, spans: int, timeout: float = 30) -> dict:
        """Poll until the trace has `spans` spans (they may arrive in several requests)."""
        deadline = time.monotonic() + timeout
        found: dict | None = None
        while time.monotonic() < deadline:
            found = self.trace(trace_id)
            if found is not None and len(found["spans"]) >= spans:
                return found
            time.sleep(0.1)
        got = len(found["spans"]) if found else 0
        raise TimeoutError(f"trace {trace_id}: {got} of {spans} spans:\n{self.logs()[-4000:]}")

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Jaeger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
