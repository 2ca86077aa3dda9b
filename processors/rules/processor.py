"""The `rules` processor: passes every batch through unchanged and feeds it to the rules
engine shared by all pipelines that use this processor id (see engine.py)."""

from __future__ import annotations

import logging

from otlp.batch import LOGS_SIGNAL, Batch
from otlp.component import Host, Processor
from otlp.telemetry import Telemetry
from processors.rules.engine import Engine

log = logging.getLogger("airis.processor.rules")


class RulesProcessor(Processor):
    def __init__(
        self, component_id: str, engine: Engine, telemetry: Telemetry, signals: set[str]
    ) -> None:
        self.id = component_id
        self.engine = engine
        self.telemetry = telemetry
        self.signals = signals

    async def start(self, host: Host) -> None:
        # the instance in a logs pipeline writes the alert history into it
        if LOGS_SIGNAL in self.signals:
            self.engine.history_sinks.append(self.next)
        await self.engine.start(host)

    async def consume(self, batch: Batch) -> None:
        items = batch.item_count()
        self.telemetry.counter("processor_incoming", batch.signal).labels(self.id).inc(items)
        # synchronous and vectorised: never awaits a notification or a channel
        self.engine.observe(batch)
        self.telemetry.counter("processor_outgoing", batch.signal).labels(self.id).inc(items)
        await self.next.consume(batch)

    async def shutdown(self) -> None:
        if await self.engine.shutdown():
            release(self.engine)
        if LOGS_SIGNAL in self.signals and self.next in self.engine.history_sinks:
            self.engine.history_sinks.remove(self.next)


_ENGINES: dict[tuple[int, str], Engine] = {}


def shared_engine(component_id: str, config, telemetry: Telemetry) -> Engine:  # type: ignore[no-untyped-def]
    """One engine per processor id and service (a service has its own Telemetry)."""
    key = (id(telemetry), component_id)
    engine = _ENGINES.get(key)
    # an id() is reused once its object is gone: an engine left by a service that never shut
    # down must not be handed to a new one
    if engine is None or engine.telemetry is not telemetry:
        engine = _ENGINES[key] = Engine(component_id, config, telemetry)
    return engine


def release(engine: Engine) -> None:
    for key, value in list(_ENGINES.items()):
        if value is engine:
            del _ENGINES[key]
