"""Where AIRIS spends its CPU under load: py-spy samples the collector while the load
generator saturates it, and the samples are summarised per function.

py-spy sees Python threads (with --native also the C frames under them, e.g. upb and Arrow);
grpc-core's own threads are not Python threads and are not in the profile.

Two views of the same samples:
- "project functions": each sample is billed to the innermost frame that is AIRIS code, so a
  library call (protobuf parse, Arrow compute, a chDB insert) counts for the AIRIS function
  that made it;
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
    argv += ["--format", "raw", "--output", str(out), "--rate", "200", "--subprocesses"]
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


def summarize(raw: Path, top: int = 15) -> dict[str, object]:
    """Billed samples per project function and per leaf frame, as shares of all samples."""
    project: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_parse_frame(f) for f in stack.split(";")]
        billed = "(no AIRIS frame: event loop, grpc, uvicorn)"
        for func, path in reversed(frames):
            rel = _project_file(path)
            if rel is not None:
                billed = f"{func} ({rel})"
                break
        project[billed] += count
        func, path = frames[-1]
        where = _project_file(path) or _short(path)
        leaf[f"{func} ({where})" if where else func] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "project": share(project), "leaf": share(leaf)}


def to_markdown(title: str, summary: dict[str, object]) -> str:
    lines = [f"### Profile: {title} ({summary['samples']} samples)", ""]
    for key, heading in (
        ("project", "billed to the innermost AIRIS function"),
        ("leaf", "leaf frames"),
    ):
        lines += [f"| % of samples | {heading} |", "| ---: | --- |"]
        for name, pct in summary[key]:  # type: ignore[attr-defined]
            lines.append(f"| {pct} | `{name}` |")
        lines.append("")
    return "\n".join(lines)
