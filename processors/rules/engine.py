"""The rules engine one `rules` processor id shares across its pipelines.

The runtime builds a processor per pipeline; rules about traces, metrics and logs need one
view of alert state, so every pipeline's processor with the same id (and the same service)
feeds one engine: `observe` reduces each batch into the windows of the conditions for its
signal, a timer `evaluate`s the rules, the notifier delivers, the alert state is saved, and
transitions go into the logs pipeline (through the processor instance that sits in one)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

from extensions.file_storage.extension import sanitize
from otlp.batch import Batch
from otlp.component import Consumer, Host
from otlp.exporterhelper import Clock
from otlp.telemetry import Telemetry
from processors.rules.conditions import Compiled, LogCompiled, MetricCompiled, compile_condition
from processors.rules.config import AlertmanagerChannel, Rule, RuleCondition, RulesConfig
from processors.rules.history import transitions_batch
from processors.rules.labels import Memo, split_key
from processors.rules.lifecycle import FIRING, PENDING, Evaluator, Outcome, Transition
from processors.rules.metrics import rules_metrics
from processors.rules.notifier import Notifier
from storage.alert_state import AlertStateFile

log = logging.getLogger("airis.processor.rules")


class WallClock(Clock):
    """The engine's timeline is wall time, so the times kept in the alert state still mean
    something after a restart."""

    def monotonic(self) -> float:
        return time.time()


def _zero_when_absent(compiled: Compiled) -> bool:
    # "no data" means 0 for counts and rates: `count lt 1` can fire when a stream stops
    if isinstance(compiled, LogCompiled):
        return True
    return isinstance(compiled, MetricCompiled) and compiled.mspec.aggregation in (
        "count",
        "rate",
        "sum",
    )


def _window_key(condition: RuleCondition) -> dict[str, Any]:
    # what shapes a window's content; the comparison (operator, threshold, duration) does not
    return condition.model_dump(exclude={"operator", "threshold", "duration"})


class Engine:
    def __init__(
        self,
        component_id: str,
        config: RulesConfig,
        telemetry: Telemetry,
        clock: Clock | None = None,
    ) -> None:
        self.id = component_id
        self.config = config
        self.clock = clock or WallClock()
        self.telemetry = telemetry
        self.metrics = rules_metrics(telemetry)
        self.evaluator = Evaluator(config.inhibit_equal)
        self.notifier = Notifier(component_id, config.channels, self.metrics, self.clock)
        self.rules: list[Rule] = []
        self.compiled: dict[str, list[Compiled]] = {}
        self._by_signal: dict[str, list[Compiled]] = {}
        self.set_rules(config.parsed_rules())
        self.history: list[Transition] = []
        self.history_sinks: list[Consumer] = []
        self.state: AlertStateFile | None = None
        self._saved: bytes | None = None
        self._users = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._history_wakeup = asyncio.Event()
        self._sighup = False
        # since when the windows have been filling (a restart empties them), and the
        # instances restored from the state while they fill
        self._started = self.clock.monotonic()
        self._restored: set[tuple[str, str]] = set()
        # alertmanager channel → when firing alerts were last sent again
        self._resent: dict[str, float] = {}

    # --- rules ---------------------------------------------------------------------------
    def set_rules(self, rules: list[Rule]) -> None:
        """Install rules; a rule whose data selection, aggregation and grouping are
        unchanged keeps its windows (a new threshold or operator applies to the data
        already seen), so a reload loses no data."""
        old = {r.id: r for r in self.rules}
        compiled: dict[str, list[Compiled]] = {}
        for rule in rules:
            prev = old.get(rule.id)
            if (
                prev is not None
                and [_window_key(c) for c in prev.conditions]
                == [_window_key(c) for c in rule.conditions]
                and prev.group_by == rule.group_by
            ):
                compiled[rule.id] = self.compiled[rule.id]
                for kept, spec in zip(compiled[rule.id], rule.conditions, strict=True):
                    kept.retarget(spec)
            else:
                compiled[rule.id] = [compile_condition(c, rule.group_by) for c in rule.conditions]
        by_signal: dict[str, list[Compiled]] = {}
        for rule in rules:
            if rule.enabled:
                for c in compiled[rule.id]:
                    by_signal.setdefault(c.signal, []).append(c)
        self.rules, self.compiled, self._by_signal = rules, compiled, by_signal

    def reload(self) -> bool:
        """Re-read the rules (config and rules_file); a bad file keeps the current rules."""
        try:
            rules = self.config.parsed_rules()
        except ValueError as exc:
            log.error("rules not reloaded, keeping the current ones", extra={"error": str(exc)})
            return False
        self.set_rules(rules)
        log.info("rules reloaded", extra={"rules": len(rules)})
        return True

    # --- data ----------------------------------------------------------------------------
    def observe(self, batch: Batch) -> None:
        conditions = self._by_signal.get(batch.signal)
        if not conditions:
            return
        now = self.clock.monotonic()
        memo = Memo(batch)
        for compiled in conditions:
            try:
                compiled.observe(memo, now)
            except Exception:
                # alerting must never refuse data: a failing condition is logged, not raised
                log.exception("rule condition failed on a batch", extra={"processor": self.id})

    def evaluate(self, save: bool = True) -> Outcome:
        """One evaluation of every rule; `save` writes the state at once (the timer loop
        writes it off the event loop instead)."""
        now = self.clock.monotonic()
        verdicts: dict[str, dict[str, tuple[bool, float, dict[str, str]]]] = {}
        for rule in self.rules:
            if not rule.enabled:
                continue
            self.metrics.evaluations.labels(self.id, rule.id).inc()
            known = {key for (rid, key) in self.evaluator.instances if rid == rule.id}
            per_condition = []
            for compiled in self.compiled[rule.id]:
                got = compiled.verdicts(now)
                if _zero_when_absent(compiled):
                    threshold = compiled.spec.threshold
                    for key in known - got.keys():
                        got[key] = (compiled.compare(0.0, threshold), 0.0)
                per_condition.append(got)
            groups: dict[str, tuple[bool, float, dict[str, str]]] = {}
            for key in set().union(*per_condition):
                found = [c[key] for c in per_condition if key in c]
                holds = len(found) == len(per_condition) and all(h for h, _ in found)
                groups[key] = (holds, found[0][1], split_key(rule.group_by, key))
            verdicts[rule.id] = groups
        windows = {r.id: max(c.window for c in r.conditions) for r in self.rules}
        self._restored = {
            k for k in self._restored if k[0] in windows and now - self._started < windows[k[0]]
        }
        warming = frozenset(self._restored)
        outcome = self.evaluator.step(now, self.rules, verdicts, warming)
        for notification in outcome.notifications:
            self.notifier.submit(notification)
        for name, channel in self.config.channels.items():
            if isinstance(channel, AlertmanagerChannel):
                last = self._resent.get(name)
                if last is None or now - last >= channel.resend_interval:
                    self._resent[name] = now
                    due = {n["channel"] for n in outcome.notifications}
                    if last is not None and name not in due:
                        for notification in self.evaluator.resend(now, self.rules, name):
                            self.notifier.submit(notification)
        for t in outcome.transitions:
            log.info(
                "alert %s -> %s",
                t.previous,
                t.current,
                extra={"rule": t.rule.id, "labels": t.instance.labels, "value": t.instance.value},
            )
        if outcome.transitions and self.history_sinks:
            self.history.extend(outcome.transitions)
            self._history_wakeup.set()
        self._count_instances()
        if save:
            self.save()
        return outcome

    def _count_instances(self) -> None:
        counts = {(r.id, s): 0 for r in self.rules for s in (PENDING, FIRING)}
        for inst in self.evaluator.instances.values():
            key = (inst.rule_id, inst.state)
            counts[key] = counts.get(key, 0) + 1
        for (rule_id, state), n in counts.items():
            self.metrics.instances.labels(self.id, rule_id, state).set(n)

    # --- state ---------------------------------------------------------------------------
    def _state_path(self, host: Host | None) -> Path | None:
        if self.config.storage:
            ext = host.extension(self.config.storage) if host is not None else None
            if ext is None or not hasattr(ext, "directory"):
                raise ValueError(
                    f"{self.id}: storage {self.config.storage!r} is not a started storage extension"
                )
            return Path(ext.directory) / f"processor_{sanitize(self.id)}_alerts.json"
        if self.config.state_file:
            return Path(self.config.state_file)
        return None

    def snapshot(self) -> bytes | None:
        """The encoded state when it changed since the last write, else None."""
        if self.state is None:
            return None
        raw = self.state.encode(
            {"instances": self.evaluator.to_json(), "outbox": self.notifier.outbox}
        )
        return None if raw == self._saved else raw

    def save(self) -> None:
        raw = self.snapshot()
        if raw is not None and self.state is not None:
            self.state.write(raw)
            self._saved = raw

    async def save_async(self) -> None:
        # the encoding happens on the loop (a consistent view), the fsyncs in a thread
        raw = self.snapshot()
        if raw is not None and self.state is not None:
            await asyncio.to_thread(self.state.write, raw)
            self._saved = raw

    def load(self, host: Host | None) -> None:
        path = self._state_path(host)
        if path is None:
            return
        self.state = AlertStateFile(path)
        doc: dict[str, Any] = self.state.load()
        ids = {r.id for r in self.rules}
        self.evaluator.load([i for i in doc.get("instances", []) if i.get("rule_id") in ids])
        self._restored = set(self.evaluator.instances)
        self.notifier.outbox.update(doc.get("outbox", {}))
        if doc:
            log.info(
                "alert state restored",
                extra={
                    "path": str(path),
                    "instances": len(self.evaluator.instances),
                    "undelivered": len(self.notifier.outbox),
                },
            )

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self, host: Host | None, run: bool = True) -> None:
        self._users += 1
        if self._users > 1:
            return
        self._started = self.clock.monotonic()
        self.load(host)
        self.notifier.start()
        if run:
            self._tasks.append(asyncio.create_task(self._run(), name=f"{self.id}-evaluate"))
        self._tasks.append(asyncio.create_task(self._emit_history(), name=f"{self.id}-history"))
        if self.config.rules_file:
            try:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
                self._sighup = True
            except (NotImplementedError, RuntimeError, ValueError):
                log.warning("SIGHUP reload unavailable (not the main thread)")

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(self.config.evaluation_interval)
            try:
                self.evaluate(save=False)
                await self.save_async()
            except Exception:
                log.exception("rule evaluation failed", extra={"processor": self.id})

    async def _emit_history(self) -> None:
        while True:
            await self._history_wakeup.wait()
            self._history_wakeup.clear()
            await self.flush_history()

    async def flush_history(self) -> None:
        if not self.history:
            return
        pending, self.history = self.history, []
        batch = transitions_batch(pending)
        for sink in list(self.history_sinks):
            try:
                await sink.consume(batch)
            except Exception as exc:
                self.metrics.dropped.labels(self.id).inc(len(pending))
                log.error(
                    "alert history not written to the logs pipeline", extra={"error": str(exc)}
                )

    async def shutdown(self) -> bool:
        """True when this was the last user (the engine stopped)."""
        if self._users <= 0:
            return False
        self._users -= 1
        if self._users > 0:
            return False
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.flush_history()
        await self.notifier.drain(self.config.shutdown_timeout)
        await self.notifier.stop()
        self.save()
        return True
