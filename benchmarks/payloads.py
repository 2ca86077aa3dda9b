"""Realistic OTLP export requests, encoded once and made unique per request by patching bytes.

A load generator must not spend its CPU encoding protobuf, so each request is serialized once
as a `Template`. Every trace id in it starts with an 8-byte marker, and every resource carries a
`loadgen.request.id` attribute holding a 16-character marker; `Template.render(request_id)`
rebuilds the bytes with those markers replaced by the request id (big-endian) and its hex form.
The encoded lengths do not change, so no length prefix needs fixing. The result: trace ids are
unique per request (8 bytes of request id + 8 bytes that differ per trace within the request),
and stored rows of any signal can be tied to the request that carried them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Exemplar,
    ExponentialHistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

SIGNALS = ("traces", "metrics", "logs")
REQUEST_ID_ATTRIBUTE = "loadgen.request.id"

# Spans of one trace in a request (a server span and its children, as one service emits them).
SPANS_PER_TRACE = 8
# Data points per metric: one per attribute set (4 methods x 2 status codes).
POINTS_PER_METRIC = 8
# A collector batch mixes services: one resource per this many items, at most MAX_RESOURCES.
ITEMS_PER_RESOURCE = 128
MAX_RESOURCES = 8


@dataclass(frozen=True)
class Template:
    """One encoded export request; `render` stamps a request id into a copy of it."""

    signal: str
    data: bytes  # as encoded, with the markers in place
    items: int  # spans, metric data points or log records
    id_slots: int  # trace ids (and exemplar/log trace ids) whose first half is the request id
    hex_slots: int  # resources whose loadgen.request.id holds the request id in hex
    # `data` cut at the hex slots, each piece cut at the id slots: rendering is two C-level
    # joins (about 30 us for 512 spans), where a Python loop over slots costs several times that.
    parts: tuple[tuple[bytes, ...], ...] = field(repr=False, default=())

    def render(self, request_id: int) -> bytes:
        rid = request_id.to_bytes(8, "big")
        return rid.hex().encode().join([rid.join(pieces) for pieces in self.parts])


def make_templates(signal: str, batch: int, distinct: int = 8, seed: int = 1) -> list[Template]:
    """`distinct` different requests of `batch` items each, for the load generator to cycle."""
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, not {signal!r}")
    if batch < 1 or distinct < 1:
        raise ValueError("batch and distinct must be at least 1")
    build = _BUILDERS[signal]
    return [_encode(signal, build, batch, random.Random(seed * 7919 + i)) for i in range(distinct)]


def _encode(signal: str, build: Callable[..., Any], batch: int, rng: random.Random) -> Template:
    # Markers are random, so a clash with other bytes of the request is possible but rare:
    # count the hits (overlapping ones too) against the number of slots written and draw new
    # markers on a mismatch.
    for _ in range(10):
        id_marker = rng.randbytes(8)
        hex_marker = rng.randbytes(8).hex().encode()
        msg, n_ids, n_hex = build(rng, batch, id_marker, hex_marker.decode())
        data = msg.SerializeToString()
        if _count(data, id_marker) == n_ids and _count(data, hex_marker) == n_hex:
            parts = tuple(tuple(chunk.split(id_marker)) for chunk in data.split(hex_marker))
            return Template(signal, data, batch, n_ids, n_hex, parts)
    raise RuntimeError("could not place unique markers in the request")


def _count(data: bytes, needle: bytes) -> int:
    found = 0
    pos = data.find(needle)
    while pos >= 0:
        found += 1
        pos = data.find(needle, pos + 1)
    return found


# ---- values -------------------------------------------------------------------------------


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_any(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=_kvs(value)))
    return AnyValue(string_value=str(value))


def _kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any(v)) for k, v in attrs.items()]


_SERVICES = ("checkout", "cart", "payment", "shipping", "frontend", "catalog", "auth", "search")
_ROUTES = (
    ("GET", "/api/v1/orders/{id}"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/products/{sku}"),
    ("PUT", "/api/v1/cart/{id}/items"),
    ("DELETE", "/api/v1/cart/{id}/items/{item}"),
    ("GET", "/healthz"),
)
_USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
)
_METHODS = ("GET", "POST", "PUT", "DELETE")


def _resource(rng: random.Random, index: int, hex_marker: str) -> Resource:
    service = _SERVICES[(index + rng.randrange(len(_SERVICES))) % len(_SERVICES)]
    attrs = {
        "service.name": service,
        "service.namespace": "shop",
        "service.version": f"1.{rng.randrange(30)}.{rng.randrange(10)}",
        "service.instance.id": f"{service}-{rng.randbytes(4).hex()}",
        "deployment.environment.name": rng.choice(("production", "staging")),
        "host.name": f"node-{rng.randrange(64):02d}.cluster.local",
        "host.arch": "amd64",
        "telemetry.sdk.language": rng.choice(("java", "go", "python", "nodejs")),
        REQUEST_ID_ATTRIBUTE: hex_marker,
    }
    return Resource(attributes=_kvs(attrs))


def _split(total: int) -> list[int]:
    """Items per resource: a batch of many items comes from several services."""
    n = max(1, min(MAX_RESOURCES, total // ITEMS_PER_RESOURCE))
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def _http_attrs(rng: random.Random, method: str, route: str, status: int) -> dict[str, Any]:
    path = route.replace("{id}", str(rng.randrange(10**6))).replace(
        "{sku}", f"SKU-{rng.randrange(10**4)}"
    )
    path = path.replace("{item}", str(rng.randrange(100)))
    return {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
        "url.path": path,
        "url.scheme": "https",
        "server.address": "api.shop.example",
        "server.port": 443,
        "network.protocol.version": "1.1",
        "user_agent.original": rng.choice(_USER_AGENTS),
        "client.address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
    }


# ---- traces -------------------------------------------------------------------------------


def _traces(
    rng: random.Random, batch: int, id_marker: bytes, hex_marker: str
) -> tuple[ExportTraceServiceRequest, int, int]:
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    trace_no = 0
    counts = _split(batch)
    for r, count in enumerate(counts):
        rs = ResourceSpans(resource=_resource(rng, r, hex_marker))
        rs.schema_url = "https://opentelemetry.io/schemas/1.27.0"
        ss = ScopeSpans(scope=InstrumentationScope(name="io.opentelemetry.http", version="2.10.0"))
        left = count
        while left:
            size = min(SPANS_PER_TRACE, left)
            left -= size
            trace_no += 1
            # The second half differs per trace; the first half becomes the request id.
            trace_id = id_marker + trace_no.to_bytes(4, "big") + rng.randbytes(4)
            ss.spans.extend(_trace_spans(rng, trace_id, size, now))
        rs.scope_spans.append(ss)
        req.resource_spans.append(rs)
    return req, batch, len(counts)


def _trace_spans(rng: random.Random, trace_id: bytes, size: int, now: int) -> list[Span]:
    method, route = rng.choice(_ROUTES)
    failed = rng.random() < 0.1
    status = 500 if failed else rng.choice((200, 200, 200, 201, 204, 404))
    start = now - rng.randrange(5 * 10**9)
    total = rng.randrange(2 * 10**6, 400 * 10**6)
    root = Span(
        trace_id=trace_id,
        span_id=rng.randbytes(8),
        name=f"{method} {route}",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=start,
        end_time_unix_nano=start + total,
        attributes=_kvs(_http_attrs(rng, method, route, status)),
        flags=0x101,
    )
    if failed:
        root.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="upstream failed"))
    spans = [root]
    for i in range(1, size):
        begin = start + total * i // (size + 1)
        span = Span(
            trace_id=trace_id,
            span_id=rng.randbytes(8),
            parent_span_id=spans[rng.randrange(len(spans))].span_id,
            start_time_unix_nano=begin,
            end_time_unix_nano=begin + total // (size + 2),
            flags=0x101,
        )
        if i % 3 == 1:
            span.name = "SELECT shop.orders"
            span.kind = Span.SPAN_KIND_CLIENT
            attrs: dict[str, Any] = {
                "db.system.name": "postgresql",
                "db.namespace": "shop",
                "db.collection.name": "orders",
                "db.operation.name": "SELECT",
                "db.query.text": "SELECT id, status, total FROM orders WHERE customer_id = $1",
                "server.address": "pg-primary.shop.svc",
                "server.port": 5432,
                "network.peer.address": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                "db.response.returned_rows": rng.randrange(100),
                "app.cache.hit": rng.random() < 0.5,
            }
        elif i % 3 == 2:
            m, r = rng.choice(_ROUTES)
            span.name = m
            span.kind = Span.SPAN_KIND_CLIENT
            attrs = _http_attrs(rng, m, r, rng.choice((200, 200, 503)))
            attrs["http.request.resend_count"] = rng.randrange(3)
        else:
            span.name = "render_response"
            span.kind = Span.SPAN_KIND_INTERNAL
            attrs = {
                "code.function.name": "OrderController.render",
                "code.file.path": "src/orders/controller.py",
                "code.line.number": rng.randrange(1, 500),
                "app.order.items": rng.randrange(1, 20),
                "app.order.total": round(rng.uniform(1, 500), 2),
                "app.currency": "EUR",
                "app.customer.tier": rng.choice(("free", "gold", "platinum")),
                "app.feature_flags": ["new-checkout", "fast-cart"],
                "thread.name": f"worker-{rng.randrange(16)}",
                "thread.id": rng.randrange(1, 10**5),
            }
        span.attributes.extend(_kvs(attrs))
        spans.append(span)
    # Events on some spans: an exception on failed traces, a cache miss now and then.
    if failed:
        ev = root.events.add()
        ev.name = "exception"
        ev.time_unix_nano = start + total - 1000
        ev.attributes.extend(
            _kvs(
                {
                    "exception.type": "UpstreamError",
                    "exception.message": "payment service returned 503",
                    "exception.stacktrace": "Traceback (most recent call last):\n"
                    '  File "src/orders/service.py", line 88, in place_order\n'
                    "    resp = client.charge(order)\nUpstreamError: 503",
                }
            )
        )
    if rng.random() < 0.25:
        ev = spans[-1].events.add()
        ev.name = "cache.miss"
        ev.time_unix_nano = spans[-1].start_time_unix_nano + 500
        ev.attributes.extend(_kvs({"cache.key": f"order:{rng.randrange(10**6)}"}))
    return spans


# ---- metrics ------------------------------------------------------------------------------

_METRIC_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]


def _metrics(
    rng: random.Random, batch: int, id_marker: bytes, hex_marker: str
) -> tuple[ExportMetricsServiceRequest, int, int]:
    now = time.time_ns()
    start = now - 3600 * 10**9
    req = ExportMetricsServiceRequest()
    exemplars = 0
    metric_no = 0
    counts = _split(batch)
    for r, count in enumerate(counts):
        rm = ResourceMetrics(resource=_resource(rng, r, hex_marker))
        sm = ScopeMetrics(
            scope=InstrumentationScope(name="io.opentelemetry.runtime", version="2.10.0")
        )
        left = count
        while left:
            points = min(POINTS_PER_METRIC, left)
            left -= points
            kind = _METRIC_KINDS[metric_no % len(_METRIC_KINDS)]
            # Same-named metrics repeat per cycle with a numbered suffix, as distinct series.
            cycle = metric_no // len(_METRIC_KINDS)
            metric_no += 1
            metric, n_ex = _metric(rng, kind, cycle, points, start, now, id_marker)
            exemplars += n_ex
            sm.metrics.append(metric)
        rm.scope_metrics.append(sm)
        req.resource_metrics.append(rm)
    return req, exemplars, len(counts)


def _point_attrs(i: int) -> list[KeyValue]:
    return _kvs(
        {
            "http.request.method": _METHODS[i % 4],
            "http.response.status_code": 200 if i < 4 else 500,
            "http.route": _ROUTES[i % len(_ROUTES)][1],
            "server.address": "api.shop.example",
        }
    )


def _metric(
    rng: random.Random, kind: str, cycle: int, points: int, start: int, now: int, id_marker: bytes
) -> tuple[Metric, int]:
    suffix = f".{cycle}" if cycle else ""
    exemplars = 0
    if kind == "gauge":
        m = Metric(name="process.cpu.utilization" + suffix, unit="1", description="CPU share")
        for i in range(points):
            m.gauge.data_points.append(
                NumberDataPoint(
                    attributes=_point_attrs(i), time_unix_nano=now, as_double=rng.random()
                )
            )
    elif kind == "sum":
        m = Metric(name="http.server.request.count" + suffix, unit="{request}")
        m.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        m.sum.is_monotonic = True
        for i in range(points):
            m.sum.data_points.append(
                NumberDataPoint(
                    attributes=_point_attrs(i),
                    start_time_unix_nano=start,
                    time_unix_nano=now,
                    as_int=rng.randrange(10**7),
                )
            )
    elif kind == "histogram":
        m = Metric(name="http.server.request.duration" + suffix, unit="s")
        m.histogram.aggregation_temporality = (
            AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        )
        for i in range(points):
            buckets = [rng.randrange(1000) for _ in range(len(_BOUNDS) + 1)]
            dp = m.histogram.data_points.add()
            dp.attributes.extend(_point_attrs(i))
            dp.start_time_unix_nano = start
            dp.time_unix_nano = now
            dp.count = sum(buckets)
            dp.sum = dp.count * rng.uniform(0.01, 0.5)
            dp.min = 0.001
            dp.max = 9.5
            dp.bucket_counts.extend(buckets)
            dp.explicit_bounds.extend(_BOUNDS)
            if i % 4 == 0:
                trace_id = id_marker + rng.randbytes(8)
                dp.exemplars.append(
                    Exemplar(
                        time_unix_nano=now - 10**6,
                        as_double=rng.uniform(0.01, 2),
                        trace_id=trace_id,
                        span_id=rng.randbytes(8),
                    )
                )
                exemplars += 1
    elif kind == "exponential_histogram":
        m = Metric(name="rpc.server.duration" + suffix, unit="ms")
        m.exponential_histogram.aggregation_temporality = (
            AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        )
        for i in range(points):
            counts = [rng.randrange(200) for _ in range(20)]
            dp = ExponentialHistogramDataPoint(
                attributes=_point_attrs(i),
                start_time_unix_nano=now - 60 * 10**9,
                time_unix_nano=now,
                scale=3,
                zero_count=rng.randrange(5),
                min=0.2,
                max=850.0,
            )
            dp.positive.offset = 8
            dp.positive.bucket_counts.extend(counts)
            dp.count = sum(counts) + dp.zero_count
            dp.sum = dp.count * rng.uniform(1, 100)
            m.exponential_histogram.data_points.append(dp)
    else:
        m = Metric(name="jvm.gc.pause" + suffix, unit="s")
        for i in range(points):
            dp = SummaryDataPoint(
                attributes=_point_attrs(i),
                start_time_unix_nano=start,
                time_unix_nano=now,
                count=rng.randrange(1, 10**4),
            )
            dp.sum = dp.count * rng.uniform(0.001, 0.2)
            for q, v in ((0.0, 0.001), (0.5, 0.02), (0.9, 0.08), (0.99, 0.3), (1.0, 0.9)):
                qv = dp.quantile_values.add()
                qv.quantile = q
                qv.value = v * rng.uniform(0.8, 1.2)
            m.summary.data_points.append(dp)
    return m, exemplars


# ---- logs ---------------------------------------------------------------------------------

_LOG_LINES = (
    "order placed",
    "payment authorized for order {n} in {ms} ms",
    "cache miss for key order:{n}, loading from database",
    '{{"level":"warn","msg":"slow query","duration_ms":{ms},"table":"orders"}}',
    "retrying request to payment-service (attempt {a} of 3): connection reset by peer",
    "GET /api/v1/products/SKU-{n} 200 {ms}ms",
)
_SEVERITY_LEVELS = (
    (9, "INFO"),
    (9, "INFO"),
    (9, "INFO"),
    (5, "DEBUG"),
    (13, "WARN"),
    (17, "ERROR"),
)


def _logs(
    rng: random.Random, batch: int, id_marker: bytes, hex_marker: str
) -> tuple[ExportLogsServiceRequest, int, int]:
    now = time.time_ns()
    req = ExportLogsServiceRequest()
    with_trace = 0
    counts = _split(batch)
    for r, count in enumerate(counts):
        rl = ResourceLogs(resource=_resource(rng, r, hex_marker))
        sl = ScopeLogs(scope=InstrumentationScope(name="app.logger", version="1.0.0"))
        for i in range(count):
            number, text = _SEVERITY_LEVELS[rng.randrange(len(_SEVERITY_LEVELS))]
            ts = now - rng.randrange(5 * 10**9)
            rec = LogRecord(
                time_unix_nano=ts,
                observed_time_unix_nano=ts + rng.randrange(10**6),
                severity_number=number,
                severity_text=text,
            )
            line = rng.choice(_LOG_LINES).format(
                n=rng.randrange(10**6), ms=rng.randrange(1, 900), a=rng.randrange(1, 4)
            )
            if i % 5 == 4:
                # Structured bodies occur too (maps, as from a JSON logger).
                rec.body.CopyFrom(
                    _any({"message": line, "component": "orders", "attempt": rng.randrange(3)})
                )
            else:
                rec.body.string_value = line
            rec.attributes.extend(
                _kvs(
                    {
                        "code.function.name": rng.choice(("place_order", "charge", "render")),
                        "code.file.path": "src/orders/service.py",
                        "code.line.number": rng.randrange(1, 500),
                        "log.iostream": "stdout",
                        "http.route": rng.choice(_ROUTES)[1],
                        "enduser.id": f"user-{rng.randrange(10**5)}",
                    }
                )
            )
            if i % 2 == 0:
                rec.trace_id = id_marker + rng.randbytes(8)
                rec.span_id = rng.randbytes(8)
                rec.flags = 1
                with_trace += 1
            if i % 10 == 0:
                rec.event_name = "order.placed"
            sl.log_records.append(rec)
        rl.scope_logs.append(sl)
        req.resource_logs.append(rl)
    return req, with_trace, len(counts)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "traces": _traces,
    "metrics": _metrics,
    "logs": _logs,
}
