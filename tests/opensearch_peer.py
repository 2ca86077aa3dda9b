"""A real OpenSearch 2.19.6 node for tests, from Maven Central jars on the machine's Java 17.

tests/peers/opensearch.sh lays out (and caches) two homes with lib/ and modules/, one with
an analysis-nori plugin (`home-nori`); each node started here uses one of them read-only,
with its config, data and logs in a temp dir and a free HTTP port. With `nori=True` the
node offers the `nori` analyzer (and lists analysis-nori in `_cat/plugins`); without it
the node has no Korean analyzer.
A node that cannot be laid out or started fails the test (never skips it).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "peers" / "opensearch.sh"
VERSION = "2.19.6"
# a cold layout resolves ~60 jars with Maven; a warm one is instant
LAYOUT_TIMEOUT_S = 900
# a node boots in ~15-30 s on a quiet 2-core machine; the machine is shared
BOOT_TIMEOUT_S = 240

_LOG4J = """\
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.node.name = org.opensearch.node.Node
logger.node.level = info
"""


def opensearch_home() -> Path:
    """The cached home (lib/, modules/), laid out first when missing; `home-nori` beside it."""
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=LAYOUT_TIMEOUT_S
    )
    if result.returncode != 0:
        raise RuntimeError(f"laying out OpenSearch {VERSION} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class OpenSearchNode:
    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- REST helpers (tests read the node through its HTTP API) -------------------------
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["content-type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def search(self, index: str, query: dict[str, Any], size: int = 1000) -> list[dict[str, Any]]:
        self.request("POST", f"/{index}/_refresh")
        status, reply = self.request("POST", f"/{index}/_search", {"query": query, "size": size})
        assert status == 200, reply
        return [hit["_source"] for hit in reply["hits"]["hits"]]

    def count(self, index: str, query: dict[str, Any] | None = None) -> int:
        self.request("POST", f"/{index}/_refresh")
        status, reply = self.request(
            "POST", f"/{index}/_count", {"query": query or {"match_all": {}}}
        )
        if status == 404:
            return 0
        assert status == 200, reply
        return int(reply["count"])

    def wait_count(
        self, index: str, expected: int, query: dict[str, Any] | None = None, timeout: float = 60
    ) -> int:
        """Poll until `expected` documents match (or the deadline passes); the last count."""
        deadline = time.monotonic() + timeout
        got = -1
        while time.monotonic() < deadline:
            got = self.count(index, query)
            if got >= expected:
                return got
            time.sleep(0.2)
        return got

    def wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"OpenSearch exited {self.proc.returncode} while starting:\n"
                    f"{self.logs()[-6000:]}"
                )
            try:
                status, reply = self.request(
                    "GET", "/_cluster/health?wait_for_status=yellow&timeout=1s"
                )
                if status == 200 and reply.get("status") in ("green", "yellow"):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(
            f"OpenSearch not healthy after {BOOT_TIMEOUT_S}s:\n{self.logs()[-6000:]}"
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        # the node's data lives in a temp dir that is thrown away: no graceful shutdown
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def launch_node(tmp: Path, nori: bool = False) -> OpenSearchNode:
    """Start a single-node cluster (security off, loopback only); `wait_healthy()` next.
    Two nodes launched before either is waited for boot side by side."""
    home = opensearch_home()
    if nori:
        home = home.with_name("home-nori")
    conf = tmp / "config"
    conf.mkdir(parents=True)
    port = free_port()
    (conf / "opensearch.yml").write_text(
        "\n".join(
            [
                "cluster.name: airis-test",
                "node.name: airis-test-node",
                "discovery.type: single-node",
                "network.host: 127.0.0.1",
                f"http.port: {port}",
                f"transport.port: {free_port()}",
                f"path.data: {tmp / 'data'}",
                f"path.logs: {tmp / 'logs'}",
                # small heap, no disk-watermark surprises on a full shared disk
                "cluster.routing.allocation.disk.threshold_enabled: false",
                "action.auto_create_index: true",
                "",
            ]
        )
    )
    (conf / "log4j2.properties").write_text(_LOG4J)
    node = OpenSearchNode(home=home, port=port, log_path=tmp / "opensearch.log")
    java_tmp = tmp / "jvmtmp"
    java_tmp.mkdir()
    cmd = [
        "java",
        "-Xms512m",
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        "-Dfile.encoding=UTF-8",
        # OpenSearch refuses to run as root (as tests and CI here do) only when JNA's native
        # part loads and says so; with nowhere to load it from, it warns and goes on
        "-Djna.nosys=true",
        "-Djna.noclasspath=true",
        f"-Djna.boot.library.path={tmp / 'no-jna'}",
        "-Dio.netty.noUnsafe=true",
        "-Dio.netty.noKeySetOptimization=true",
        "-Dio.netty.recycler.maxCapacityPerThread=0",
        "-Dlog4j.shutdownHookEnabled=false",
        "-Dlog4j2.disable.jmx=true",
        "-Djava.locale.providers=SPI,COMPAT",
        f"-Djava.io.tmpdir={java_tmp}",
        f"-Dopensearch.path.home={home}",
        f"-Dopensearch.path.conf={conf}",
        "-Dopensearch.distribution.type=tar",
        "-Dopensearch.bundled_jdk=false",
        "-cp",
        f"{home / 'lib'}/*",
        "org.opensearch.bootstrap.OpenSearch",
    ]
    log = open(node.log_path, "ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSEARCH_")}
    node.proc = subprocess.Popen(cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return node


def start_node(tmp: Path, nori: bool = False) -> OpenSearchNode:
    """Start a single-node cluster and wait until it is up."""
    node = launch_node(tmp, nori)
    node.wait_healthy()
    return node


@pytest.fixture(scope="session")
def opensearch_nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, OpenSearchNode]]:
    """Two nodes for the whole test session, booted side by side: `nori` (with the
    analysis-nori plugin, waited for here) and `plain` (without; call wait_healthy())."""
    nori = launch_node(tmp_path_factory.mktemp("opensearch-nori"), nori=True)
    plain = launch_node(tmp_path_factory.mktemp("opensearch-plain"), nori=False)
    try:
        nori.wait_healthy()
        yield {"nori": nori, "plain": plain}
    finally:
        nori.stop()
        plain.stop()
