"""CPU time and memory of a process tree, read from /proc (Linux).

The collector under test may be several processes (a supervisor and its workers), so every
figure is summed over the process and all its descendants alive at the time of reading.
CPU is utime + stime of /proc/<pid>/stat, which covers all threads of a process (grpc-core's
and chDB's threads included).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    return text.rpartition(")")[2].split()


def tree(root: int) -> list[int]:
    """`root` and its descendants (children first found by scanning /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            # after the command: state, ppid, ...
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (all their threads)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # utime and stime are fields 14 and 15 of stat; [0] here is field 3 (state)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(_PROC / str(pid) / "status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_by_pid(pids: list[int]) -> dict[int, int]:
    """VmHWM (the peak resident set size so far) of each process, in bytes."""
    return {pid: _status_kib(pid, "VmHWM") * 1024 for pid in pids}


def reset_peak_rss(pids: list[int]) -> None:
    """Start VmHWM over from the current RSS (Linux >= 4.0: "5" to clear_refs), so a later
    peak_rss_by_pid covers only what came after."""
    for pid in pids:
        try:
            (_PROC / str(pid) / "clear_refs").write_text("5")
        except OSError:
            pass  # the process is gone


def rss_bytes(pids: list[int]) -> int:
    return sum(_status_kib(pid, "VmRSS") * 1024 for pid in pids)


def thread_cpu(pids: list[int]) -> dict[tuple[int, int, str], float]:
    """CPU seconds of every thread of the given processes: (pid, tid, name) → seconds.
    Native threads count too (chDB's, grpc-core's), which a Python profiler cannot see."""
    out: dict[tuple[int, int, str], float] = {}
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(_PROC / str(pid) / "task")]
        except OSError:
            continue
        for tid in tids:
            try:
                text = (_PROC / str(pid) / "task" / str(tid) / "stat").read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rpartition(")")[2].split()
            out[(pid, tid, name)] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


def thread_groups(
    before: dict[tuple[int, int, str], float], after: dict[tuple[int, int, str], float]
) -> dict[str, float]:
    """CPU seconds spent between two `thread_cpu` readings, per thread group: "main" for
    each process's main thread, otherwise the thread name with its digits as `*`."""
    groups: dict[str, float] = {}
    for key, seconds in after.items():
        pid, tid, name = key
        spent = seconds - before.get(key, 0.0)
        if spent <= 0:
            continue
        group = "main thread" if tid == pid else re.sub(r"\d+", "*", name)
        groups[group] = groups.get(group, 0.0) + spent
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


class TreeMeter:
    """CPU of a process tree between two readings; the tree is re-read at each reading so
    processes started later (workers) are counted too."""

    def __init__(self, root: int) -> None:
        self.root = root

    def pids(self) -> list[int]:
        return tree(self.root)

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def peak_rss(self) -> dict[int, int]:
        return peak_rss_by_pid(self.pids())
