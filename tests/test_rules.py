"""The rules processor's evaluation on a fake clock (no sleeps): each condition kind,
`for`/duration, resolution, repeat, escalation, inhibition, grouping, validation, state
across a restart, alert history as log records, rules_file reload."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp.batch import Batch
from otlp.config import validate
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.errors import ConfigError
from otlp.telemetry import Telemetry
from processors.rules.config import RulesConfig
from processors.rules.engine import Engine
from tests.fakes import FakeClock
from tests.otlp_samples import av, kv

HOOK = {"ops": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}


def _kvs(d: dict[str, Any]) -> list:
    return [kv(k, v) for k, v in d.items()]


def gauge(name: str, points: list[tuple[float, dict[str, Any]]], host: str = "h1") -> Batch:
    metric = m.Metric(
        name=name,
        gauge=m.Gauge(
            data_points=[m.NumberDataPoint(as_double=v, attributes=_kvs(a)) for v, a in points]
        ),
    )
    return _metrics(metric, host)


def counter(name: str, value: int, host: str = "h1") -> Batch:
    metric = m.Metric(
        name=name,
        sum=m.Sum(
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
            data_points=[m.NumberDataPoint(as_int=value)],
        ),
    )
    return _metrics(metric, host)


def histogram(name: str, bounds: list[float], counts: list[int], host: str = "h1") -> Batch:
    metric = m.Metric(
        name=name,
        histogram=m.Histogram(
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA,
            data_points=[
                m.HistogramDataPoint(
                    count=sum(counts), sum=1.0, explicit_bounds=bounds, bucket_counts=counts
                )
            ],
        ),
    )
    return _metrics(metric, host)


def _metrics(metric: m.Metric, host: str) -> Batch:
    req = ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=Resource(attributes=_kvs({"service.name": "api", "host.name": host})),
                scope_metrics=[m.ScopeMetrics(metrics=[metric])],
            )
        ]
    )
    return decode_metrics(req)


def logs(bodies: list[tuple[str, int]], service: str = "api") -> Batch:
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=_kvs({"service.name": service})),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(body=av(b), severity_number=sev) for b, sev in bodies
                        ]
                    )
                ],
            )
        ]
    )
    return decode_logs(req)


def spans(service: str, items: list[tuple[str, float, bool]]) -> Batch:
    """(name, duration ms, is error) per span."""
    out = []
    for i, (name, millis, error) in enumerate(items):
        out.append(
            Span(
                trace_id=bytes([1] * 15 + [i % 256]),
                span_id=bytes([2] * 7 + [i % 256]),
                name=name,
                start_time_unix_nano=1_000_000_000,
                end_time_unix_nano=1_000_000_000 + int(millis * 1e6),
                status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
            )
        )
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_kvs({"service.name": service})),
                scope_spans=[ScopeSpans(spans=out)],
            )
        ]
    )
    return decode_traces(req)


def engine(rules: list[dict[str, Any]], tmp: Path | None = None, **extra: Any) -> Engine:
    doc = {"channels": HOOK, "rules": rules, **extra}
    if tmp is not None:
        doc["state_file"] = str(tmp / "alerts.json")
    config = RulesConfig.model_validate(doc)
    return Engine("rules", config, Telemetry(), clock=FakeClock())


def at(e: Engine, t: float):  # type: ignore[no-untyped-def]
    e.clock.now = t  # type: ignore[attr-defined]
    return e.evaluate()


def statuses(outcome) -> list[tuple[str, str, list[dict[str, str]]]]:  # type: ignore[no-untyped-def]
    return [
        (n["status"], n["reason"], [a["labels"] for a in n["alerts"]])
        for n in outcome.notifications
    ]


def cpu_rule(**kw: Any) -> dict[str, Any]:
    return {
        "id": "cpu",
        "name": "CPU high",
        "severity": "high",
        "channels": ["ops"],
        "group_by": ["host.name"],
        "conditions": [
            {
                "signal": "metrics",
                "metric": "cpu",
                "aggregation": "avg",
                "window": "60s",
                "operator": "gt",
                "threshold": 80,
            }
        ],
        **kw,
    }


def test_metric_avg_duration_and_resolution() -> None:
    e = engine([cpu_rule(**{"for": "30s", "resolve_after": "20s", "labels": {"team": "infra"}})])
    e.observe(gauge("cpu", [(90.0, {}), (95.0, {})], host="h1"))
    e.observe(gauge("cpu", [(10.0, {})], host="h2"))
    e.observe(gauge("other", [(99.0, {})], host="h3"))
    out = at(e, 1)
    assert [(t.previous, t.current, t.instance.labels) for t in out.transitions] == [
        ("inactive", "pending", {"host.name": "h1"})
    ]
    assert out.notifications == []
    # still pending before `for` elapsed
    e.clock.now = 20
    e.observe(gauge("cpu", [(85.0, {})], host="h1"))
    assert at(e, 20).notifications == []
    e.observe(gauge("cpu", [(85.0, {})], host="h1"))
    out = at(e, 31)
    assert [(t.previous, t.current) for t in out.transitions] == [("pending", "firing")]
    (note,) = out.notifications
    assert note["status"] == "firing" and note["channel"] == "ops"
    alert = note["alerts"][0]
    assert alert["labels"] == {
        "alertname": "CPU high",
        "rule_id": "cpu",
        "severity": "high",
        "team": "infra",
        "host.name": "h1",
    }
    assert alert["value"] == pytest.approx((90 + 95 + 85 + 85) / 4)
    # evaluated again: deduplicated
    assert at(e, 40).notifications == []
    # the data leaves the window (last sample at 31, window 60s): false from 92 on,
    # resolved once false for resolve_after (20s)
    assert at(e, 95).notifications == []
    out = at(e, 115)
    assert statuses(out) == [("resolved", "resolved", [alert["labels"]])]
    assert out.notifications[0]["alerts"][0]["endsAt"] == "1970-01-01T00:01:55Z"
    assert e.evaluator.instances == {}


def test_pending_that_stops_holding_never_notifies() -> None:
    e = engine([cpu_rule(**{"for": "30s"})])
    e.observe(gauge("cpu", [(90.0, {})]))
    assert [t.current for t in at(e, 1).transitions] == ["pending"]
    e.clock.now = 10
    e.observe(gauge("cpu", [(0.0, {})] * 10))
    out = at(e, 10)
    assert [(t.previous, t.current) for t in out.transitions] == [("pending", "inactive")]
    assert out.notifications == []


def test_metric_matchers_and_aggregations() -> None:
    base = cpu_rule()["conditions"][0]
    rules = []
    for agg, op, threshold in (
        ("min", "gte", 10),
        ("max", "eq", 50),
        ("sum", "gt", 59),
        ("count", "eq", 3),
    ):
        cond = {**base, "aggregation": agg, "operator": op, "threshold": threshold}
        cond["match"] = [{"key": "mode", "value": "user|system", "op": "=~"}]
        rules.append(cpu_rule(id=f"cpu-{agg}", group_by=[], conditions=[cond]))
    e = engine(rules)
    e.observe(
        gauge(
            "cpu",
            [(10.0, {"mode": "user"}), (50.0, {"mode": "system"}), (0.0, {"mode": "idle"})],
        )
    )
    e.observe(gauge("cpu", [(0.0, {"mode": "user"})]))
    out = at(e, 1)
    fired = {n["rule"]["id"]: n["alerts"][0]["value"] for n in out.notifications}
    assert fired == {"cpu-max": 50.0, "cpu-sum": 60.0, "cpu-count": 3.0}


def test_metric_rate_of_a_cumulative_counter() -> None:
    rule = cpu_rule(
        id="req-rate",
        group_by=[],
        conditions=[
            {
                "signal": "metrics",
                "metric": "requests",
                "aggregation": "rate",
                "window": "10s",
                "operator": "gt",
                "threshold": 5,
            }
        ],
    )
    e = engine([rule])
    for t, total in ((0, 100), (5, 130), (9, 170)):
        e.clock.now = t
        e.observe(counter("requests", total, host="h1"))
        # a second series (another host) restarting at 5: counted from the reset
        e.observe(counter("requests", {0: 40, 5: 10, 9: 30}[t], host="h2"))
    out = at(e, 9.5)
    (note,) = out.notifications
    # ((170 - 100) + 30) / 10 s
    assert note["alerts"][0]["value"] == pytest.approx(10.0)


def test_histogram_percentile() -> None:
    rule = cpu_rule(
        id="p99",
        conditions=[
            {
                "signal": "metrics",
                "metric": "latency",
                "aggregation": "percentile",
                "percentile": 90,
                "window": "60s",
                "operator": "gt",
                "threshold": 200,
            }
        ],
    )
    e = engine([rule])
    # h1: 90 % of 100 observations at or below 100 → p90 ≤ 100
    e.observe(histogram("latency", [100, 500], [90, 10, 0], host="h1"))
    # h2: most above 100, p90 interpolated inside (100, 500]
    e.observe(histogram("latency", [100, 500], [10, 90, 0], host="h2"))
    out = at(e, 1)
    (note,) = out.notifications
    (alert,) = note["alerts"]
    assert alert["labels"]["host.name"] == "h2"
    assert alert["value"] == pytest.approx(100 + 400 * (80 / 90))


def test_log_condition_count_and_rate_per_service() -> None:
    cond = {
        "signal": "logs",
        "condition": 'severity_number >= SEVERITY_NUMBER_ERROR and IsMatch(body, "timeout.*")',
        "window": "60s",
        "operator": "gte",
        "threshold": 3,
    }
    rules = [
        {"id": "timeouts", "channels": ["ops"], "group_by": ["service.name"], "conditions": [cond]},
        {
            "id": "timeout-rate",
            "channels": ["ops"],
            "conditions": [{**cond, "aggregation": "rate", "threshold": 0.05}],
        },
    ]
    e = engine(rules)
    e.observe(logs([("timeout calling db", 17)] * 3 + [("timeout", 9), ("ok", 17)], "api"))
    e.observe(logs([("timeout calling db", 17)] * 2, "web"))
    out = at(e, 1)
    got = sorted(
        (n["rule"]["id"], a["labels"].get("service.name", ""), round(a["value"], 4))
        for n in out.notifications
        for a in n["alerts"]
    )
    assert got == [("timeout-rate", "", round(5 / 60, 4)), ("timeouts", "api", 3.0)]


def test_log_count_below_threshold_keeps_firing_when_the_stream_stops() -> None:
    rule = {
        "id": "quiet",
        "channels": ["ops"],
        "group_by": ["service.name"],
        "conditions": [
            {
                "signal": "logs",
                "window": "30s",
                "operator": "lt",
                "threshold": 3,
                "aggregation": "count",
            }
        ],
    }
    e = engine([rule])
    e.observe(logs([("tick", 9)]))
    (note,) = at(e, 1).notifications
    assert note["alerts"][0]["value"] == 1.0
    # no data at all for the group: its count is 0, still below 3, still firing
    assert at(e, 40).notifications == []
    (inst,) = e.evaluator.instances.values()
    assert inst.state == "firing" and inst.value == 0.0
    e.clock.now = 50
    e.observe(logs([("tick", 9)] * 5))
    assert statuses(at(e, 50))[0][:2] == ("resolved", "resolved")


def test_trace_error_rate_and_latency_per_service_and_operation() -> None:
    rules = [
        {
            "id": "errors",
            "channels": ["ops"],
            "severity": "critical",
            "group_by": ["service.name"],
            "conditions": [
                {
                    "signal": "traces",
                    "measure": "error_rate",
                    "operator": "gt",
                    "threshold": 0.2,
                    "min_spans": 5,
                }
            ],
        },
        {
            "id": "slow",
            "channels": ["ops"],
            "group_by": ["service.name", "span.name"],
            "conditions": [
                {
                    "signal": "traces",
                    "measure": "latency",
                    "percentile": 99,
                    "operator": "gt",
                    "threshold": 1000,
                    "condition": "kind != SPAN_KIND_CLIENT",
                }
            ],
        },
    ]
    e = engine(rules)
    e.observe(spans("api", [("GET /a", 10, i < 3) for i in range(10)]))
    e.observe(spans("api", [("GET /slow", 2000, False)] * 5))
    e.observe(spans("web", [("GET /", 10, True)] * 4))  # below min_spans
    out = at(e, 1)
    got = {
        (n["rule"]["id"], tuple(sorted(a["labels"].items())), round(a["value"], 3))
        for n in out.notifications
        for a in n["alerts"]
    }
    errors = {g for g in got if g[0] == "errors"}
    # 3 errors of 15 spans of api: 0.2 is not > 0.2
    assert errors == set()
    slow = [g for g in got if g[0] == "slow"]
    assert len(slow) == 1
    labels = dict(slow[0][1])
    assert labels["service.name"] == "api" and labels["span.name"] == "GET /slow"
    # log buckets: within 2 % of the true value
    assert slow[0][2] == pytest.approx(2000, rel=0.03)
    e.clock.now = 2
    e.observe(spans("api", [("GET /a", 10, True)] * 5))
    out = at(e, 2)
    assert [(n["rule"]["id"], n["alerts"][0]["value"]) for n in out.notifications] == [
        ("errors", pytest.approx(8 / 20))
    ]


def test_grouping_repeat_and_escalation() -> None:
    channels = {
        "ops": {"type": "webhook", "url": "http://127.0.0.1:9/a"},
        "pager": {"type": "webhook", "url": "http://127.0.0.1:9/b"},
    }
    rule = cpu_rule(
        repeat_interval="100s",
        escalation=[{"after": "50s", "channels": ["pager"]}],
    )
    e = engine([rule], channels=channels)

    def feed(t: float) -> None:
        e.clock.now = t
        e.observe(gauge("cpu", [(99.0, {})], host="h1"))
        e.observe(gauge("cpu", [(99.0, {})], host="h2"))

    feed(0)
    out = at(e, 0)
    # two instances, one notification
    assert statuses(out) == [
        (
            "firing",
            "new",
            [
                {"alertname": "CPU high", "rule_id": "cpu", "severity": "high", "host.name": "h1"},
                {"alertname": "CPU high", "rule_id": "cpu", "severity": "high", "host.name": "h2"},
            ],
        )
    ]
    feed(30)
    assert at(e, 30).notifications == []
    feed(55)
    out = at(e, 55)
    assert [(n["channel"], n["reason"], len(n["alerts"])) for n in out.notifications] == [
        ("pager", "escalation", 2)
    ]
    assert out.notifications[0]["alerts"][0]["escalationLevel"] == 1
    feed(90)
    assert at(e, 90).notifications == []
    feed(100)
    out = at(e, 100)
    assert sorted((n["channel"], n["reason"]) for n in out.notifications) == [
        ("ops", "repeat"),
        ("pager", "repeat"),
    ]
    # resolution goes to every channel that was told
    out = at(e, 200)
    assert sorted((n["channel"], n["status"]) for n in out.notifications) == [
        ("ops", "resolved"),
        ("pager", "resolved"),
    ]


def test_inhibition_by_a_higher_severity_alert_with_the_same_labels() -> None:
    warn = cpu_rule(
        id="cpu-warn",
        severity="medium",
        conditions=[{**cpu_rule()["conditions"][0], "threshold": 70}],
    )
    crit = cpu_rule(
        id="cpu-crit",
        severity="critical",
        conditions=[{**cpu_rule()["conditions"][0], "threshold": 90}],
    )
    e = engine([warn, crit])
    e.observe(gauge("cpu", [(95.0, {})], host="h1"))
    e.observe(gauge("cpu", [(75.0, {})], host="h2"))
    out = at(e, 1)
    got = sorted(
        (n["rule"]["id"], a["labels"]["host.name"]) for n in out.notifications for a in n["alerts"]
    )
    # h1's warning is inhibited by its critical alert; h2 has only the warning
    assert got == [("cpu-crit", "h1"), ("cpu-warn", "h2")]
    # the critical one resolves (value drops to 75): the warning, still firing, goes out
    e.clock.now = 100
    e.observe(gauge("cpu", [(75.0, {})], host="h1"))
    e.observe(gauge("cpu", [(75.0, {})], host="h2"))
    out = at(e, 100)
    got = sorted(
        (n["rule"]["id"], n["status"], a["labels"]["host.name"])
        for n in out.notifications
        for a in n["alerts"]
    )
    assert got == [("cpu-crit", "resolved", "h1"), ("cpu-warn", "firing", "h1")]


def test_several_conditions_must_all_hold() -> None:
    rule = cpu_rule(group_by=["service.name"])
    rule["conditions"].append(
        {"signal": "logs", "operator": "gt", "threshold": 0, "condition": 'IsMatch(body, "oom")'}
    )
    e = engine([rule])
    e.observe(gauge("cpu", [(99.0, {})]))
    assert at(e, 1).notifications == []
    e.observe(logs([("oom killed", 17)]))
    (note,) = at(e, 2).notifications
    assert note["alerts"][0]["labels"]["service.name"] == "api"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"conditions": [{**cpu_rule()["conditions"][0], "operator": "above"}]}, "rule 'cpu'"),
        ({"for": "5 minutes"}, "invalid duration"),
        ({"channels": ["nowhere"]}, "unknown channel 'nowhere'"),
        ({"severity": "urgent"}, "rule 'cpu'"),
        (
            {
                "conditions": [
                    {"signal": "logs", "operator": "gt", "threshold": 1, "condition": "body =="}
                ]
            },
            "rule 'cpu'",
        ),
    ],
)
def test_validation_names_the_rule(change: dict[str, Any], expected: str) -> None:
    raw = {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "processors": {"rules": {"channels": HOOK, "rules": [cpu_rule(**change)]}},
        "exporters": {"nop": {}},
        "service": {
            "pipelines": {
                "metrics": {"receivers": ["otlp"], "processors": ["rules"], "exporters": ["nop"]}
            }
        },
    }
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert expected in str(info.value)
    assert "cpu" in str(info.value)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    rule = cpu_rule(resolve_after="10s")
    first = engine([rule], tmp_path)
    first.load(None)
    first.observe(gauge("cpu", [(99.0, {})]))
    assert len(at(first, 0).notifications) == 1
    assert first.notifier.outbox  # not delivered: kept for the next start
    # "restart": a new engine on the same state file, while the alert still fires
    second = engine([rule], tmp_path)
    second.load(None)
    assert [i.state for i in second.evaluator.instances.values()] == ["firing"]
    assert len(second.notifier.outbox) == 1
    second.observe(gauge("cpu", [(99.0, {})]))
    assert at(second, 5).notifications == []
    # the data stops; the resolution is not lost
    assert at(second, 70).notifications == []
    third = engine([rule], tmp_path)
    third.load(None)
    out = at(third, 80)
    assert statuses(out)[0][:2] == ("resolved", "resolved")


def test_corrupt_state_file_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "alerts.json").write_text("{not json")
    e = engine([cpu_rule()], tmp_path)
    e.load(None)
    assert e.evaluator.instances == {}
    assert (tmp_path / "alerts.json.corrupt").exists()


class _Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


async def test_transitions_become_log_records() -> None:
    e = engine([cpu_rule(**{"for": "10s"})])
    sink = _Sink()
    e.history_sinks.append(sink)
    e.observe(gauge("cpu", [(99.0, {})]))
    at(e, 0)
    e.observe(gauge("cpu", [(99.0, {})]))
    at(e, 10)
    await e.flush_history()
    (batch,) = sink.batches
    rows = batch.tables["logs"].to_pylist()
    assert [r["body"]["str"] for r in rows] == [
        "CPU high inactive -> pending",
        "CPU high pending -> firing",
    ]
    attrs = {a["key"]: a["str"] for a in rows[1]["attributes"] if a["str"] is not None}
    assert attrs["alert.rule_id"] == "cpu" and attrs["alert.state"] == "firing"
    assert attrs["alert.label.host.name"] == "h1"
    assert rows[1]["severity_text"] == "ERROR" and rows[1]["event_name"] == "alert.transition"
    assert batch.resources.column("service_name").to_pylist() == ["airis-rules"]


def test_rules_file_reload_keeps_windows(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [cpu_rule(**{"for": "0s"})]}))
    config = RulesConfig.model_validate({"channels": HOOK, "rules_file": str(path)})
    e = Engine("rules", config, Telemetry(), clock=FakeClock())
    e.observe(gauge("cpu", [(99.0, {})]))
    # a broken file keeps the current rules
    path.write_text("rules: [{id: cpu, conditions: [{signal: metrics, operator: nope}]}]")
    assert e.reload() is False
    # an unknown channel too
    path.write_text(yaml.safe_dump([cpu_rule(channels=["nowhere"])]))
    assert e.reload() is False
    assert e.rules[0].name == "CPU high"
    # a new name and threshold over the same data: the data already seen still counts
    changed = cpu_rule(name="CPU very high")
    changed["conditions"][0]["threshold"] = 95
    path.write_text(yaml.safe_dump({"rules": [changed]}))
    assert e.reload() is True
    (note,) = at(e, 1).notifications
    assert note["rule"]["name"] == "CPU very high"
    assert note["alerts"][0]["value"] == 99.0
    # a different aggregation starts an empty window
    changed["conditions"][0]["aggregation"] = "max"
    path.write_text(yaml.safe_dump({"rules": [changed]}))
    assert e.reload() is True
    assert e.compiled["cpu"][0].values(2) == {}


def test_self_metrics() -> None:
    e = engine([cpu_rule()])
    e.observe(gauge("cpu", [(99.0, {})]))
    at(e, 1)
    at(e, 2)
    registry = e.metrics.evaluations._labelnames
    assert registry == ("processor", "rule")
    assert e.telemetry.value("airis_rules_evaluations_total", processor="rules", rule="cpu") == 2
    labels = {"processor": "rules", "rule": "cpu"}
    assert e.telemetry.value("airis_rules_alert_instances", state="firing", **labels) == 1
    assert e.telemetry.value("airis_rules_alert_instances", state="pending", **labels) == 0


class _FlakyHook:
    """A real HTTP server answering 503 to the first `failures` requests, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.failures > 0:
                    hook.failures -= 1
                    self.send_response(503)
                else:
                    hook.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _until(check: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_delivery_retries_with_backoff_and_a_dead_channel_never_blocks() -> None:
    hook = _FlakyHook(failures=2)
    channels = {
        "flaky": {"type": "webhook", "url": hook.url, "retry": {"initial_interval": "1s"}},
        # nothing listens there: every attempt fails until max_elapsed_time
        "dead": {
            "type": "webhook",
            "url": "http://127.0.0.1:9/nothing",
            "queue_size": 1,
            "retry": {"initial_interval": "1s", "max_elapsed_time": "5s"},
        },
    }
    e = engine([cpu_rule(channels=["flaky", "dead"], group_by=[])], channels=channels)
    await e.start(None, run=False)
    try:
        e.observe(gauge("cpu", [(99.0, {})]))
        at(e, 1)
        labels = {"processor": "rules"}
        await _until(
            lambda: (
                e.telemetry.value("airis_rules_notifications_sent_total", channel="flaky", **labels)
                == 1
            )
        )
        # two refusals, two backoff sleeps on the (fake) clock, then delivered
        assert len(hook.bodies) == 1 and hook.bodies[0]["status"] == "firing"
        await _until(
            lambda: (
                e.telemetry.value(
                    "airis_rules_notifications_failed_total",
                    channel="dead",
                    reason="retries_exhausted",
                    **labels,
                )
                == 1
            )
        )
        assert not e.notifier.outbox
    finally:
        await e.shutdown()
        hook.close()


async def test_a_full_channel_queue_drops_and_counts() -> None:
    channels = {
        "dead": {"type": "webhook", "url": "http://127.0.0.1:9/x", "queue_size": 1},
    }
    rules = [cpu_rule(id=f"r{i}", channels=["dead"], group_by=[]) for i in range(3)]
    e = engine(rules, channels=channels)
    e.notifier.start()
    try:
        e.observe(gauge("cpu", [(99.0, {})]))
        # evaluate() returns at once whatever the channel does
        assert len(at(e, 1).notifications) == 3
        dropped = e.telemetry.value(
            "airis_rules_notifications_failed_total",
            processor="rules",
            channel="dead",
            reason="queue_full",
        )
        assert dropped >= 1
    finally:
        await e.notifier.stop()


async def test_sighup_reloads_the_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump([cpu_rule()]))
    config = RulesConfig.model_validate({"channels": HOOK, "rules_file": str(path)})
    e = Engine("rules", config, Telemetry(), clock=FakeClock())
    await e.start(None, run=False)
    try:
        path.write_text(yaml.safe_dump([cpu_rule(), cpu_rule(id="cpu2")]))
        os.kill(os.getpid(), signal.SIGHUP)
        await _until(lambda: len(e.rules) == 2)
    finally:
        await e.shutdown()


def test_alertmanager_alerts_are_sent_again_while_firing() -> None:
    channels = {
        "am": {"type": "alertmanager", "url": "http://127.0.0.1:9", "resend_interval": "30s"}
    }
    e = engine([cpu_rule(channels=["am"], repeat_interval="0s")], channels=channels)

    def sent() -> list[str]:
        return [entry["notification"]["reason"] for entry in e.notifier.outbox.values()]

    for t in (0, 10, 30, 40, 60):
        e.clock.now = t
        e.observe(gauge("cpu", [(99.0, {})]))
        at(e, t)
    assert sent() == ["new", "resend", "resend"]


def test_exponential_histogram_percentile_and_histogram_avg() -> None:
    point = m.ExponentialHistogramDataPoint(
        count=100,
        sum=500.0,
        scale=0,
        zero_count=0,
        positive=m.ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[10, 90]),
    )
    exp_metric = m.Metric(
        name="latency.exp",
        exponential_histogram=m.ExponentialHistogram(
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA, data_points=[point]
        ),
    )
    base = cpu_rule()["conditions"][0]
    rules = [
        cpu_rule(
            id="p50",
            group_by=[],
            conditions=[
                {
                    **base,
                    "metric": "latency.exp",
                    "aggregation": "percentile",
                    "percentile": 50,
                    "threshold": 0,
                }
            ],
        ),
        cpu_rule(
            id="avg",
            group_by=[],
            conditions=[{**base, "metric": "latency", "aggregation": "avg", "threshold": 0}],
        ),
    ]
    e = engine(rules)
    e.observe(_metrics(exp_metric, "h1"))
    # bucket counts 90 + 10, sum 1.0 (see histogram()): avg = 1.0 / 100
    e.observe(histogram("latency", [100], [90, 10]))
    values = {n["rule"]["id"]: n["alerts"][0]["value"] for n in at(e, 1).notifications}
    # scale 0: bucket i is (2^i, 2^(i+1)]; offset 1 → (2, 4] holds 10, (4, 8] holds 90;
    # rank 50 lies 40/90 of the way into (4, 8]
    assert values["p50"] == pytest.approx(4 + 4 * 40 / 90)
    assert values["avg"] == pytest.approx(0.01)
