"""The self-metrics endpoint: Prometheus text at /metrics with the Collector's names, process
metrics refreshed at scrape time, served from the running loop by a real uvicorn server."""

from __future__ import annotations

import signal
import socket

import httpx
import pytest

from otlp.telemetry import Telemetry
from otlp.telemetry_server import refresh_process_metrics, serve_metrics


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, exactly as exposed (label order as written)."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_scrape_shows_component_and_process_metrics() -> None:
    telemetry = Telemetry()
    telemetry.receiver_accepted("otlp", "grpc", "traces", 5)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = await serve_metrics(telemetry, "127.0.0.1", 0)
    try:
        assert {sig: signal.getsignal(sig) for sig in before} == before
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            got = samples(response.text)
            assert got['otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"}'] == 5
            assert got["otelcol_process_memory_rss"] > 1_000_000
            assert got["otelcol_process_uptime"] > 0
            cpu = got.get("otelcol_process_cpu_seconds")
            assert cpu is not None and cpu > 0

            # values are read at scrape time, so a later scrape sees what happened since
            telemetry.receiver_accepted("otlp", "grpc", "traces", 2)
            again = samples((await client.get("/metrics")).text)
            assert again['otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"}'] == 7
            assert again["otelcol_process_uptime"] >= got["otelcol_process_uptime"]

            missing = await client.get("/")
            assert (missing.status_code, missing.text) == (404, "404 page not found\n")
    finally:
        await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{server.port}/metrics")


async def test_names_match_the_collector_exactly() -> None:
    """The Collector exposes counters without `_total`; so do we, in the text format."""
    telemetry = Telemetry()
    telemetry.receiver_accepted("otlp", "grpc", "traces", 3)
    server = await serve_metrics(telemetry, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            text = (await client.get("/metrics")).text
    finally:
        await server.stop()
    lines = text.splitlines()
    assert "# TYPE otelcol_receiver_accepted_spans counter" in lines
    assert 'otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"} 3.0' in lines
    assert "# TYPE otelcol_process_uptime counter" in lines
    assert not [line for line in lines if "_total" in line.split(" ")[0]]


async def test_bind_failure_raises() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with pytest.raises(OSError):
            await serve_metrics(Telemetry(), "127.0.0.1", taken.getsockname()[1])


def test_uptime_only_grows() -> None:
    telemetry = Telemetry()
    refresh_process_metrics(telemetry)
    first = telemetry.value("otelcol_process_uptime_total")
    refresh_process_metrics(telemetry)
    assert telemetry.value("otelcol_process_uptime_total") >= first > 0
    assert telemetry.value("otelcol_process_memory_rss") > 0
