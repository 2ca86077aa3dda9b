"""Alert transitions as OTLP log records, so alert history lands wherever the logs
pipeline exports (ClickHouse, Elasticsearch, ...) like any other log.

One record per transition: body "<rule name> <previous> -> <current>", severity from the
rule, attributes `alert.rule_id`, `alert.rule_name`, `alert.severity`, `alert.state`,
`alert.previous_state`, `alert.fingerprint`, `alert.value` and the group labels (prefixed
`alert.label.`), under a resource with `service.name` = `airis-rules` and the scope
`airis.processor.rules`; `event_name` is `alert.transition`."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from otlp.batch import (
    LOGS,
    LOGS_SIGNAL,
    RESOURCES,
    SCOPES,
    V_DOUBLE,
    V_STRING,
    Batch,
)
from processors.rules.lifecycle import FIRING, RESOLVED, Transition

SERVICE_NAME = "airis-rules"
SCOPE_NAME = "airis.processor.rules"
_SEVERITY = {
    "low": (9, "INFO"),
    "medium": (13, "WARN"),
    "high": (17, "ERROR"),
    "critical": (21, "FATAL"),
}


def _s(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "type": V_STRING, "str": value}


def _d(key: str, value: float) -> dict[str, Any]:
    return {"key": key, "type": V_DOUBLE, "double": float(value)}


def transitions_batch(transitions: list[Transition]) -> Batch:
    resources = pa.Table.from_pylist(
        [
            {
                "attributes": [_s("service.name", SERVICE_NAME)],
                "dropped_attributes_count": 0,
                "schema_url": "",
                "service_name": SERVICE_NAME,
                "entity_refs": [],
            }
        ],
        schema=RESOURCES,
    )
    scopes = pa.Table.from_pylist(
        [
            {
                "resource_index": 0,
                "name": SCOPE_NAME,
                "version": "",
                "attributes": [],
                "dropped_attributes_count": 0,
                "schema_url": "",
            }
        ],
        schema=SCOPES,
    )
    rows = []
    for t in transitions:
        rule, inst = t.rule, t.instance
        number, text = _SEVERITY[rule.severity]
        if t.current == RESOLVED:
            number, text = 9, "INFO"
        elif t.current != FIRING:
            number, text = 5, "DEBUG"
        attributes = [
            _s("alert.rule_id", rule.id),
            _s("alert.rule_name", rule.display_name),
            _s("alert.severity", rule.severity),
            _s("alert.state", t.current),
            _s("alert.previous_state", t.previous),
            _s("alert.fingerprint", inst.fingerprint),
        ]
        if inst.value is not None:
            attributes.append(_d("alert.value", inst.value))
        attributes += [_s(f"alert.label.{k}", v) for k, v in {**rule.labels, **inst.labels}.items()]
        nanos = int(t.at * 1e9)
        rows.append(
            {
                "scope_index": 0,
                "time_unix_nano": nanos,
                "observed_time_unix_nano": nanos,
                "severity_number": number,
                "severity_text": text,
                "body": {
                    "type": V_STRING,
                    "str": f"{rule.display_name} {t.previous} -> {t.current}",
                },
                "attributes": attributes,
                "dropped_attributes_count": 0,
                "flags": 0,
                "trace_id": None,
                "span_id": None,
                "event_name": "alert.transition",
            }
        )
    logs = pa.Table.from_pylist(rows, schema=LOGS)
    return Batch(signal=LOGS_SIGNAL, resources=resources, scopes=scopes, tables={"logs": logs})
