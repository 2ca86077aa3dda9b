"""`make bench`: the scenarios side by side with the OTel Collector, as one markdown table.

    python -m benchmarks.run                  # everything (about 6-8 minutes on 2 cores)
    python -m benchmarks.run --quick          # shorter steps and windows (about 3 minutes)
    python -m benchmarks.run --scenarios a,c --profile

The table goes to stdout and to benchmarks/results/latest.md (with the machine, the notes
that define each column, and profiles when asked); every figure, ramp step and error goes
to benchmarks/results/latest.json. See benchmarks/measure.py for how each figure is taken.

The load generator runs in this process, one collector is loaded at a time, and all
collectors of a scenario run from its start to its end (idle ones cost nothing measurable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks import floor, processor_chain, procstat, profiling, report
from benchmarks.measure import QUICK, Meter, Settings
from benchmarks.payloads import make_templates
from benchmarks.scenarios import BY_KEY, SCENARIOS, Scenario, Variant, variants
from benchmarks.targets import OTELCOL_VERSION, otelcol_binary

RESULTS = Path(__file__).resolve().parent / "results"
PROFILED = ("a", "c")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = {}
    for dist in ("grpcio", "protobuf", "pyarrow", "chdb", "uvloop", "uvicorn"):
        try:
            versions[dist] = version(dist)
        except Exception:
            versions[dist] = "?"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model or platform.processor(),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "otelcol": OTELCOL_VERSION,
        "versions": versions,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # other work on the machine skews every figure: say how busy it was
        "loadavg_at_start": round(os.getloadavg()[0], 2),
    }


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _profile(meter: Meter, out_dir: Path, seconds: float) -> None:
    key = meter.variant.scenario.key
    raw = out_dir / f"profile-{key}.txt"
    best = meter.variant.results["saturation"]["best"]
    proc = profiling.record(meter.collector.pid, seconds, raw)
    # load for longer than py-spy samples, so every sample is taken under load
    pids = meter.tree.pids()
    threads_before = procstat.thread_cpu(pids)
    step = await meter.load(best["concurrency"], duration=seconds + 2)
    spent = procstat.thread_groups(threads_before, procstat.thread_cpu(pids))
    _, err = await asyncio.to_thread(proc.communicate)
    if proc.returncode != 0 or not raw.exists():
        meter.variant.results["profile_error"] = err.decode(errors="replace")[-2000:]
        return
    summary = profiling.summarize(raw)
    summary["raw"] = str(raw)
    # every thread's CPU (native ones too) per item, from /proc over the profiled load
    acked = step["acknowledged"] or 1
    summary["os_threads_us_per_item"] = [
        (name, round(cpu / acked * 1e6, 2)) for name, cpu in list(spent.items())[:8]
    ]
    summary["concurrency"] = best["concurrency"]
    meter.variant.results["profile"] = summary
    await meter.settle()


async def run_scenario(
    scenario: Scenario,
    variants_: Sequence[Variant],
    settings: Settings,
    profile_dir: Path | None = None,
    profile_s: float = 8.0,
) -> float | None:
    """Measure every available variant of one scenario; returns the common window rate R."""
    templates = make_templates(scenario.signal, settings.batch)
    meters: list[Meter] = []
    try:
        for v in variants_:
            if not v.available:
                continue
            assert v.collector is not None
            try:
                if v.sink is not None:
                    v.sink.start()
                v.collector.start()
            except Exception as exc:
                v.results["error"] = f"failed to start: {exc}"[:500]
                _log(f"  {v.label}: {v.results['error']}")
                v.collector.kill()
                if v.sink is not None:
                    v.sink.kill()
                continue
            meters.append(Meter(v, templates, settings))

        for m in meters:
            _log(f"  {m.variant.label}: ramp")
            await m.warmup()
            ramp = await m.ramp()
            best = ramp["best"]
            _log(
                f"  {m.variant.label}: {best['items_per_s']:,.0f} items/s at concurrency "
                f"{best['concurrency']}, {best['cpu_us_per_item']} µs/item"
            )
        saturations = [m.variant.results["saturation"]["best"]["items_per_s"] for m in meters]
        rate = 0.5 * min(saturations) if saturations and min(saturations) > 0 else None
        if rate:
            # the same offered load for everyone: rate, requests in flight and connections
            concurrency = max(m.window_concurrency() for m in meters)
            for turn in range(settings.window_repeats):
                for m in meters[turn % len(meters) :] + meters[: turn % len(meters)]:
                    window = await m.window(rate, concurrency)
                    _log(
                        f"  {m.variant.label}: at {rate:,.0f}/s {window['cpu_us_per_item']}"
                        f" µs/item, p50 {window['latency_ms'].get('p50')} ms"
                    )
        for m in meters:
            m.peak_rss()
        if profile_dir is not None:
            for m in meters:
                if m.variant.side == "airis" and m.variant.workers == 1:
                    _log(f"  {m.variant.label}: profiling for {profile_s:.0f}s")
                    await _profile(m, profile_dir, profile_s)
        for m in meters:
            m.finish()
        return rate
    finally:
        for v in variants_:
            if v.collector is not None:
                v.collector.kill()
            if v.sink is not None:
                v.sink.kill()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short steps and windows")
    p.add_argument(
        "--scenarios",
        default=",".join(s.key for s in SCENARIOS),
        help="comma-separated scenario keys (a-f)",
    )
    p.add_argument("--no-otelcol", action="store_true", help="measure AIRIS only")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also run scenario (a) with this many AIRIS workers (1 or 0: skip)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help=f"profile AIRIS with py-spy in scenarios {', '.join(PROFILED)}",
    )
    p.add_argument("--profile-seconds", type=float, default=8.0)
    p.add_argument(
        "--no-chain",
        action="store_true",
        help="skip the processor chain scenario (filter + redaction + probabilistic sampling)",
    )
    p.add_argument("--step", type=float, help="seconds per ramp step")
    p.add_argument("--window", type=float, help="seconds of the fixed-rate window")
    p.add_argument("--out", type=Path, default=RESULTS, help="where latest.md/.json go")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, stores)")
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only re-render the table (and latest.md) from a results file",
    )
    return p.parse_args(argv)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = QUICK if args.quick else Settings()
    if args.step:
        settings.step_s = args.step
    if args.window:
        settings.window_s = args.window
    keys = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        raise SystemExit(f"unknown scenarios: {unknown} (known: {', '.join(BY_KEY)})")
    selected = [BY_KEY[k] for k in keys]

    info = machine()
    _log(f"machine: {info['nproc']} CPUs, {info['cpu_model']}, {info['memory']}")
    floors = []
    for sig in ("traces", "logs", "metrics"):
        if any(s.signal == sig for s in selected):
            _log(f"floor: {sig}")
            floors.append(floor.measure(sig, settings.batch, settings.floor_s))

    chain = None
    if not args.no_chain and any(s.signal == "traces" for s in selected):
        _log("processor chain: filter + redaction + probabilistic_sampler")
        chain = processor_chain.measure(settings.batch, settings.floor_s)
    binary = None if args.no_otelcol else otelcol_binary()
    work = Path(tempfile.mkdtemp(prefix="airis-bench-"))
    args.out.mkdir(parents=True, exist_ok=True)
    profile_dir = args.out if args.profile else None
    done: list[tuple[Scenario, float | None, list[Variant]]] = []
    began = time.monotonic()
    try:
        for scenario in selected:
            _log(f"({scenario.key}) {scenario.title}")
            counts = (1, args.workers) if scenario.key == "a" and args.workers > 1 else (1,)
            tmp = work / scenario.key
            tmp.mkdir()
            vs = variants(scenario, tmp, binary, counts)
            rate = await run_scenario(
                scenario,
                vs,
                settings,
                profile_dir if scenario.key in PROFILED else None,
                args.profile_seconds,
            )
            done.append((scenario, rate, vs))
            for v in vs:
                if v.results.get("error") and v.collector is not None:
                    _log(f"  {v.label} log tail:\n{v.collector.logs()[-2000:]}")
    finally:
        if args.keep:
            _log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    info["loadavg_at_end"] = round(os.getloadavg()[0], 2)
    table = report.table(done, floors)
    return {
        "machine": info,
        "settings": vars(settings),
        "elapsed_s": round(time.monotonic() - began, 1),
        "floors": floors,
        "processor_chain": chain,
        "scenarios": [
            {
                "key": s.key,
                "title": s.title,
                "signal": s.signal,
                "protocol": s.protocol,
                "rate": rate,
                "variants": [
                    {
                        "label": v.label,
                        "side": v.side,
                        "workers": v.workers,
                        "reason": v.reason,
                        "results": v.results,
                    }
                    for v in vs
                ],
            }
            for s, rate, vs in done
        ],
        "table": table,
        "_done": done,
    }


def heading(info: dict[str, Any], quick: bool) -> str:
    return (
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}; OTel Collector {info['otelcol']}; "
        f"{info['date']}; {'quick' if quick else 'full'} run; 1-minute load average "
        f"{info['loadavg_at_start']} at start, {info.get('loadavg_at_end', '?')} at end."
    )


def markdown(result: dict[str, Any], quick: bool) -> str:
    parts = [
        "# Benchmark: AIRIS next to the OpenTelemetry Collector",
        "",
        heading(result["machine"], quick),
        "",
        result["table"],
        "",
        report.NOTES.format(
            batch=result["settings"]["batch"],
            repeats=result["settings"].get("window_repeats", 1),
        ),
    ]
    if result.get("processor_chain"):
        parts += ["", processor_chain.to_markdown(result["processor_chain"])]
    for s, _, vs in result["_done"]:
        for v in vs:
            if "profile" in v.results:
                concurrency = v.results["profile"]["concurrency"]
                title = f"({s.key}) {s.title}, {v.label}, concurrency {concurrency}"
                parts += ["", profiling.to_markdown(title, v.results["profile"])]
    return "\n".join(parts) + "\n"


def load(path: Path) -> dict[str, Any]:
    """A results file read back: the table is rendered again from its figures."""
    result = json.loads(path.read_text())
    done = []
    for doc in result["scenarios"]:
        scenario = BY_KEY[doc["key"]]
        vs = [
            Variant(scenario, v["side"], v["workers"], reason=v["reason"], results=v["results"])
            for v in doc["variants"]
        ]
        done.append((scenario, doc["rate"], vs))
    result["_done"] = done
    result["table"] = report.table(done, result["floors"])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.render:
        result = load(args.render)
        quick = result["settings"]["step_s"] < Settings().step_s
        (args.out / "latest.md").write_text(markdown(result, quick))
        print(heading(result["machine"], quick))
        print()
        print(result["table"])
        return 0
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(bench(args))
    text = markdown(result, args.quick)
    (args.out / "latest.md").write_text(text)
    done = result.pop("_done")
    (args.out / "latest.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(heading(result["machine"], args.quick))
    print()
    print(result["table"])
    _log(
        f"\nwritten: {args.out / 'latest.md'}, {args.out / 'latest.json'} ({result['elapsed_s']}s)"
    )
    failed = [v for _, _, vs in done for v in vs if v.results.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
