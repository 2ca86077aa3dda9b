"""Circuit breaker: states, intervals and probes on the fake clock (no sleeps), and how it
holds batches in the queue instead of calling a failing backend."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import pytest
from test_exporterhelper import Backend, spans

from otlp.confmodels import CircuitBreakerSettings, ExporterConfig, RetrySettings
from otlp.errors import PermanentError, RetryableError
from otlp.exporterhelper import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    Interrupted,
    QueuedExporter,
    send_with_retry,
)
from otlp.telemetry import Telemetry
from tests.fakes import FakeClock


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until `condition` holds (the fake clock makes waits instant)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def breaker(clock: FakeClock, **settings: object) -> CircuitBreaker:
    config = {"failure_threshold": 3, "open_interval": "30s", **settings}
    return CircuitBreaker("ch", CircuitBreakerSettings.model_validate(config), clock)


async def test_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    for _ in range(2):
        cb.record(await cb.admit(), False)
    cb.record(await cb.admit(), True)  # a success resets the count
    for _ in range(2):
        cb.record(await cb.admit(), False)
    assert cb.state == CLOSED
    cb.record(await cb.admit(), False)
    assert cb.state == OPEN and cb.remaining() == 30.0


async def test_open_interval_then_one_probe_closes() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record(None, False)
    assert not cb.allows_now()
    token = await cb.admit()  # waits the open interval on the fake clock
    assert clock.now == 30.0 and cb.state == HALF_OPEN and token is not None
    # a second caller waits while the probe is out
    other = asyncio.ensure_future(cb.admit())
    await asyncio.sleep(0)
    assert not other.done()
    cb.record(token, True)
    assert cb.state == CLOSED
    assert await other is None


async def test_failed_probe_reopens_for_another_interval() -> None:
    clock = FakeClock()
    cb = breaker(clock, open_interval="10s")
    for _ in range(3):
        cb.record(None, False)
    token = await cb.admit()
    cb.record(token, False)
    assert cb.state == OPEN and cb.remaining() == 10.0
    token = await cb.admit()
    assert clock.now == 20.0 and cb.state == HALF_OPEN


async def test_several_probes_must_all_succeed() -> None:
    clock = FakeClock()
    cb = breaker(clock, half_open_probes=2)
    for _ in range(3):
        cb.record(None, False)
    first = await cb.admit()
    second = await cb.admit()  # two probes at once
    third = asyncio.ensure_future(cb.admit())
    await asyncio.sleep(0)
    assert not third.done()
    cb.record(first, True)
    assert cb.state == HALF_OPEN
    cb.record(second, True)
    assert cb.state == CLOSED and await third is None


async def test_late_results_do_not_flip_the_state() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    stale = await cb.admit()  # begun while closed
    for _ in range(3):
        cb.record(None, False)
    cb.record(stale, True)  # a success of an attempt begun before the breaker opened
    assert cb.state == OPEN


async def test_waiting_is_interrupted_by_shutdown() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record(None, False)
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(Interrupted):
        await cb.admit(stop)


async def test_retry_loop_waits_for_the_breaker_not_hammering() -> None:
    """A backend down for 20 attempts: after 3 failures the breaker spaces the attempts by
    its open interval, and that waiting is not counted against max_elapsed_time."""
    clock = FakeClock()
    cb = breaker(clock, open_interval="60s")
    backend = Backend([RetryableError("down")] * 20)
    settings = RetrySettings(initial_interval="1s", max_interval="2s", max_elapsed_time="30s")
    await send_with_retry(
        lambda: backend.export(spans(1)), settings, 5.0, clock, rng=random.Random(0), breaker=cb
    )
    assert backend.received == [1] and backend.calls == 21
    # two backoff sleeps, then the open interval before each of the 18 probes
    assert len(clock.sleeps) == 20 and all(s <= 2 * 1.5 for s in clock.sleeps[:2])
    assert clock.sleeps[2:] == pytest.approx([60.0] * 18)
    assert cb.state == CLOSED


async def test_permanent_errors_do_not_open_it() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    for _ in range(5):
        backend = Backend([PermanentError("bad data")])
        with pytest.raises(PermanentError):
            await send_with_retry(
                lambda b=backend: b.export(spans(1)), RetrySettings(), 5.0, clock, breaker=cb
            )
    assert cb.state == CLOSED


async def test_queued_exporter_holds_batches_while_open(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "airis.exporter")
    clock = FakeClock()
    telemetry = Telemetry()
    backend = Backend([RetryableError("down")] * 3)
    config = ExporterConfig.model_validate(
        {
            "sending_queue": {"num_consumers": 1},
            "retry_on_failure": {"initial_interval": "1s", "max_elapsed_time": 0},
            "circuit_breaker": {"failure_threshold": 2, "open_interval": "45s"},
        }
    )
    queue = QueuedExporter("ch", "traces", backend, config, telemetry, clock=clock)
    await queue.start()
    for _ in range(3):
        await queue.consume(spans(2))
    await until(lambda: len(backend.received) == 3)
    await queue.shutdown()
    assert backend.received == [2, 2, 2]
    # fail, backoff, fail (opens), 45s open, probe fails (reopens), 45s, probe succeeds
    assert backend.calls == 6
    assert clock.sleeps[-2:] == pytest.approx([45.0, 45.0])
    state = "airis_exporter_circuit_breaker_state"
    assert telemetry.value(state, exporter="ch") == 0
    transitions = "airis_exporter_circuit_breaker_transitions_total"
    assert telemetry.value(transitions, exporter="ch", state="open") == 2
    assert telemetry.value(transitions, exporter="ch", state="half_open") == 2
    assert telemetry.value(transitions, exporter="ch", state="closed") == 1
    assert "Circuit breaker opened" in caplog.text and "Circuit breaker closed" in caplog.text


async def test_one_breaker_per_exporter_across_signals() -> None:
    telemetry = Telemetry()
    backend = Backend()
    config = ExporterConfig()
    traces = QueuedExporter("ch", "traces", backend, config, telemetry)
    logs = QueuedExporter("ch", "logs", backend, config, telemetry)
    other = QueuedExporter("es", "traces", Backend(), config, telemetry)
    assert traces.breaker is logs.breaker is not None
    assert other.breaker is not traces.breaker


async def test_without_a_queue_an_open_breaker_refuses_at_once() -> None:
    clock = FakeClock()
    backend = Backend([RetryableError("down")] * 2)
    config = ExporterConfig.model_validate(
        {
            "sending_queue": {"enabled": False},
            "retry_on_failure": {"enabled": False},
            "circuit_breaker": {"failure_threshold": 2, "open_interval": "20s"},
        }
    )
    queue = QueuedExporter("ch", "traces", backend, config, Telemetry(), clock=clock)
    for _ in range(2):
        with pytest.raises(RetryableError):
            await queue.consume(spans(1))
    with pytest.raises(RetryableError, match="circuit breaker") as refused:
        await queue.consume(spans(1))
    assert refused.value.retry_after == 20.0
    assert backend.calls == 2


def test_breaker_config_keys() -> None:
    config = ExporterConfig.model_validate(
        {"circuit_breaker": {"enabled": False, "open_interval": "1m", "half_open_probes": 3}}
    )
    assert config.circuit_breaker.open_interval == 60.0
    assert ExporterConfig().circuit_breaker.enabled is True
    with pytest.raises(ValueError):
        ExporterConfig.model_validate({"circuit_breaker": {"failure_threshold": 0}})
    with pytest.raises(ValueError):
        ExporterConfig.model_validate({"circuit_breaker": {"probes": 1}})
