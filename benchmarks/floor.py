"""The floor: CPU per item of a bare protobuf parse of the benchmark's own requests, next to
AIRIS's decode of the same bytes into columns (otlp.decode.decode_protobuf).

Both run in this process, one after the other, on the rendered requests the load generator
sends; CPU is process time, so a noisy neighbour does not count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.payloads import make_templates

REQUESTS = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def _cpu_per_call(fn: Callable[[bytes], Any], bodies: list[bytes], min_seconds: float) -> float:
    for body in bodies:  # warm caches and lazy imports
        fn(body)
    calls = 0
    began = time.process_time()
    while True:
        for body in bodies:
            fn(body)
        calls += len(bodies)
        spent = time.process_time() - began
        if spent >= min_seconds:
            return spent / calls


def measure(signal: str, batch: int = 512, min_seconds: float = 1.0) -> dict[str, Any]:
    """µs per item of ParseFromString and of decode_protobuf for `signal` requests."""
    templates = make_templates(signal, batch)
    bodies = [t.render(i + 1) for i, t in enumerate(templates)]
    items = sum(t.items for t in templates) / len(templates)
    cls = REQUESTS[signal]
    parse = _cpu_per_call(cls.FromString, bodies, min_seconds) / items * 1e6
    result: dict[str, Any] = {
        "signal": signal,
        "items_per_request": items,
        "request_bytes": round(sum(len(b) for b in bodies) / len(bodies)),
        "parse_us_per_item": round(parse, 3),
    }
    try:
        from otlp.decode import decode_protobuf

        decode = _cpu_per_call(lambda b: decode_protobuf(signal, b), bodies, min_seconds)
    except Exception as exc:  # the decoder is being worked on elsewhere: report, go on
        result["decode_error"] = f"{type(exc).__name__}: {exc}"
        return result
    decode_us = decode / items * 1e6
    result["decode_us_per_item"] = round(decode_us, 3)
    result["decode_over_parse"] = round(decode_us / parse, 2)
    return result
