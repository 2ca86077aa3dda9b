"""Agent → gateway chains of two AIRIS collector processes: the agent forwards with the
`otlp` (gRPC) or `otlphttp` (protobuf / JSON) exporter, the gateway writes to the embedded
ClickHouse. Everything the agent acknowledged arrives exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from benchmarks.loadgen import LoadConfig, run
from tests.harness import Collector, base_config, ports, query_store

TABLES = {"traces": "otel_traces", "logs": "otel_logs", "metrics": "otel_metrics_gauge"}


def _agent_config(tmp: Path, exporter: dict[str, Any]) -> dict[str, Any]:
    config = base_config(tmp / "agent")
    config["exporters"] = exporter
    for pipeline in config["service"]["pipelines"].values():
        pipeline["exporters"] = list(exporter)
    return config


def _gateway(tmp: Path) -> tuple[Collector, dict[str, Any]]:
    (tmp / "gw").mkdir()
    config = base_config(tmp / "gw", store=tmp / "store")
    # a busy machine's slow inserts must wait rather than trip the breaker: this test is
    # about the forwarding, not the store
    config["exporters"]["clickhouse"].update(
        {"timeout": "60s", "circuit_breaker": {"enabled": False}}
    )
    return Collector(tmp / "gw", config, "gateway"), config


# (`otlp_grpc` with an http:// endpoint is covered against the Collector in test_interop_otelcol)
FORWARDERS = {
    "otlp": lambda gw: {
        "otlp": {
            "endpoint": ports(gw)["grpc"],
            "tls": {"insecure": True},
            "compression": "gzip",
            "headers": {"x-tenant": "chain"},
            "retry_on_failure": {"initial_interval": "100ms", "max_interval": "1s"},
        }
    },
    "otlphttp": lambda gw: {
        "otlphttp": {"endpoint": ports(gw)["http"], "compression": "zstd"},
    },
    "otlp_http/json": lambda gw: {
        "otlp_http/json": {"endpoint": ports(gw)["http"], "encoding": "json"},
    },
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("forwarder", list(FORWARDERS))
def test_chain_delivers_everything_once(tmp_path: Path, forwarder: str) -> None:
    gateway, gw_config = _gateway(tmp_path)
    (tmp_path / "agent").mkdir()
    agent_config = _agent_config(tmp_path, FORWARDERS[forwarder](gw_config))
    agent = Collector(tmp_path / "agent", agent_config, "agent")
    target = ports(agent_config)
    acknowledged: dict[str, int] = {}
    with gateway, agent:
        for signal, protocol in (("traces", "grpc"), ("logs", "http"), ("metrics", "grpc")):
            address = target["grpc"] if protocol == "grpc" else target["http"]
            address = address.removeprefix("http://")
            result = asyncio.run(
                run(
                    LoadConfig(
                        target=f"{protocol}://{address}",
                        signal=signal,
                        batch=50,
                        concurrency=4,
                        duration=None,
                        requests=40,
                        distinct=3,
                    )
                )
            )
            assert result["items"]["failed"] == 0, result
            acknowledged[signal] = result["items"]["acknowledged"]
        # the agent drains its queues into the gateway before it exits
        assert agent.stop() == 0, agent.logs()
        assert gateway.stop() == 0, gateway.logs()
    spans = query_store(tmp_path / "store", "SELECT count() AS n FROM otel.otel_traces")
    distinct = query_store(
        tmp_path / "store",
        "SELECT count() AS n FROM (SELECT DISTINCT TraceId, SpanId FROM otel.otel_traces)",
    )
    logs = query_store(tmp_path / "store", "SELECT count() AS n FROM otel.otel_logs")
    assert int(spans[0]["n"]) == int(distinct[0]["n"]) == acknowledged["traces"]
    assert int(logs[0]["n"]) == acknowledged["logs"]
    points = 0
    for table in ("gauge", "sum", "histogram", "exponential_histogram", "summary"):
        rows = query_store(
            tmp_path / "store", f"SELECT count() AS n FROM otel.otel_metrics_{table}"
        )
        points += int(rows[0]["n"])
    assert points == acknowledged["metrics"]
    assert "Partial success" not in agent.logs()
