"""Delivery: one bounded queue and one worker per channel, retries with exponential
backoff, and an outbox of undelivered notifications that the alert state persists.

`submit` never waits: a full queue drops the notification and counts it, so a dead
channel never slows ingest or evaluation, and other channels are unaffected."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from typing import Any

from otlp.exporterhelper import Clock
from processors.rules.channels import DeliveryError, Sender, build_sender
from processors.rules.config import ChannelConfig
from processors.rules.metrics import RulesMetrics

log = logging.getLogger("airis.processor.rules")


class ChannelWorker:
    def __init__(
        self,
        name: str,
        config: ChannelConfig,
        sender: Sender,
        notifier: Notifier,
    ) -> None:
        self.name = name
        self.config = config
        self.sender = sender
        self.notifier = notifier
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(config.queue_size)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"rules-channel-{self.name}")

    async def _run(self) -> None:
        while True:
            delivery_id, notification = await self.queue.get()
            try:
                await self._deliver(delivery_id, notification)
            finally:
                self.queue.task_done()

    async def _deliver(self, delivery_id: str, notification: dict[str, Any]) -> None:
        retry = self.config.retry
        clock = self.notifier.clock
        started = clock.monotonic()
        interval = retry.initial_interval
        metrics, pid = self.notifier.metrics, self.notifier.processor_id
        while True:
            try:
                await self.sender.send(notification)
            except DeliveryError as exc:
                elapsed = clock.monotonic() - started
                gave_up = exc.permanent or (
                    retry.max_elapsed_time and elapsed + interval > retry.max_elapsed_time
                )
                if gave_up:
                    reason = "refused" if exc.permanent else "retries_exhausted"
                    metrics.failed.labels(pid, self.name, reason).inc()
                    log.error(
                        "notification not delivered",
                        extra={"channel": self.name, "reason": reason, "error": str(exc)},
                    )
                    self.notifier.done(delivery_id)
                    return
                delay = interval * random.uniform(0.5, 1.5)
                log.warning(
                    "notification failed, will retry",
                    extra={"channel": self.name, "retry_in": round(delay, 3), "error": str(exc)},
                )
                await clock.sleep(delay)
                interval = min(interval * retry.multiplier, retry.max_interval)
                continue
            metrics.sent.labels(pid, self.name).inc()
            self.notifier.done(delivery_id)
            return

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.sender.close()


class Notifier:
    def __init__(
        self,
        processor_id: str,
        channels: dict[str, ChannelConfig],
        metrics: RulesMetrics,
        clock: Clock,
    ) -> None:
        self.processor_id = processor_id
        self.metrics = metrics
        self.clock = clock
        self.channels = channels
        self.workers: dict[str, ChannelWorker] = {}
        # delivery id → (channel, notification) not yet delivered or given up on
        self.outbox: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count()
        self._prefix = f"{random.getrandbits(32):08x}"

    def start(self) -> None:
        for name, config in self.channels.items():
            worker = ChannelWorker(name, config, build_sender(name, config), self)
            worker.start()
            self.workers[name] = worker
        # what a previous run had not delivered goes out first
        for delivery_id, entry in list(self.outbox.items()):
            self._enqueue(delivery_id, entry["channel"], entry["notification"])

    def submit(self, notification: dict[str, Any]) -> None:
        delivery_id = f"{self._prefix}-{next(self._ids)}"
        channel = notification["channel"]
        self.outbox[delivery_id] = {"channel": channel, "notification": notification}
        self._enqueue(delivery_id, channel, notification)

    def _enqueue(self, delivery_id: str, channel: str, notification: dict[str, Any]) -> None:
        worker = self.workers.get(channel)
        if worker is None:
            # not started yet (tests driving the evaluator alone) or a channel removed by a
            # reload: kept in the outbox for the next start that knows the channel
            return
        try:
            worker.queue.put_nowait((delivery_id, notification))
        except asyncio.QueueFull:
            self.metrics.failed.labels(self.processor_id, channel, "queue_full").inc()
            log.error("notification queue full, dropping", extra={"channel": channel})
            self.done(delivery_id)

    def done(self, delivery_id: str) -> None:
        # the state file catches up at the next evaluation
        self.outbox.pop(delivery_id, None)

    async def drain(self, timeout: float) -> None:
        """Wait (up to `timeout`) for the queues to empty."""
        joins = [w.queue.join() for w in self.workers.values()]
        if joins:
            try:
                await asyncio.wait_for(asyncio.gather(*joins), timeout)
            except TimeoutError:
                log.warning("notifications still queued at shutdown; kept for the next start")

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()
