"""Allocator settings of the collector process, applied by the `airis` entry point first thing.

Under load most of the resident memory is request-sized buffers that live for a fraction of a
second: grpc-core's read buffers (allocated on its event-engine threads), the request bytes
(~220 KiB for 512 spans), the decoder's column buffers (~350 KiB) and the batch processor's
merged tables. glibc gives every thread that allocates an arena of its own (up to 8 per
core), and memory freed into one arena is reused only by the threads on that arena: grpc-core's
threads and the Python thread each keep a high-water mark of their own. Measured on scenario
(a) of benchmarks/ (128 requests of 512 spans in flight, 2 cores), one arena for the whole
process lowers the peak RSS by ~20 MiB (~205 → ~185 MiB) at no CPU cost that the benchmark
can tell from noise; two arenas lower it by nothing measurable.

Arrow's buffers go to the same malloc (Arrow's "system" pool) instead of mimalloc, whose
segments stay resident once touched (4 MiB idle) and keep free lists of their own.

Measured and left out: a fixed mmap threshold of 64 KiB (glibc's is dynamic, so after the
first free of a large block such buffers come from the heaps) brings the peak to ~170 MiB,
but the mmap/munmap and page faults of every request-sized buffer cost ~1.5 µs of CPU per
span (+50%) and halve the saturated throughput.

Nothing here changes what is computed. A user's own choice wins: MALLOC_ARENA_MAX or
GLIBC_TUNABLES for glibc, ARROW_DEFAULT_MEMORY_POOL for Arrow; and AIRIS_MALLOC_TUNING=0
leaves both allocators as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

SWITCH = "AIRIS_MALLOC_TUNING"
ARENA_MAX = 1
ARROW_POOL = "system"

_M_ARENA_MAX = -8  # mallopt parameter (malloc.h)

_applied: dict[str, object] = {}


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # gnu_get_libc_version exists in glibc only (musl's mallopt is a stub)
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    return libc


def _user_set_arenas() -> bool:
    return "MALLOC_ARENA_MAX" in os.environ or "glibc.malloc.arena_max" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )


def configure() -> dict[str, object]:
    """Apply the settings (once per process); returns what was applied. Runs before any
    thread is started (an arena is picked at a thread's first malloc) and before pyarrow is
    imported (the Arrow pool is chosen then)."""
    if _applied or os.environ.get(SWITCH, "1").strip() == "0":
        return dict(_applied)
    if "pyarrow" not in sys.modules and "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        # read by libarrow when the default pool is first asked for; inherited by the worker
        # processes, which apply the same settings themselves
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = ARROW_POOL
        _applied["arrow_memory_pool"] = ARROW_POOL
    libc = _glibc()
    if libc is not None and not _user_set_arenas():
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        if libc.mallopt(_M_ARENA_MAX, ARENA_MAX) == 1:
            _applied["malloc_arena_max"] = ARENA_MAX
    return dict(_applied)


def report() -> dict[str, object]:
    """What was applied, and the Arrow pool actually in use (once pyarrow is imported)."""
    out = dict(_applied)
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        out["arrow_pool_backend"] = pa.default_memory_pool().backend_name
    return out
