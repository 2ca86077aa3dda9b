"""tail_sampling self-metrics with the Collector's names (otelcol_processor_tail_sampling_*).

Registered once per Telemetry registry (several tail_sampling processors share the series,
told apart by the ``processor`` label, as the other processor metrics are).
"""

from __future__ import annotations

import weakref

from prometheus_client import Counter, Gauge, Histogram

from otlp.telemetry import Telemetry

PREFIX = "otelcol_processor_tail_sampling_"
_AGE_BUCKETS = (0, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class TailSamplingMetrics:
    def __init__(self, telemetry: Telemetry) -> None:
        r = telemetry.registry
        self.count_traces_sampled = Counter(
            PREFIX + "count_traces_sampled",
            "Count of traces that were sampled or not per sampling policy",
            ("processor", "policy", "sampled", "decision"),
            registry=r,
        )
        self.count_spans_sampled = Counter(
            PREFIX + "count_spans_sampled",
            "Count of spans that were sampled or not per sampling policy",
            ("processor", "policy", "sampled", "decision"),
            registry=r,
        )
        self.global_count_traces_sampled = Counter(
            PREFIX + "global_count_traces_sampled",
            "Global count of traces that were sampled or not by at least one policy",
            ("processor", "sampled", "decision"),
            registry=r,
        )
        self.new_trace_id_received = Counter(
            PREFIX + "new_trace_id_received",
            "Counts the arrival of new traces",
            ("processor",),
            registry=r,
        )
        self.trace_dropped_too_early = Counter(
            PREFIX + "sampling_trace_dropped_too_early",
            "Count of traces that needed to be dropped before the configured wait time",
            ("processor",),
            registry=r,
        )
        self.policy_evaluation_error = Counter(
            PREFIX + "sampling_policy_evaluation_error",
            "Count of sampling policy evaluation errors",
            ("processor",),
            registry=r,
        )
        self.policy_execution_count = Counter(
            PREFIX + "sampling_policy_execution_count",
            "Total number of executions of a specific sampling policy",
            ("processor", "policy"),
            registry=r,
        )
        self.early_releases = Counter(
            PREFIX + "early_releases_from_cache_decision",
            "Number of spans that were able to be immediately released due to a decision "
            "cache hit.",
            ("processor", "sampled"),
            registry=r,
        )
        self.traces_on_memory = Gauge(
            PREFIX + "sampling_traces_on_memory",
            "Tracks the number of traces current on memory",
            ("processor",),
            registry=r,
        )
        self.decision_timer_latency = Histogram(
            PREFIX + "sampling_decision_timer_latency",
            "Latency (in milliseconds) of each run of the sampling decision timer",
            ("processor",),
            buckets=(1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000),
            registry=r,
        )
        self.late_span_age = Histogram(
            PREFIX + "sampling_late_span_age",
            "Time (in seconds) from the sampling decision was taken and the arrival of a late span",
            ("processor",),
            buckets=_AGE_BUCKETS,
            registry=r,
        )
        self.trace_removal_age = Histogram(
            PREFIX + "sampling_trace_removal_age",
            "Time (in seconds) from arrival of a new trace until its removal from memory",
            ("processor",),
            buckets=_AGE_BUCKETS,
            registry=r,
        )


_BY_TELEMETRY: weakref.WeakKeyDictionary[Telemetry, TailSamplingMetrics] = (
    weakref.WeakKeyDictionary()
)


def metrics_for(telemetry: Telemetry) -> TailSamplingMetrics:
    found = _BY_TELEMETRY.get(telemetry)
    if found is None:
        found = _BY_TELEMETRY[telemetry] = TailSamplingMetrics(telemetry)
    return found
