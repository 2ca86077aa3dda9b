"""The collectors under test (AIRIS and the OTel Collector), their configs, and how each one
tells how many items it delivered.

Both get the same pipeline: the OTLP receiver (gRPC and HTTP) → batch (defaults) → the
scenario's exporter. Delivered ("stored") items are counted where they end up:

- embedded ClickHouse: rows in the store, counted after the collector stopped;
- nop: AIRIS's `otelcol_exporter_sent_*`; the Collector's nop exporter has no exporter
  metrics, so its batch processor's output (`otelcol_processor_batch_batch_send_size_sum`,
  everything handed to nop) stands in;
- OTLP forwarding: what the sink (a second OTel Collector, OTLP → nop) accepted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OTELCOL_VERSION = "0.165.0"
UNIT = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}
CLICKHOUSE_TABLES = {
    "traces": ("otel_traces",),
    "logs": ("otel_logs",),
    "metrics": tuple(
        f"otel_metrics_{kind}"
        for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary")
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def otelcol_binary() -> Path:
    """The OTel Collector peer, built (once, cached by version) by tests/peers/otelcol.sh."""
    result = subprocess.run(
        ["bash", str(ROOT / "tests" / "peers" / "otelcol.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the OTel Collector failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def airis_otlp_exporter() -> str | None:
    """The type name of AIRIS's OTLP/gRPC exporter once it exists (scenario f runs then)."""
    from otlp import registry

    for name in ("otlp_grpc", "otlp"):
        try:
            if registry.lookup("exporter", name) is not None:
                return name
        except Exception:  # a broken component module: AIRIS itself will not start either
            return None
    return None


def scrape(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def metric_sum(text: str, name: str) -> float:
    """Sum of one metric over all its series (`name` or `name_total`, any labels)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:_total)?(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def wait_listening(
    proc: subprocess.Popen[bytes] | None,
    endpoints: list[str],
    deadline: float,
    logs: Callable[[], str],
    what: str,
) -> None:
    """Until every `host:port` accepts connections; raises with the process's logs when `proc`
    (if given) exits first or `deadline` (time.monotonic()) passes. (The tests' peers wait
    with it too.)"""
    for endpoint in endpoints:
        host, port = endpoint.rsplit(":", 1)
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what} exited {proc.returncode}:\n{logs()}")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what} not listening on {endpoint}:\n{logs()}") from None
                time.sleep(0.05)


class Collector:
    """One collector process (tree) with the scenario's pipeline on free loopback ports."""

    side = ""  # "airis" or "otelcol"

    def __init__(self, tmp: Path, name: str, signal_: str, exporter: dict[str, Any]) -> None:
        self.tmp = tmp
        self.name = name
        self.signal = signal_
        self.exporter = exporter  # {type: config}
        self.grpc = f"127.0.0.1:{free_port()}"
        self.http = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"{name}.log"
        self.config_path = tmp / f"{name}.yaml"
        self._log: Any = None

    def target(self, protocol: str) -> str:
        return f"grpc://{self.grpc}" if protocol == "grpc" else f"http://{self.http}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def receivers(self) -> dict[str, Any]:
        return {
            "otlp": {
                "protocols": {"grpc": {"endpoint": self.grpc}, "http": {"endpoint": self.http}}
            }
        }

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        wait_listening(self.proc, [self.grpc, self.http], deadline, self._log_tail, self.name)

    def _log_tail(self) -> str:
        return self.log_path.read_text()[-4000:]

    def start(self, timeout: float = 90) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config()))
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            self.argv(), cwd=self.tmp, stdout=self._log, stderr=subprocess.STDOUT, env=self.env()
        )
        try:
            self.wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 120) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -signal.SIGKILL
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._log is not None and not self._log.closed:
            self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- delivered items ---------------------------------------------------------------------
    def delivered(self) -> float | None:
        """Items delivered so far, read while running; None when counted after stop."""
        raise NotImplementedError

    def stored_after_stop(self) -> int | None:
        return None


class Airis(Collector):
    side = "airis"

    def __init__(
        self, tmp: Path, name: str, signal_: str, exporter: dict[str, Any], workers: int = 1
    ) -> None:
        super().__init__(tmp, name, signal_, exporter)
        self.workers = workers
        self.health_port = free_port()

    @property
    def label(self) -> str:
        return "airis" if self.workers == 1 else f"airis, {self.workers} workers"

    def config(self) -> dict[str, Any]:
        (exporter_type,) = self.exporter
        return {
            "receivers": self.receivers(),
            "processors": {"batch": {}},
            "exporters": self.exporter,
            "extensions": {"health_check": {"endpoint": f"127.0.0.1:{self.health_port}"}},
            "service": {
                "workers": self.workers,
                "extensions": ["health_check"],
                "telemetry": {
                    "logs": {"level": "info"},
                    "metrics": {"address": f"127.0.0.1:{self.metrics_port}"},
                },
                "pipelines": {
                    self.signal: {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": [exporter_type],
                    }
                },
            },
        }

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "otlp.cli", "--config", str(self.config_path)]

    def env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH", "")
        return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}

    def wait_ready(self, deadline: float) -> None:
        # health_check answers 200 once every pipeline (of every worker) is up
        assert self.proc is not None
        url = f"http://127.0.0.1:{self.health_port}/"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airis exited {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"airis not healthy:\n{self.logs()[-4000:]}")
            time.sleep(0.05)

    def delivered(self) -> float | None:
        # while running, the exporter's count (rows are counted after stop: the store is
        # locked by the collector)
        text = scrape(self.metrics_url)
        return metric_sum(text, f"otelcol_exporter_sent_{UNIT[self.signal]}")

    def stored_after_stop(self) -> int | None:
        (exporter_type,) = self.exporter
        if exporter_type != "clickhouse":
            return None
        endpoint = self.exporter["clickhouse"]["endpoint"]
        return count_rows(Path(endpoint.removeprefix("chdb://")), self.signal)


class OtelCol(Collector):
    side = "otelcol"
    label = "otelcol"
    workers = 1

    def __init__(
        self,
        binary: Path,
        tmp: Path,
        name: str,
        signal_: str,
        exporter: dict[str, Any],
        processors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(tmp, name, signal_, exporter)
        self.binary = binary
        self.processors = {"batch": {}} if processors is None else processors

    def config(self) -> dict[str, Any]:
        prometheus = {"host": "127.0.0.1", "port": self.metrics_port}
        return {
            "receivers": self.receivers(),
            "processors": self.processors,
            "exporters": self.exporter,
            "service": {
                "telemetry": {
                    "logs": {"level": "info"},
                    "metrics": {
                        "level": "normal",
                        "readers": [{"pull": {"exporter": {"prometheus": prometheus}}}],
                    },
                },
                "pipelines": {
                    self.signal: {
                        "receivers": ["otlp"],
                        "processors": list(self.processors),
                        "exporters": list(self.exporter),
                    }
                },
            },
        }

    def argv(self) -> list[str]:
        return [str(self.binary), "--config", str(self.config_path)]

    def wait_ready(self, deadline: float) -> None:
        super().wait_ready(deadline)
        assert self.proc is not None
        metrics = [f"127.0.0.1:{self.metrics_port}"]
        wait_listening(self.proc, metrics, deadline, self._log_tail, self.name)

    def delivered(self) -> float | None:
        text = scrape(self.metrics_url)
        (exporter_type,) = self.exporter
        if exporter_type == "nop":
            return metric_sum(text, "otelcol_processor_batch_batch_send_size_sum")
        return None

    def accepted(self) -> float:
        text = scrape(self.metrics_url)
        return metric_sum(text, f"otelcol_receiver_accepted_{UNIT[self.signal]}")


def count_rows(store: Path, signal_: str) -> int:
    """Rows of a signal in a stopped collector's embedded store (chDB locks the store, so the
    count runs in a short-lived process of its own)."""
    sql = " + ".join(f"(SELECT count() FROM otel.{t})" for t in CLICKHOUSE_TABLES[signal_])
    script = (
        "import sys, chdb\n"
        "s = chdb.session.Session(sys.argv[1])\n"
        "print(s.query(sys.argv[2], 'JSONEachRow').bytes().decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(store), f"SELECT {sql} AS n"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"counting rows failed:\n{result.stderr[-4000:]}")
    return int(json.loads(result.stdout.strip().splitlines()[-1])["n"])
