"""The pipeline runtime: builds components from a validated Config, wires receivers →
processors → fan-out to per-exporter queues, starts and stops them in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from otlp import registry
from otlp.batch import Batch
from otlp.component import (
    EXPORTER,
    EXTENSION,
    PROCESSOR,
    RECEIVER,
    Component,
    ComponentID,
    Consumer,
    CreateSettings,
    Exporter,
    Processor,
    Receiver,
)
from otlp.config import Config
from otlp.confmodels import ExporterConfig
from otlp.exporterhelper import QueuedExporter
from otlp.telemetry import Telemetry

log = logging.getLogger("airis.service")


class Fanout:
    """Hands one batch to several consumers; succeeds only when all of them accepted it."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self.consumers = list(consumers)

    async def consume(self, batch: Batch) -> None:
        if len(self.consumers) == 1:
            await self.consumers[0].consume(batch)
            return
        results = await asyncio.gather(
            *(c.consume(batch) for c in self.consumers), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result


@dataclass(slots=True)
class Pipeline:
    id: str
    signal: str
    processors: list[Processor]
    exporters: list[QueuedExporter]
    entry: Consumer = field(init=False)


class Service:
    def __init__(self, config: Config, telemetry: Telemetry | None = None) -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry()
        self.extensions: dict[ComponentID, Component] = {}
        self.receivers: dict[ComponentID, Receiver] = {}
        self.exporters: dict[ComponentID, Exporter] = {}
        self.queues: dict[tuple[ComponentID, str], QueuedExporter] = {}
        self.pipelines: list[Pipeline] = []
        self._build()

    # --- construction -------------------------------------------------------------------
    def _create(self, kind: str, cid: ComponentID, signals: set[str]) -> Any:
        factory = registry.lookup(kind, cid.type)
        assert factory is not None  # validated by config.validate
        settings = CreateSettings(id=cid, kind=kind, telemetry=self.telemetry, signals=signals)
        return factory.create(settings, self.config.components[kind][cid])

    def _signals_using(self, section: str, cid: ComponentID) -> set[str]:
        return {
            pid.partition("/")[0]
            for pid, p in self.config.pipelines.items()
            if str(cid) in [str(ComponentID.parse(n)) for n in getattr(p, section)]
        }

    def _build(self) -> None:
        cfg = self.config
        for name in cfg.service.extensions:
            cid = ComponentID.parse(name)
            self.extensions[cid] = self._create(EXTENSION, cid, set())

        receiver_targets: dict[tuple[ComponentID, str], list[Consumer]] = {}
        for pid, pconf in cfg.pipelines.items():
            signal = pid.partition("/")[0]
            queues = []
            for name in pconf.exporters:
                cid = ComponentID.parse(name)
                if cid not in self.exporters:
                    self.exporters[cid] = self._create(
                        EXPORTER, cid, self._signals_using("exporters", cid)
                    )
                key = (cid, signal)
                if key not in self.queues:
                    exporter_cfg = cfg.components[EXPORTER][cid]
                    if not hasattr(exporter_cfg, "sending_queue"):
                        exporter_cfg = ExporterConfig()
                        exporter_cfg.sending_queue.enabled = False
                        exporter_cfg.retry_on_failure.enabled = False
                    self.queues[key] = QueuedExporter(
                        str(cid), signal, self.exporters[cid], exporter_cfg, self.telemetry
                    )
                queues.append(self.queues[key])
            processors = [
                self._create(PROCESSOR, ComponentID.parse(n), {signal}) for n in pconf.processors
            ]
            pipeline = Pipeline(pid, signal, processors, queues)
            downstream: Consumer = Fanout(queues)
            for processor in reversed(processors):
                processor.next = downstream
                downstream = processor
            pipeline.entry = downstream
            self.pipelines.append(pipeline)
            for name in pconf.receivers:
                receiver_targets.setdefault((ComponentID.parse(name), signal), []).append(
                    downstream
                )

        for (cid, signal), targets in receiver_targets.items():
            if cid not in self.receivers:
                self.receivers[cid] = self._create(
                    RECEIVER, cid, self._signals_using("receivers", cid)
                )
            self.receivers[cid].consumers[signal] = (
                targets[0] if len(targets) == 1 else Fanout(targets)
            )

    # --- Host interface -----------------------------------------------------------------
    def extension(self, component_id: str) -> Any:
        return self.extensions.get(ComponentID.parse(component_id))

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Extensions, exporters, processors, then receivers: data flows only into a
        pipeline that is ready for it."""
        for cid, ext in self.extensions.items():
            log.info("Starting extension", extra={"component": str(cid)})
            await ext.start(self)
        for cid, exporter in self.exporters.items():
            log.info("Starting exporter", extra={"component": str(cid)})
            await exporter.start(self)
        for queue in self.queues.values():
            # persistent queues recover here, before any receiver accepts new data
            await queue.start(self)
        for pipeline in self.pipelines:
            for processor in pipeline.processors:
                await processor.start(self)
        for cid, receiver in self.receivers.items():
            log.info("Starting receiver", extra={"component": str(cid)})
            await receiver.start(self)
        self._set_ready(True)
        log.info("Everything is ready. Begin running and processing data.")

    async def shutdown(self) -> None:
        """Stop receiving, flush processors in pipeline order, drain the exporter queues,
        then close exporters and extensions."""
        self._set_ready(False)
        for cid, receiver in self.receivers.items():
            try:
                await receiver.shutdown()
            except Exception:
                log.exception("receiver shutdown failed", extra={"component": str(cid)})
        for pipeline in self.pipelines:
            for processor in pipeline.processors:
                await processor.flush()
                await processor.shutdown()
        await asyncio.gather(*(queue.shutdown() for queue in self.queues.values()))
        for cid, exporter in self.exporters.items():
            try:
                await exporter.shutdown()
            except Exception:
                log.exception("exporter shutdown failed", extra={"component": str(cid)})
        for ext in reversed(list(self.extensions.values())):
            await ext.shutdown()

    def _set_ready(self, ready: bool) -> None:
        for ext in self.extensions.values():
            set_status = getattr(ext, "set_status", None)
            if set_status is not None:
                set_status(ready)
