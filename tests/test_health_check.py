"""health_check extension: the contrib healthcheckextension's legacy keys and answers, served
by a real uvicorn server on a free port."""

from __future__ import annotations

import signal
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from extensions.health_check import HealthCheckConfig, HealthCheckExtension, factory
from extensions.health_check.extension import go_duration, rfc3339nano
from otlp.component import ComponentID, CreateSettings
from otlp.telemetry import Telemetry


def make(config: dict[str, Any]) -> HealthCheckExtension:
    settings = CreateSettings(ComponentID("health_check"), "extension", Telemetry())
    ext = factory.create(settings, HealthCheckConfig.model_validate(config))
    assert isinstance(ext, HealthCheckExtension)
    return ext


@pytest.fixture
async def started() -> AsyncIterator[tuple[HealthCheckExtension, httpx.AsyncClient]]:
    ext = make({"endpoint": "127.0.0.1:0"})
    await ext.start(None)  # type: ignore[arg-type]  # the extension asks nothing of the host
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ext.port}") as client:
        yield ext, client
    await ext.shutdown()


def test_defaults_and_accepted_keys() -> None:
    cfg = HealthCheckConfig.model_validate({})
    assert (cfg.endpoint, cfg.path, cfg.response_body) == ("127.0.0.1:13133", "/", None)
    assert factory.type == "health_check" and factory.kind == "extension"
    # the deprecated pipeline check loads unchanged (and is ignored, as in the Collector)
    legacy = {
        "endpoint": "0.0.0.0:13133",
        "path": "/health/status",
        "check_collector_pipeline": {
            "enabled": True,
            "interval": "5m",
            "exporter_failure_threshold": 5,
        },
        "response_body": {"healthy": "up"},
    }
    cfg = HealthCheckConfig.model_validate(legacy)
    assert cfg.host_port == ("0.0.0.0", 13133)
    assert HealthCheckConfig.model_validate({"endpoint": ":13133"}).host_port == ("", 13133)
    assert HealthCheckConfig.model_validate({"endpoint": "[::1]:1"}).host_port == ("::1", 1)


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"path": "health"}, "path must start with /"),
        ({"endpoint": ""}, "endpoint must be specified"),
        ({"endpoint": "localhost"}, "expected host:port"),
        ({"use_v2": True}, "not supported"),
        ({"port": 13133}, "Extra inputs"),
    ],
)
def test_bad_config_is_refused(given: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        HealthCheckConfig.model_validate(given)


async def test_unavailable_until_ready_then_available(
    started: tuple[HealthCheckExtension, httpx.AsyncClient],
) -> None:
    ext, client = started
    response = await client.get("/")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "Server not available",
        "upSince": "0001-01-01T00:00:00Z",
        "uptime": "",
    }

    ext.set_status(True)
    response = await client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Server available"
    assert body["upSince"].endswith("Z") and body["uptime"].endswith("s")
    # the legacy handler is mounted on "/", which Go's ServeMux matches for every path
    assert (await client.get("/anything/below")).status_code == 200

    ext.set_status(False)  # the service is shutting down
    assert (await client.get("/")).status_code == 503


async def test_custom_path_and_body() -> None:
    ext = make(
        {
            "endpoint": "127.0.0.1:0",
            "path": "/health/status",
            "response_body": {"healthy": "I'm OK", "unhealthy": "I'm bad!"},
        }
    )
    await ext.start(None)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ext.port}") as client:
            response = await client.get("/health/status")
            assert (response.status_code, response.text) == (503, "I'm bad!")
            ext.set_status(True)
            response = await client.get("/health/status")
            assert (response.status_code, response.text) == (200, "I'm OK")
            # a path without a trailing slash matches only itself
            for other in ("/", "/health/status/x", "/health"):
                missing = await client.get(other)
                assert (missing.status_code, missing.text) == (404, "404 page not found\n")
    finally:
        await ext.shutdown()


async def test_leaves_signal_handlers_and_port_alone_after_shutdown() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ext = make({"endpoint": "127.0.0.1:0"})
    await ext.start(None)  # type: ignore[arg-type]
    port = ext.port
    assert {sig: signal.getsignal(sig) for sig in before} == before
    await ext.shutdown()
    assert {sig: signal.getsignal(sig) for sig in before} == before
    # the port is free again
    with socket.create_server(("127.0.0.1", port)):
        pass


async def test_start_fails_when_the_port_is_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        ext = make({"endpoint": f"127.0.0.1:{taken.getsockname()[1]}"})
        with pytest.raises(OSError):
            await ext.start(None)  # type: ignore[arg-type]
        await ext.shutdown()  # harmless after a failed start


def test_go_formats() -> None:
    assert rfc3339nano(1_581_452_772_000_000_321) == "2020-02-11T20:26:12.000000321Z"
    assert rfc3339nano(1_581_452_772_500_000_000) == "2020-02-11T20:26:12.5Z"
    assert rfc3339nano(0) == "1970-01-01T00:00:00Z"
    cases = {
        0: "0s",
        999: "999ns",
        1_500: "1.5µs",
        2_000_000: "2ms",
        1_500_000_000: "1.5s",
        61_000_000_000: "1m1s",
        3_600_000_000_000: "1h0m0s",
        3_723_456_000_000: "1h2m3.456s",
    }
    assert {ns: go_duration(ns) for ns in cases} == cases
