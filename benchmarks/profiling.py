"""Where AIRIS spends its CPU under load: py-spy samples the collector while the load
generator saturates it, and the samples are summarised per function and per thread.

py-spy sees Python threads (with --native also the C frames under them, e.g. upb, Arrow,
grpc's Cython layer); grpc-core's own threads are not Python threads and are not in it.
Samples whose innermost frames are a wait (epoll, a condition variable, a lock) are dropped
as idle: py-spy's own idle detection misses waits that a thread enters and leaves quickly.

Views of the remaining samples:
- threads: the main thread (the event loop: receivers, processors, Python parts of the
  exporters) against helper threads (e.g. chDB inserts, which release the GIL);
- "project functions": each sample is billed to the innermost frame that is AIRIS code, so a
  library call (protobuf parse, Arrow compute, a chDB insert) counts for the AIRIS function
  that made it; with no AIRIS frame below the CLI's, it is the event loop's own work;
- "leaf frames": the frame that was running, wherever it is.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from benchmarks.targets import ROOT

_PROJECT_DIRS = ("otlp", "receivers", "processors", "exporters", "extensions", "storage")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^thread \(\d+\)(?::\s*(?P<name>.*))?$")
# a sample is idle when one of its innermost frames is one of these
_WAITS = frozenset(
    {
        "epoll_wait",
        "epoll_pwait",
        "poll",
        "ppoll",
        "select",
        "pselect",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "pthread_cond_clockwait",
        "sem_wait",
        "sem_timedwait",
        "sem_clockwait",
        "nanosleep",
        "clock_nanosleep",
        "PyThread_acquire_lock_timed",
        "accept",
        "accept4",
    }
)
_IDLE_DEPTH = 4
_LOOP = "(event loop: uvloop, grpc and uvicorn callbacks)"


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def record(pid: int, seconds: float, out: Path, native: bool = True) -> subprocess.Popen[bytes]:
    """Start sampling `pid` (and its subprocesses) for `seconds` into `out` (collapsed
    stacks, one `frame;frame;... count` per line); wait on the returned process."""
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--format", "raw", "--output", str(out), "--rate", "200", "--threads"]
    argv.append("--subprocesses")
    if native:
        argv.append("--native")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _parse_frame(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match["func"], match["file"] or ""


def _project_file(path: str) -> str | None:
    try:
        rel = Path(path).resolve().relative_to(ROOT)
    except (ValueError, OSError):
        rel = Path(path)
    if rel.parts and rel.parts[0] in _PROJECT_DIRS:
        return str(rel)
    return None


def _short(path: str) -> str:
    """A library path from site-packages on: `grpc/aio/_server.py`."""
    marker = "site-packages/"
    return path.split(marker, 1)[1] if marker in path else Path(path).name


def _thread_group(name: str) -> str:
    """`chdb_3` → `chdb_*`: a pool's threads together."""
    return re.sub(r"\d+", "*", name) if name else "(unnamed)"


def summarize(raw: Path, top: int = 15) -> dict[str, object]:
    """Busy samples per thread group, per project function and per leaf frame, as shares of
    all busy samples (idle ones are counted apart)."""
    project: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    busy = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        texts = stack.split(";")
        while texts and texts[0].startswith("process "):  # --subprocesses puts it first
            texts = texts[1:]
        thread = ""
        if texts and (match := _THREAD.match(texts[0])):
            thread = match["name"] or ""
            texts = texts[1:]
        frames = [_parse_frame(f) for f in texts]
        if not frames or any(f in _WAITS for f, _ in frames[-_IDLE_DEPTH:]):
            idle += count
            continue
        busy += count
        threads[_thread_group(thread)] += count
        billed = _LOOP
        for func, path in reversed(frames):
            rel = _project_file(path)
            if rel == "otlp/cli.py":
                break  # below this frame is the event loop, not a component
            if rel is not None:
                billed = f"{func} ({rel})"
                break
        project[billed] += count
        func, path = frames[-1]
        where = _project_file(path) or _short(path)
        leaf[f"{func} ({where})" if where else func] += count

    def share(counter: Counter[str], n: int = top) -> list[tuple[str, float]]:
        return (
            [(name, round(100 * c / busy, 1)) for name, c in counter.most_common(n)] if busy else []
        )

    return {
        "samples": busy,
        "idle_samples": idle,
        "threads": share(threads, 6),
        "project": share(project),
        "leaf": share(leaf),
    }


def to_markdown(title: str, summary: dict[str, object]) -> str:
    lines = [
        f"### Profile: {title}",
        "",
        f"{summary['samples']} busy samples at 200 Hz ({summary['idle_samples']} idle ones "
        "left out); shares of the busy samples.",
        "",
    ]
    os_threads = summary.get("os_threads_us_per_item")
    if os_threads:
        lines += ["| CPU µs/item | OS thread (/proc, native threads included) |", "| ---: | --- |"]
        lines += [f"| {us} | `{name}` |" for name, us in os_threads]  # type: ignore[attr-defined]
        lines.append("")
    for key, heading in (
        ("threads", "Python thread (py-spy)"),
        ("project", "billed to the innermost AIRIS function"),
        ("leaf", "leaf frame"),
    ):
        lines += [f"| % | {heading} |", "| ---: | --- |"]
        for name, pct in summary[key]:  # type: ignore[attr-defined]
            lines.append(f"| {pct} | `{name}` |")
        lines.append("")
    return "\n".join(lines)
