"""Columnar batch -> (index, JSON document) pairs, per mapping mode, as the Collector's
elasticsearchexporter shapes them.

* `otel`: OTel-native fields, as Elastic's OTel data streams use them: `@timestamp` and
  `observed_timestamp` as epoch millis with a nanosecond fraction, `trace_id`/`span_id`
  hex, `attributes`, `resource.attributes`, `scope.{name,version,attributes}`,
  `body.text` / `body.structured`, `data_stream.{type,dataset,namespace}` at the root;
  span events become their own documents (`event_name`) in the logs data stream.
* `ecs`: Elastic Common Schema names (`message`, `log.level`, `trace.id`, `service.name`
  mapped from semantic-convention resource attributes); other attributes at the root.
* `none` / `raw`: the Collector's legacy names (`TraceId`, `SeverityText`, `Body`,
  `Resource`, `Scope`), attributes under `Attributes` (none) or at the root (raw).
* `bodymap`: logs only, the map body is the document.

Routing (empty `*_index`, the Collector's default): `elasticsearch.index` from the record,
scope or resource attributes names the index; otherwise `data_stream.dataset` /
`data_stream.namespace` (record > scope > resource; default generic / default; otel mode
appends `.otel` to the dataset) give `<type>-<dataset>-<namespace>`.

Resource and scope objects are serialised once per batch and spliced into each document
with orjson.Fragment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from exporters.elasticsearch import values as V
from exporters.elasticsearch.config import ElasticsearchConfig
from otlp.batch import LOGS_SIGNAL, METRICS_SIGNAL, POINT_TABLES, TRACES, V_ARRAY, V_KVLIST, Batch

DS_TYPE: Final = "data_stream.type"
DS_DATASET: Final = "data_stream.dataset"
DS_NAMESPACE: Final = "data_stream.namespace"
INDEX_ATTR: Final = "elasticsearch.index"
# attributes that steer the exporter and are not written as attributes (otel mode)
_CONTROL: Final = frozenset(
    {
        DS_TYPE,
        DS_DATASET,
        DS_NAMESPACE,
        INDEX_ATTR,
        "elasticsearch.mapping.hints",
        "elastic.mapping.mode",
        "elasticsearch.document_id",
        "elasticsearch.document_pipeline",
    }
)
_DS_INVALID: Final = re.compile(r'[\\/*?"<>| ,#:-]')

# ECS names for semantic-convention resource attributes (the commonly used subset)
ECS_RESOURCE: Final = {
    "service.name": "service.name",
    "service.version": "service.version",
    "service.instance.id": "service.node.name",
    "deployment.environment": "service.environment",
    "deployment.environment.name": "service.environment",
    "telemetry.sdk.language": "service.language.name",
    "telemetry.sdk.version": "agent.version",
    "host.name": "host.hostname",
    "host.arch": "host.architecture",
    "os.type": "host.os.platform",
    "os.description": "host.os.full",
    "os.name": "host.os.name",
    "os.version": "host.os.version",
    "process.pid": "process.pid",
    "process.executable.path": "process.executable",
    "process.command_line": "process.command_line",
    "process.runtime.name": "service.runtime.name",
    "process.runtime.version": "service.runtime.version",
    "container.name": "container.name",
    "container.id": "container.id",
    "container.image.name": "container.image.name",
    "k8s.namespace.name": "kubernetes.namespace",
    "k8s.pod.name": "kubernetes.pod.name",
    "k8s.pod.uid": "kubernetes.pod.uid",
    "k8s.node.name": "kubernetes.node.name",
    "k8s.deployment.name": "kubernetes.deployment.name",
    "cloud.provider": "cloud.provider",
    "cloud.region": "cloud.region",
    "cloud.availability_zone": "cloud.availability_zone",
    "cloud.account.id": "cloud.account.id",
}


@dataclass(slots=True)
class Doc:
    index: str
    body: bytes
    # position of the source item in the batch (spans/log records/points), for progress
    item: int


def _sanitize(part: str) -> str:
    # data stream names: lowercase, none of \/*?"<>| ,#: and no '-' inside a part
    return _DS_INVALID.sub("_", part.lower())[:100]


def _lookup(key: str, *maps: dict[str, Any]) -> Any:
    for attrs in maps:
        found = attrs.get(key)
        if found is not None and found != "":
            return found
    return None


class Router:
    """Index name per document: the static `*_index`, or dynamic routing."""

    def __init__(self, static: str, ds_type: str, otel: bool) -> None:
        self.static = static
        self.ds_type = ds_type
        self.otel = otel

    def route(
        self, record: dict[str, Any], scope: dict[str, Any], resource: dict[str, Any]
    ) -> tuple[str, dict[str, str] | None]:
        """(index, data_stream fields or None)."""
        if self.static:
            return self.static, None
        named = _lookup(INDEX_ATTR, record, scope, resource)
        if named is not None:
            return str(named), None
        dataset = _lookup(DS_DATASET, record, scope, resource)
        namespace = _lookup(DS_NAMESPACE, record, scope, resource)
        dataset = _sanitize(str(dataset)) if dataset is not None else "generic"
        namespace = _sanitize(str(namespace)) if namespace is not None else "default"
        if self.otel and not dataset.endswith(".otel"):
            dataset += ".otel"
        stream = {"type": self.ds_type, "dataset": dataset, "namespace": namespace}
        return f"{self.ds_type}-{dataset}-{namespace}", stream


def _strip_control(attrs: dict[str, Any]) -> dict[str, Any]:
    if attrs.keys() & _CONTROL:
        return {k: v for k, v in attrs.items() if k not in _CONTROL}
    return attrs


def _dumps(doc: dict[str, Any]) -> bytes:
    # non-str keys never occur; NaN/Infinity become null (JSON has no such numbers)
    return orjson.dumps(doc)


class _Context:
    """Per-batch resource and scope data, looked up by each record's scope_index."""

    def __init__(self, batch: Batch, mode: str) -> None:
        res = batch.resources
        sc = batch.scopes
        self.resource_attrs = V.attribute_column(res.column("attributes"))
        self.scope_attrs = V.attribute_column(sc.column("attributes"))
        self.scope_resource = V.ints(sc.column("resource_index"))
        self.scope_names = V.strings(sc.column("name"))
        self.scope_versions = V.strings(sc.column("version"))
        res_schema = V.strings(res.column("schema_url"))
        res_dropped = V.ints(res.column("dropped_attributes_count"))
        sc_schema = V.strings(sc.column("schema_url"))
        sc_dropped = V.ints(sc.column("dropped_attributes_count"))
        self.resource_fragment: list[orjson.Fragment] = []
        self.scope_fragment: list[orjson.Fragment] = []
        if mode == "otel":
            for i, attrs in enumerate(self.resource_attrs):
                obj: dict[str, Any] = {}
                if res_schema[i]:
                    obj["schema_url"] = res_schema[i]
                if attrs:
                    obj["attributes"] = _strip_control(attrs)
                if res_dropped[i]:
                    obj["dropped_attributes_count"] = res_dropped[i]
                self.resource_fragment.append(orjson.Fragment(orjson.dumps(obj)))
            for i, attrs in enumerate(self.scope_attrs):
                obj = {}
                if sc_schema[i]:
                    obj["schema_url"] = sc_schema[i]
                if self.scope_names[i]:
                    obj["name"] = self.scope_names[i]
                if self.scope_versions[i]:
                    obj["version"] = self.scope_versions[i]
                if attrs:
                    obj["attributes"] = _strip_control(attrs)
                if sc_dropped[i]:
                    obj["dropped_attributes_count"] = sc_dropped[i]
                self.scope_fragment.append(orjson.Fragment(orjson.dumps(obj)))
        elif mode in ("none", "raw"):
            for attrs in self.resource_attrs:
                self.resource_fragment.append(orjson.Fragment(orjson.dumps(attrs)))
            for i, attrs in enumerate(self.scope_attrs):
                obj = {"name": self.scope_names[i], "version": self.scope_versions[i]}
                obj.update(attrs)
                self.scope_fragment.append(orjson.Fragment(orjson.dumps(obj)))
        elif mode == "ecs":
            self.ecs_resource = [_ecs_resource(attrs) for attrs in self.resource_attrs]

    def resource_of(self, scope_index: int) -> int:
        return self.scope_resource[scope_index]


def _ecs_resource(attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in attrs.items():
        out[ECS_RESOURCE.get(key, key)] = val
    language = attrs.get("telemetry.sdk.language")
    if language:
        out["agent.name"] = f"otlp/{language}"
    return out


class DocumentBuilder:
    """Documents for one exporter config; `build(batch)` yields Doc per indexed item."""

    def __init__(self, config: ElasticsearchConfig) -> None:
        self.mode = config.mapping.mode
        otel = self.mode == "otel"
        self.logs = Router(config.logs_index, "logs", otel)
        self.traces = Router(config.traces_index, "traces", otel)
        self.metrics = Router(config.metrics_index, "metrics", otel)
        # span events go to the logs data stream (otel mode), or beside the span
        self.span_events = Router(config.traces_index, "logs", otel)
        self._builders: dict[str, Callable[[Batch], Iterator[Doc]]] = {
            LOGS_SIGNAL: self._logs,
            TRACES: self._spans,
            METRICS_SIGNAL: self._metrics,
        }

    def build(self, batch: Batch) -> list[Doc]:
        return list(self._builders[batch.signal](batch))

    # --- logs ------------------------------------------------------------------------------
    def _logs(self, batch: Batch) -> Iterator[Doc]:
        t = batch.tables["logs"]
        if not t.num_rows:
            return
        ctx = _Context(batch, self.mode)
        scope_idx = V.ints(t.column("scope_index"))
        time_ns = V.nanos(t.column("time_unix_nano"))
        observed_ns = V.nanos(t.column("observed_time_unix_nano"))
        doc_ns = time_ns.copy()
        doc_ns[doc_ns == 0] = observed_ns[doc_ns == 0]
        otel = self.mode == "otel"
        stamp = V.epoch_millis_nanos if otel else V.rfc3339_nanos
        ts = stamp(doc_ns)
        observed = stamp(observed_ns)
        sev_text = V.strings(t.column("severity_text"))
        sev_num = V.ints(t.column("severity_number"))
        trace_ids = V.hex_column(t.column("trace_id"))
        span_ids = V.hex_column(t.column("span_id"))
        attrs_col = V.attribute_column(t.column("attributes"))
        dropped = V.ints(t.column("dropped_attributes_count"))
        flags = V.ints(t.column("flags"))
        event_names = V.strings(t.column("event_name"))
        bodies = t.column("body").to_pylist()
        for i in range(t.num_rows):
            s = scope_idx[i]
            r = ctx.resource_of(s)
            attrs = attrs_col[i]
            index, stream = self.logs.route(attrs, ctx.scope_attrs[s], ctx.resource_attrs[r])
            body = bodies[i]
            doc: dict[str, Any]
            if otel:
                doc = {"@timestamp": ts[i], "observed_timestamp": observed[i]}
                if stream:
                    doc["data_stream"] = stream
                if sev_text[i]:
                    doc["severity_text"] = sev_text[i]
                if sev_num[i]:
                    doc["severity_number"] = sev_num[i]
                if trace_ids[i]:
                    doc["trace_id"] = trace_ids[i]
                if span_ids[i]:
                    doc["span_id"] = span_ids[i]
                if attrs:
                    doc["attributes"] = _strip_control(attrs)
                if dropped[i]:
                    doc["dropped_attributes_count"] = dropped[i]
                event = event_names[i] or attrs.get("event.name")
                if event:
                    doc["event_name"] = event
                doc["resource"] = ctx.resource_fragment[r]
                doc["scope"] = ctx.scope_fragment[s]
                if body is not None and body["type"]:
                    doc["body"] = _otel_body(body)
            elif self.mode == "ecs":
                doc = {"@timestamp": ts[i]}
                doc.update(ctx.ecs_resource[r])
                doc.update(attrs)
                if stream:
                    doc["data_stream"] = stream
                text = _as_text(body)
                if text is not None:
                    doc["message"] = text
                if sev_text[i]:
                    doc["log.level"] = sev_text[i]
                if sev_num[i]:
                    doc["event.severity"] = sev_num[i]
                if trace_ids[i]:
                    doc["trace.id"] = trace_ids[i]
                if span_ids[i]:
                    doc["span.id"] = span_ids[i]
                doc = _dedot(doc)
            elif self.mode == "bodymap":
                if body is None or body["type"] != V_KVLIST:
                    continue  # the Collector drops non-map bodies in bodymap mode
                doc = V.value(body)
            else:
                doc = {"@timestamp": ts[i]}
                if stream:
                    doc["data_stream"] = stream
                if trace_ids[i]:
                    doc["TraceId"] = trace_ids[i]
                if span_ids[i]:
                    doc["SpanId"] = span_ids[i]
                doc["TraceFlags"] = flags[i]
                doc["SeverityText"] = sev_text[i]
                doc["SeverityNumber"] = sev_num[i]
                doc["Body"] = V.value(body)
                doc["Resource"] = ctx.resource_fragment[r]
                doc["Scope"] = ctx.scope_fragment[s]
                if self.mode == "raw":
                    for key, val in attrs.items():
                        doc.setdefault(key, val)
                elif attrs:
                    doc["Attributes"] = attrs
            yield Doc(index, _dumps(doc), i)

    # --- traces ----------------------------------------------------------------------------
    def _spans(self, batch: Batch) -> Iterator[Doc]:
        t = batch.tables["spans"]
        if not t.num_rows:
            return
        ctx = _Context(batch, self.mode)
        otel = self.mode == "otel"
        stamp = V.epoch_millis_nanos if otel else V.rfc3339_nanos
        scope_idx = V.ints(t.column("scope_index"))
        start_ns = V.nanos(t.column("start_time_unix_nano"))
        end_ns = V.nanos(t.column("end_time_unix_nano"))
        durations = (end_ns - start_ns).tolist() if len(start_ns) else []
        starts = stamp(start_ns)
        ends = stamp(end_ns) if not otel else []
        trace_ids = V.hex_column(t.column("trace_id"))
        span_ids = V.hex_column(t.column("span_id"))
        parents = V.hex_column(t.column("parent_span_id"))
        names = V.strings(t.column("name"))
        kinds = V.ints(t.column("kind"))
        states = V.strings(t.column("trace_state"))
        attrs_col = V.attribute_column(t.column("attributes"))
        dropped = V.ints(t.column("dropped_attributes_count"))
        dropped_events = V.ints(t.column("dropped_events_count"))
        dropped_links = V.ints(t.column("dropped_links_count"))
        status_msg = V.strings(t.column("status_message"))
        status_code = V.ints(t.column("status_code"))
        links = t.column("links").to_pylist()
        events = t.column("events").to_pylist()
        for i in range(t.num_rows):
            s = scope_idx[i]
            r = ctx.resource_of(s)
            attrs = attrs_col[i]
            index, stream = self.traces.route(attrs, ctx.scope_attrs[s], ctx.resource_attrs[r])
            code = status_code[i] if 0 <= status_code[i] < 3 else 0
            kind = kinds[i] if 0 <= kinds[i] < 6 else 0
            duration = max(durations[i], 0) if start_ns[i] <= end_ns[i] else 0
            doc: dict[str, Any]
            if otel:
                doc = {"@timestamp": starts[i]}
                if stream:
                    doc["data_stream"] = stream
                if trace_ids[i]:
                    doc["trace_id"] = trace_ids[i]
                if span_ids[i]:
                    doc["span_id"] = span_ids[i]
                if states[i]:
                    doc["trace_state"] = states[i]
                if parents[i]:
                    doc["parent_span_id"] = parents[i]
                if names[i]:
                    doc["name"] = names[i]
                doc["kind"] = V.SPAN_KINDS[kind]
                doc["duration"] = duration
                if attrs:
                    doc["attributes"] = _strip_control(attrs)
                if dropped[i]:
                    doc["dropped_attributes_count"] = dropped[i]
                if dropped_events[i]:
                    doc["dropped_events_count"] = dropped_events[i]
                doc["links"] = [_otel_link(link) for link in links[i] or ()]
                if dropped_links[i]:
                    doc["dropped_links_count"] = dropped_links[i]
                status: dict[str, Any] = {"code": V.STATUS_CODES[code]}
                if status_msg[i]:
                    status["message"] = status_msg[i]
                doc["status"] = status
                doc["resource"] = ctx.resource_fragment[r]
                doc["scope"] = ctx.scope_fragment[s]
            elif self.mode == "ecs":
                doc = {"@timestamp": starts[i]}
                doc.update(ctx.ecs_resource[r])
                doc.update(attrs)
                if stream:
                    doc["data_stream"] = stream
                doc["trace.id"] = trace_ids[i]
                doc["span.id"] = span_ids[i]
                if parents[i]:
                    doc["parent.id"] = parents[i]
                doc["span.name"] = names[i]
                doc["span.kind"] = V.SPAN_KINDS[kind].lower()
                doc["span.duration.us"] = duration // 1000
                doc["event.outcome"] = ("unknown", "success", "failure")[code]
                doc = _dedot(doc)
            else:
                doc = {"@timestamp": starts[i], "EndTimestamp": ends[i]}
                if stream:
                    doc["data_stream"] = stream
                doc.update(
                    {
                        "TraceId": trace_ids[i],
                        "SpanId": span_ids[i],
                        "ParentSpanId": parents[i],
                        "Name": names[i],
                        "Kind": V.LEGACY_SPAN_KINDS[kind],
                        "TraceStatus": code,
                        "TraceStatusDescription": status_msg[i],
                        "Link": orjson.dumps([_otel_link(x) for x in links[i] or ()]).decode(),
                        "Duration": duration // 1000,
                        "Resource": ctx.resource_fragment[r],
                        "Scope": ctx.scope_fragment[s],
                    }
                )
                if self.mode == "raw":
                    for key, val in attrs.items():
                        doc.setdefault(key, val)
                elif attrs:
                    doc["Attributes"] = attrs
                if events[i]:
                    doc["Events"] = [_legacy_event(e) for e in events[i]]
            yield Doc(index, _dumps(doc), i)
            if otel and events[i]:
                for event in events[i]:
                    yield self._span_event(ctx, event, trace_ids[i], span_ids[i], s, r, i)

    def _span_event(
        self,
        ctx: _Context,
        event: dict[str, Any],
        trace_id: str,
        span_id: str,
        s: int,
        r: int,
        item: int,
    ) -> Doc:
        attrs = V.attributes(event["attributes"])
        if event["name"]:
            attrs["event.name"] = event["name"]
        index, stream = self.span_events.route(attrs, ctx.scope_attrs[s], ctx.resource_attrs[r])
        doc: dict[str, Any] = {"@timestamp": V.epoch_millis_nanos_one(event["time_unix_nano"])}
        if stream:
            doc["data_stream"] = stream
        if trace_id:
            doc["trace_id"] = trace_id
        if span_id:
            doc["span_id"] = span_id
        if event["dropped_attributes_count"]:
            doc["dropped_attributes_count"] = event["dropped_attributes_count"]
        if event["name"]:
            doc["event_name"] = event["name"]
        if attrs:
            doc["attributes"] = _strip_control(attrs)
        doc["resource"] = ctx.resource_fragment[r]
        doc["scope"] = ctx.scope_fragment[s]
        return Doc(index, _dumps(doc), item)

    # --- metrics ---------------------------------------------------------------------------
    def _metrics(self, batch: Batch) -> Iterator[Doc]:
        """One document per data point: `metrics.<name>` holds its value (a number; for
        histograms `{counts, values}`, for summaries `{sum, value_count}`). The Collector
        groups points sharing attributes and timestamp into one document; not done here."""
        mt = batch.tables["metrics"]
        if not mt.num_rows:
            return
        ctx = _Context(batch, "otel" if self.mode != "ecs" else "ecs")
        m_scope = V.ints(mt.column("scope_index"))
        m_name = V.strings(mt.column("name"))
        m_unit = V.strings(mt.column("unit"))
        item = 0
        for table_name in POINT_TABLES:
            t = batch.tables[table_name]
            if not t.num_rows:
                continue
            metric_idx = V.ints(t.column("metric_index"))
            stamps = V.epoch_millis_nanos(V.nanos(t.column("time_unix_nano")))
            starts = V.epoch_millis_nanos(V.nanos(t.column("start_time_unix_nano")))
            attrs_col = V.attribute_column(t.column("attributes"))
            rows = t.to_pylist()
            for i, row in enumerate(rows):
                m = metric_idx[i]
                s = m_scope[m]
                r = ctx.resource_of(s)
                attrs = attrs_col[i]
                index, stream = self.metrics.route(attrs, ctx.scope_attrs[s], ctx.resource_attrs[r])
                doc: dict[str, Any] = {"@timestamp": stamps[i], "start_timestamp": starts[i]}
                if stream:
                    doc["data_stream"] = stream
                doc["metrics"] = {m_name[m]: _point_value(table_name, row)}
                if m_unit[m]:
                    doc["unit"] = m_unit[m]
                if attrs:
                    doc["attributes"] = _strip_control(attrs)
                if self.mode == "ecs":
                    doc.update(ctx.ecs_resource[r])
                else:
                    doc["resource"] = ctx.resource_fragment[r]
                    doc["scope"] = ctx.scope_fragment[s]
                yield Doc(index, _dumps(doc), item)
                item += 1


def _point_value(table: str, row: dict[str, Any]) -> Any:
    if table in ("gauge", "sum"):
        return row["as_int"] if row["value_type"] == 2 else row["as_double"]
    if table == "histogram":
        bounds = row["explicit_bounds"] or []
        counts = row["bucket_counts"] or []
        values = []
        for k in range(len(counts)):
            if k == 0:
                values.append(bounds[0] / 2 if bounds else 0.0)
            elif k >= len(bounds):
                values.append(bounds[-1] if bounds else 0.0)
            else:
                values.append((bounds[k - 1] + bounds[k]) / 2)
        keep = [(v, c) for v, c in zip(values, counts, strict=False) if c]
        return {"values": [v for v, _ in keep], "counts": [c for _, c in keep]}
    return {"sum": row.get("sum") or 0.0, "value_count": row.get("count") or 0}


def _otel_body(body: dict[str, Any]) -> dict[str, Any]:
    kind = body["type"]
    if kind == V_KVLIST:
        return {"structured": V.value(body)}
    if kind == V_ARRAY:
        items = V.value(body) or []
        # Elasticsearch wants an array of objects under an object field
        if all(isinstance(x, dict) for x in items):
            return {"structured": items}
        return {"structured": {"value": items}}
    return {"text": _as_text(body)}


def _as_text(body: dict[str, Any] | None) -> str | None:
    """AsString() of a body: strings as they are, anything else as its JSON/decimal text."""
    if body is None or not body["type"]:
        return None
    val = V.value(body)
    if isinstance(val, str):
        return val
    if isinstance(val, bool):
        return "true" if val else "false"
    if body["type"] in (V_ARRAY, V_KVLIST):
        return body["str"] or ""
    return orjson.dumps(val).decode()


def _otel_link(link: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if link["trace_id"]:
        out["trace_id"] = link["trace_id"].hex()
    if link["span_id"]:
        out["span_id"] = link["span_id"].hex()
    if link["trace_state"]:
        out["trace_state"] = link["trace_state"]
    attrs = V.attributes(link["attributes"])
    if attrs:
        out["attributes"] = attrs
    if link["dropped_attributes_count"]:
        out["dropped_attributes_count"] = link["dropped_attributes_count"]
    return out


def _legacy_event(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "@timestamp": V.rfc3339_nanos_one(event["time_unix_nano"]),
        "Name": event["name"],
        "Attributes": V.attributes(event["attributes"]),
    }


def _dedot(doc: dict[str, Any]) -> dict[str, Any]:
    """ECS documents: "a.b": v -> {"a": {"b": v}}, so `service.name` from a resource and a
    record attribute `service.name` land in one field; a scalar and an object at the same
    path keep the object and move the scalar to `<path>.value` (as the Collector does)."""
    out: dict[str, Any] = {}
    for key, val in doc.items():
        if key == "@timestamp" or "." not in key:
            _merge(out, key, val)
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {} if nxt is None else {"value": nxt}
                node[part] = nxt
            node = nxt
        _merge(node, parts[-1], val)
    return out


def _merge(node: dict[str, Any], key: str, val: Any) -> None:
    existing = node.get(key)
    if isinstance(existing, dict) and not isinstance(val, dict):
        existing["value"] = val
    elif isinstance(existing, dict) and isinstance(val, dict):
        existing.update(val)
    else:
        node[key] = val
