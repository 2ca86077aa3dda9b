"""A small run of the benchmark harness, so `make bench` does not rot between runs.

Scenario (a) against AIRIS and the OTel Collector, (d) against AIRIS's embedded store, each
step a fixed number of small requests: every item sent must be acknowledged and delivered,
and the table must come out. No figure is checked against a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from otelcol_peer import BUILD_TIMEOUT_S

from benchmarks import floor, profiling, report
from benchmarks.measure import Settings
from benchmarks.run import run_scenario
from benchmarks.scenarios import BY_KEY, NO_CLICKHOUSE, variants
from benchmarks.targets import otelcol_binary

SMOKE = Settings(
    warmup_s=0.0,
    levels=(4, 8),
    step_requests=20,
    batch=64,
    floor_s=0.05,
    drain_timeout_s=10.0,
    window_repeats=2,
)


def _check_counts(v: object) -> None:
    results = v.results  # type: ignore[attr-defined]
    items = results["items"]
    assert items["sent"] == items["acknowledged"] == items["stored"] > 0, results
    assert items["lost"] == 0
    assert results["exit_code"] == 0
    assert results["saturation"]["best"]["items_per_s"] > 0
    assert results["window"]["acknowledged"] == 20 * 64
    assert len(results["window_runs"]) == SMOKE.window_repeats  # in turns with the others
    assert results["window"]["peak_rss_mib"] > 0
    assert results["peak_rss_mib"] > 0


@pytest.mark.timeout(BUILD_TIMEOUT_S + 120)
async def test_benchmark_smoke(tmp_path: Path) -> None:
    binary = otelcol_binary()
    done = []
    for key in ("a", "d"):
        scenario = BY_KEY[key]
        work = tmp_path / key
        work.mkdir()
        vs = variants(scenario, work, binary)
        rate = await run_scenario(scenario, vs, SMOKE)
        assert rate is not None and rate > 0
        done.append((scenario, rate, vs))

    (ours, theirs), (stored, unavailable) = done[0][2], done[1][2]
    for v in (ours, theirs, stored):
        _check_counts(v)
    assert unavailable.reason == NO_CLICKHOUSE and not unavailable.available

    floors = [floor.measure("traces", SMOKE.batch, SMOKE.floor_s)]
    assert floors[0]["parse_us_per_item"] > 0
    text = report.table(done, floors)
    assert "ratio airis / otelcol" in text
    assert "n/a (no ClickHouse server here" in text
    assert "ParseFromString" in text
    # one header, one separator and a row per variant, ratio and floor line
    assert len(text.splitlines()) >= 2 + 4 + 2


def test_profile_summary_bills_library_time_to_project_functions(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f'process 1:"python -m otlp.cli";thread (1): MainThread;main ({root}/otlp/cli.py:69);'
        "run (asyncio/events.py:80);"
        f"export ({root}/receivers/otlp/grpc.py:120);"
        f"decode_protobuf ({root}/otlp/decode.py:71);FromString (upb.so) 30\n"
        f"thread (1): MainThread;main ({root}/otlp/cli.py:69);"
        "_run_once (asyncio/base_events.py:1900) 10\n"
        "thread (7): chdb_0;_worker (concurrent/futures/thread.py:81);"
        "PyThread_acquire_lock_timed (libpython3.11.so.1.0);0x7f00 (libc.so.6) 50\n"
    )
    summary = profiling.summarize(raw)
    assert summary["samples"] == 40 and summary["idle_samples"] == 50
    assert dict(summary["threads"]) == {"MainThread": 100.0}  # type: ignore[arg-type]
    project = dict(summary["project"])  # type: ignore[arg-type]
    assert project["decode_protobuf (otlp/decode.py)"] == 75.0
    assert project[profiling._LOOP] == 25.0
    leaf = dict(summary["leaf"])  # type: ignore[arg-type]
    assert leaf["FromString (upb.so)"] == 75.0
    assert "| 75.0 |" in profiling.to_markdown("t", summary)
