"""Alert instances and their lifecycle: inactive → pending → firing → resolved.

One instance per rule and group (the values of the rule's `group_by` labels). An
evaluation takes each condition's verdict per group, moves instances along, then decides
what to notify: a new firing alert once (deduplicated across evaluations and restarts),
again every `repeat_interval`, escalation tiers when reached, a resolution once. Alerts of
one rule that notify the same channel in the same evaluation go out as one notification.
A firing alert is inhibited (not notified) while a firing alert of higher severity with
the same labels exists."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from processors.rules.config import SEVERITY_RANK, Rule

PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"
INACTIVE = "inactive"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Instance:
    rule_id: str
    key: str
    labels: dict[str, str]
    state: str
    active_since: float
    value: float | None = None
    firing_since: float | None = None
    false_since: float | None = None
    # a firing notification went out (so a resolution is owed)
    notified: bool = False
    last_notified: float | None = None
    # escalation tiers reached (their channels were notified)
    tiers: int = 0
    inhibited: bool = False

    @property
    def fingerprint(self) -> str:
        text = self.rule_id + "\x1e" + self.key
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Instance:
        return cls(**doc)


@dataclass(slots=True)
class Transition:
    rule: Rule
    instance: Instance
    previous: str
    current: str
    at: float


@dataclass(slots=True)
class Outcome:
    transitions: list[Transition] = field(default_factory=list)
    # JSON-ready notifications, one per (rule, status, channel)
    notifications: list[dict[str, Any]] = field(default_factory=list)


def alert_view(rule: Rule, inst: Instance, status: str, now: float) -> dict[str, Any]:
    labels = {
        "alertname": rule.display_name,
        "rule_id": rule.id,
        "severity": rule.severity,
        **rule.labels,
        **inst.labels,
    }
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": rule.display_name, "description": rule.description},
        "startsAt": iso(inst.firing_since or inst.active_since),
        "endsAt": iso(now) if status == RESOLVED else None,
        "value": inst.value,
        "fingerprint": inst.fingerprint,
        "escalationLevel": inst.tiers,
    }


def rule_view(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.display_name,
        "description": rule.description,
        "severity": rule.severity,
        "labels": dict(rule.labels),
    }


class Evaluator:
    """Holds the instances; `step` advances them given the verdicts of one evaluation."""

    def __init__(self, inhibit_equal: list[str] | None = None) -> None:
        self.instances: dict[tuple[str, str], Instance] = {}
        self.inhibit_equal = list(inhibit_equal or [])

    def step(
        self,
        now: float,
        rules: list[Rule],
        verdicts: dict[str, dict[str, tuple[bool, float, dict[str, str]]]],
        warming: frozenset[tuple[str, str]] = frozenset(),
    ) -> Outcome:
        """`verdicts[rule_id][group key] = (holds, value, labels)` for every group that had
        data in all the rule's conditions' windows. For instances in `warming` (restored
        from the state while their rule's windows are not yet full again) a false or
        missing verdict is no evidence: they stay as they are instead of resolving on a
        window the restart emptied."""
        out = Outcome()
        by_id = {r.id: r for r in rules if r.enabled}
        # rules removed or disabled (a reload): their alerts are dropped without a resolution,
        # as the rule that owed it is gone
        for key, inst in list(self.instances.items()):
            if inst.rule_id not in by_id:
                del self.instances[key]
        resolved: list[tuple[Rule, Instance]] = []
        for rule in by_id.values():
            groups = verdicts.get(rule.id, {})
            for key, (holds, value, labels) in sorted(groups.items()):
                if not holds:
                    continue
                inst = self.instances.get((rule.id, key))
                if inst is None:
                    inst = Instance(rule.id, key, labels, PENDING, now)
                    self.instances[(rule.id, key)] = inst
                    out.transitions.append(Transition(rule, inst, INACTIVE, PENDING, now))
                inst.value = value
                inst.false_since = None
                if inst.state == PENDING and now - inst.active_since >= rule.pending_for:
                    inst.state = FIRING
                    inst.firing_since = now
                    out.transitions.append(Transition(rule, inst, PENDING, FIRING, now))
            for (rule_id, key), inst in list(self.instances.items()):
                if rule_id != rule.id:
                    continue
                verdict = groups.get(key)
                if verdict is not None and verdict[0]:
                    continue
                if (rule_id, key) in warming:
                    continue
                if verdict is not None:
                    inst.value = verdict[1]
                if inst.state == PENDING:
                    del self.instances[(rule_id, key)]
                    out.transitions.append(Transition(rule, inst, PENDING, INACTIVE, now))
                    continue
                if inst.false_since is None:
                    inst.false_since = now
                if now - inst.false_since >= rule.resolve_after:
                    del self.instances[(rule_id, key)]
                    inst.state = RESOLVED
                    out.transitions.append(Transition(rule, inst, FIRING, RESOLVED, now))
                    resolved.append((rule, inst))
        self._inhibit(by_id)
        self._notify(now, by_id, resolved, out)
        return out

    def _labels_equal(self, a: Instance, b: Instance) -> bool:
        if not self.inhibit_equal:
            return a.labels == b.labels
        return all(
            k in a.labels and k in b.labels and a.labels[k] == b.labels[k]
            for k in self.inhibit_equal
        )

    def _inhibit(self, rules: dict[str, Rule]) -> None:
        firing = [i for i in self.instances.values() if i.state == FIRING]
        for inst in firing:
            rank = SEVERITY_RANK[rules[inst.rule_id].severity]
            inst.inhibited = any(
                SEVERITY_RANK[rules[other.rule_id].severity] > rank
                and self._labels_equal(inst, other)
                for other in firing
                if other is not inst
            )

    def _notify(
        self,
        now: float,
        rules: dict[str, Rule],
        resolved: list[tuple[Rule, Instance]],
        out: Outcome,
    ) -> None:
        # (rule id, status, reason, channel) → alerts
        grouped: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}

        def add(rule: Rule, inst: Instance, status: str, reason: str, channels: list[str]) -> None:
            view = alert_view(rule, inst, status, now)
            for channel in channels:
                grouped.setdefault((rule.id, status, reason, channel), []).append(view)

        for inst in self.instances.values():
            if inst.state != FIRING or inst.inhibited:
                continue
            rule = rules[inst.rule_id]
            assert inst.firing_since is not None
            reached = sum(1 for t in rule.escalation if now - inst.firing_since >= t.after)
            if not inst.notified:
                inst.tiers = reached
                add(rule, inst, FIRING, "new", _channels(rule, reached))
            elif rule.repeat_interval and now - (inst.last_notified or 0) >= rule.repeat_interval:
                inst.tiers = max(inst.tiers, reached)
                add(rule, inst, FIRING, "repeat", _channels(rule, inst.tiers))
            elif reached > inst.tiers:
                # only the new tier hears of it; the repeat timer of the others runs on
                fresh = [c for t in rule.escalation[inst.tiers : reached] for c in t.channels]
                inst.tiers = reached
                add(rule, inst, FIRING, "escalation", list(dict.fromkeys(fresh)))
                continue
            else:
                continue
            inst.notified = True
            inst.last_notified = now
        for rule, inst in resolved:
            if inst.notified:
                add(rule, inst, RESOLVED, "resolved", _channels(rule, inst.tiers))
        for (rule_id, status, reason, channel), alerts in grouped.items():
            rule = rules[rule_id]
            out.notifications.append(
                {
                    "channel": channel,
                    "status": status,
                    "reason": reason,
                    "rule": rule_view(rule),
                    "groupKey": f"{rule_id}:{channel}",
                    "alerts": sorted(alerts, key=lambda a: sorted(a["labels"].items())),
                    "time": iso(now),
                }
            )

    def resend(self, now: float, rules: list[Rule], channel: str) -> list[dict[str, Any]]:
        """Every notified, uninhibited firing alert that goes to `channel`, one notification
        per rule: for receivers that expire alerts not sent again (Alertmanager)."""
        by_id = {r.id: r for r in rules if r.enabled}
        grouped: dict[str, list[dict[str, Any]]] = {}
        for inst in self.instances.values():
            rule = by_id.get(inst.rule_id)
            if (
                rule is None
                or inst.state != FIRING
                or inst.inhibited
                or not inst.notified
                or channel not in _channels(rule, inst.tiers)
            ):
                continue
            grouped.setdefault(rule.id, []).append(alert_view(rule, inst, FIRING, now))
        return [
            {
                "channel": channel,
                "status": FIRING,
                "reason": "resend",
                "rule": rule_view(by_id[rule_id]),
                "groupKey": f"{rule_id}:{channel}",
                "alerts": sorted(alerts, key=lambda a: sorted(a["labels"].items())),
                "time": iso(now),
            }
            for rule_id, alerts in grouped.items()
        ]

    # --- persistence ---------------------------------------------------------------------
    def to_json(self) -> list[dict[str, Any]]:
        return [inst.to_json() for inst in self.instances.values()]

    def load(self, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            inst = Instance.from_json(doc)
            self.instances[(inst.rule_id, inst.key)] = inst


def _channels(rule: Rule, tiers: int) -> list[str]:
    extra = [c for t in rule.escalation[:tiers] for c in t.channels]
    return list(dict.fromkeys([*rule.channels, *extra]))
