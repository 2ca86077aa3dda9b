"""The rules processor's self-metrics, registered once per telemetry registry."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from otlp.telemetry import Telemetry


@dataclass(slots=True)
class RulesMetrics:
    evaluations: Counter
    instances: Gauge
    sent: Counter
    failed: Counter
    dropped: Counter


# keyed by the registry object itself: an id() is reused once a registry is gone, which handed
# a new registry the metrics of a dead one
_BY_REGISTRY: weakref.WeakKeyDictionary[object, RulesMetrics] = weakref.WeakKeyDictionary()


def rules_metrics(telemetry: Telemetry) -> RulesMetrics:
    key = telemetry.registry
    found = _BY_REGISTRY.get(key)
    if found is None:
        r = telemetry.registry
        found = _BY_REGISTRY[key] = RulesMetrics(
            evaluations=Counter(
                "airis_rules_evaluations",
                "Rule evaluations performed",
                ("processor", "rule"),
                registry=r,
            ),
            instances=Gauge(
                "airis_rules_alert_instances",
                "Alert instances per state (pending, firing)",
                ("processor", "rule", "state"),
                registry=r,
            ),
            sent=Counter(
                "airis_rules_notifications_sent",
                "Notifications delivered",
                ("processor", "channel"),
                registry=r,
            ),
            failed=Counter(
                "airis_rules_notifications_failed",
                "Notifications given up on (refused, retries exhausted, queue full)",
                ("processor", "channel", "reason"),
                registry=r,
            ),
            dropped=Counter(
                "airis_rules_history_dropped",
                "Alert transition records that could not be handed to the logs pipeline",
                ("processor",),
                registry=r,
            ),
        )
    return found
