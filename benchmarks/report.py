"""The benchmark's one markdown table (and the notes that define its columns)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.scenarios import Variant

COLUMNS = (
    "scenario",
    "collector",
    "items/s saturated",
    "CPU µs/item saturated",
    "CPU µs/item at R",
    "p50 / p99 ms at R",
    "peak RSS MiB: run / at R",
    "sent / acked / stored",
    "lost",
)

NOTES = """\
- **R**: the offered rate of the fixed-rate window, the same for every collector of a scenario:
  half of the lowest saturation among them, with the same requests in flight at most and
  connections (what the collector that needs the most in flight at that rate needs). Each
  collector gets {repeats} windows at R, in turns with the others; the table shows the window
  of median CPU per item (latest.json has them all) and the highest peak RSS among them.
- **items/s saturated**: sustained throughput at the best step of a concurrency ramp (1, 2,
  4, ... requests in flight, {batch} items per request) that ends when it stops growing by
  5%: items acknowledged in the step / (its load time + the time it then took to deliver
  them (see stored), less one batch timeout). A queue that takes in more than its exporter
  gets out does not count as throughput.
- **CPU µs/item**: user + system CPU of the collector's whole process tree (/proc/PID/stat,
  all threads; supervisor and workers) from the start of a step until all it got acknowledged
  was delivered, divided by the items acknowledged in it.
- **p50 / p99**: latency of the export call (request sent → response received) at R.
- **peak RSS**: VmHWM summed over the collector's processes, over the whole run (the ramp
  to saturation holds the most requests in flight) and over the window at R alone (the
  kernel's peak is reset before it).
- **sent / acked / stored**: items over the whole run; stored = rows in the embedded store,
  items the exporter sent (AIRIS nop), items the batch processor handed to nop (the
  Collector's nop has no exporter metrics) or items the sink accepted (forwarding).
  **lost** = acked - stored: data acknowledged to the client that never arrived; "extra"
  is stored beyond acked: duplicates of exports retried after a timeout although they had
  succeeded (delivery is at least once), or requests that failed at the client after they
  were queued.
- **floor**: CPU per item of `ParseFromString` (upb) of the same requests, in one process,
  next to AIRIS's decode into Arrow columns (`otlp.decode.decode_protobuf`).
- Embedded ClickHouse: chDB merges parts in the background on its own schedule, so its CPU
  shifts between steps; latest.json also has each run's whole-run CPU per item.
- AIRIS acknowledges a request once its data is in the exporter queue, i.e. after the batch
  it joined was flushed (200 ms batch timeout or 8192 items); the Collector's batch processor
  acknowledges on arrival. Latency at rates below one full batch per 200 ms shows that.
"""


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _rate(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "—"
    return f"{a / b:.2f}×"  # noqa: RUF001


def _figures(v: Variant) -> dict[str, float | None]:
    r = v.results
    best = r.get("saturation", {}).get("best", {})
    window = r.get("window", {})
    latency = window.get("latency_ms", {})
    return {
        "sat": best.get("items_per_s"),
        "cpu_sat": best.get("cpu_us_per_item"),
        "cpu_r": window.get("cpu_us_per_item"),
        "p50": latency.get("p50"),
        "p99": latency.get("p99"),
        "rss": r.get("peak_rss_mib"),
        "rss_r": window.get("peak_rss_mib"),
    }


def _variant_row(v: Variant) -> list[str]:
    if not v.available or "saturation" not in v.results:
        reason = v.reason or v.results.get("error", "did not run")
        return [v.label, reason, "—", "—", "—", "—", "—", "—"]
    f = _figures(v)
    items = v.results.get("items", {})
    stored = items.get("stored")
    counts = f"{items.get('sent', 0):,} / {items.get('acknowledged', 0):,} / " + (
        f"{stored:,}" if stored is not None else "?"
    )
    lost = items.get("lost")
    lost_text = "?" if lost is None else f"{lost:,}"
    acked = items.get("acknowledged", 0)
    if stored is not None and stored > acked:
        # stored more than acknowledged: an export that timed out but had succeeded was
        # retried (at least once), or a request failed at the client after it was queued
        lost_text += f" (+{stored - acked:,} extra)"
    label = v.label
    if v.results.get("exit_code"):
        label += f" (exit {v.results['exit_code']})"
    return [
        label,
        _rate(f["sat"]),
        _num(f["cpu_sat"], 2),
        _num(f["cpu_r"], 2),
        f"{_num(f['p50'], 1)} / {_num(f['p99'], 1)}",
        f"{_num(f['rss'], 0)} / {_num(f['rss_r'], 0)}",
        counts,
        lost_text,
    ]


def _ratio_row(label: str, a: Variant, b: Variant) -> list[str]:
    fa, fb = _figures(a), _figures(b)
    return [
        label,
        _ratio(fa["sat"], fb["sat"]),
        _ratio(fa["cpu_sat"], fb["cpu_sat"]),
        _ratio(fa["cpu_r"], fb["cpu_r"]),
        f"{_ratio(fa['p50'], fb['p50'])} / {_ratio(fa['p99'], fb['p99'])}",
        f"{_ratio(fa['rss'], fb['rss'])} / {_ratio(fa['rss_r'], fb['rss_r'])}",
        "",
        "",
    ]


def _measured(v: Variant) -> bool:
    return v.available and "saturation" in v.results


def rows(
    scenarios: Sequence[tuple[Any, float | None, list[Variant]]],
    floors: Sequence[dict[str, Any]],
) -> list[list[str]]:
    out: list[list[str]] = []
    for scenario, rate, variants in scenarios:
        title = f"({scenario.key}) {scenario.title}"
        if rate:
            title += f"; R = {_rate(rate)}/s"
        first = True
        for v in variants:
            out.append([title if first else "", *_variant_row(v)])
            first = False
        ours = next((v for v in variants if v.side == "airis" and v.workers == 1), None)
        theirs = next((v for v in variants if v.side == "otelcol"), None)
        if ours and theirs and _measured(ours) and _measured(theirs):
            out.append(["", *_ratio_row("**ratio airis / otelcol**", ours, theirs)])
        for v in variants:
            if v.side == "airis" and v.workers > 1 and ours and _measured(ours) and _measured(v):
                out.append(["", *_ratio_row(f"**ratio {v.workers} workers / 1**", v, ours)])
    # the pipeline each floor is compared with: AIRIS, 1 worker, nop if there is one
    by_signal: dict[str, Variant] = {}
    for _, _, variants in scenarios:
        for v in variants:
            if v.side != "airis" or v.workers != 1 or not _measured(v):
                continue
            current = by_signal.get(v.scenario.signal)
            prefer = (
                v.scenario.sink == "nop" and current is not None and current.scenario.sink != "nop"
            )
            if current is None or prefer:
                by_signal[v.scenario.signal] = v
    for floor in floors:
        signal = floor["signal"]
        title = f"floor: {signal}, {floor['items_per_request']:.0f} items/request"
        parse = floor.get("parse_us_per_item")
        decode = floor.get("decode_us_per_item")
        blank = ["—", "—", "—", "—"]
        out.append(
            [title, "bare `ParseFromString` (upb)", "—", _num(parse, 2), _num(parse, 2), *blank]
        )
        if decode is None:
            error = floor.get("decode_error", "not measured")
            out.append(["", f"`decode_protobuf` failed: {error}", "—", "—", "—", *blank])
            continue
        out.append(
            ["", "airis `decode_protobuf` → columns", "—", _num(decode, 2), _num(decode, 2), *blank]
        )
        out.append(
            [
                "",
                "**ratio decode / parse**",
                "",
                _ratio(decode, parse),
                _ratio(decode, parse),
                "",
                "",
                "",
                "",
            ]
        )
        pipeline = by_signal.get(signal)
        if pipeline is not None:
            f = _figures(pipeline)
            out.append(
                [
                    "",
                    f"**ratio airis ({pipeline.scenario.key}) / parse**",
                    "",
                    _ratio(f["cpu_sat"], parse),
                    _ratio(f["cpu_r"], parse),
                    "",
                    "",
                    "",
                    "",
                ]
            )
    return out


def table(
    scenarios: Sequence[tuple[Any, float | None, list[Variant]]],
    floors: Sequence[dict[str, Any]],
) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join(["---", "---"] + ["---:"] * (len(COLUMNS) - 2)) + " |",
    ]
    for row in rows(scenarios, floors):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)
