"""otlp.memory: the allocator settings the `airis` entry point applies to its process.

Each check runs in a fresh interpreter: the settings are process-wide and the Arrow pool is
chosen when pyarrow is first imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, Collector, base_config

# Where a thread's malloc lands: glibc gives a new thread an arena of its own (a mapping
# outside the brk heap) unless the arena limit is reached, when it shares the main arena.
PROBE = """
import ctypes, json, sys, threading
from otlp import memory
if sys.argv[1] == "configure":
    memory.configure()
import pyarrow as pa
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
found = []
thread = threading.Thread(target=lambda: found.append(libc.malloc(1000)))
thread.start()
thread.join()
heap = next(
    [int(x, 16) for x in line.split()[0].split("-")]
    for line in open("/proc/self/maps")
    if line.rstrip().endswith("[heap]")
)
libc.free(found[0])
print(json.dumps({
    "main_arena": heap[0] <= found[0] < heap[1],
    "arrow": pa.default_memory_pool().backend_name,
    "report": memory.report(),
}))
"""


def _probe(mode: str, **env: str) -> dict[str, object]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "ARROW_DEFAULT_MEMORY_POOL")
    }
    clean.pop("AIRIS_MALLOC_TUNING", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_configure_shares_one_arena_and_uses_the_system_arrow_pool() -> None:
    before = _probe("plain")
    after = _probe("configure")
    assert before["main_arena"] is False
    assert after["main_arena"] is True
    assert after["arrow"] == "system"
    assert after["report"] == {
        "arrow_memory_pool": "system",
        "malloc_arena_max": 1,
        "arrow_pool_backend": "system",
    }


def test_the_users_choice_wins() -> None:
    chosen = _probe("configure", ARROW_DEFAULT_MEMORY_POOL="mimalloc", MALLOC_ARENA_MAX="4")
    assert chosen["main_arena"] is False
    assert chosen["arrow"] == "mimalloc"
    assert chosen["report"] == {"arrow_pool_backend": "mimalloc"}


def test_switched_off() -> None:
    off = _probe("configure", AIRIS_MALLOC_TUNING="0")
    assert off["main_arena"] is False
    assert off["report"] == {"arrow_pool_backend": off["arrow"]}
    assert off["arrow"] != "system"


def test_collector_and_its_workers_apply_the_settings(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["exporters"] = {"nop": {}}
    config["service"]["workers"] = 2
    config["service"]["telemetry"]["logs"] = {"encoding": "json"}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["exporters"] = ["nop"]
    collector = Collector(tmp_path, config).start()
    assert collector.proc is not None
    supervisor = collector.proc.pid
    # the validated config was handed over and the supervisor re-executed itself without
    # the components: no Arrow, gRPC or numpy libraries are mapped in it
    maps = Path(f"/proc/{supervisor}/maps").read_text()
    cmdline = Path(f"/proc/{supervisor}/cmdline").read_bytes().split(b"\0")
    assert b"otlp.workers" in cmdline
    assert "libarrow" not in maps and "cygrpc" not in maps and "numpy" not in maps
    assert collector.stop() == 0
    reports = [
        doc
        for doc in (json.loads(line) for line in collector.logs().splitlines() if line[:1] == "{")
        if doc.get("msg") == "Memory allocator settings"
    ]
    # the supervisor (before and after its exec) and both workers, each for itself
    assert len(reports) == 4, collector.logs()
    pids = {doc["pid"] for doc in reports}
    assert supervisor in pids and len(pids) == 3
    for doc in reports:
        assert doc["malloc_arena_max"] == 1
        if doc["pid"] != supervisor:
            assert doc["arrow_pool_backend"] == "system"
