"""Index templates installed at start (`templates.create: true`), with the seed design's
settings: keyword dynamic templates for attributes, the log body as text with a keyword
sub-field, 5 s refresh, best_compression, and the Korean `nori` analyzer for text when the
cluster has the analysis-nori plugin (detected from `_nodes/plugins`, else the standard
analyzer).

One component template holds the settings and mappings shared by every signal; one
composable index template per signal and index pattern composes it. Both APIs exist in
Elasticsearch 7.8+ and OpenSearch 1+. Templates are plain-index templates (no
`data_stream`), so they work the same on both products; `create` bulk actions index into
them whatever the index name.
"""

from __future__ import annotations

from typing import Any, Final

from exporters.elasticsearch.config import ElasticsearchConfig, TemplatesSettings

COMPONENT: Final = "airis-otel-settings"
NORI_PLUGIN: Final = "analysis-nori"
ANALYZER_NAME: Final = "airis_text"

_KEYWORD: Final = {"type": "keyword", "ignore_above": 1024}


def nori_available(nodes_plugins: dict[str, Any]) -> bool:
    """True when every node of the cluster lists the analysis-nori plugin (an analyzer the
    index names must exist on each node that may hold its shards)."""
    nodes = (nodes_plugins or {}).get("nodes") or {}
    if not nodes:
        return False
    return all(
        any(p.get("name") == NORI_PLUGIN for p in node.get("plugins") or [])
        for node in nodes.values()
    )


def analyzer_type(settings: TemplatesSettings, has_nori: bool) -> str:
    if settings.analyzer != "auto":
        return settings.analyzer
    return "nori" if has_nori else "standard"


def _text(analyzer: str) -> dict[str, Any]:
    return {
        "type": "text",
        "analyzer": analyzer,
        "fields": {"keyword": {"type": "keyword", "ignore_above": 8191}},
    }


def component_template(settings: TemplatesSettings, analyzer: str) -> dict[str, Any]:
    index: dict[str, Any] = {
        "refresh_interval": settings.refresh_interval,
        "codec": settings.codec,
        "analysis": {"analyzer": {ANALYZER_NAME: {"type": analyzer}}},
    }
    if settings.number_of_shards is not None:
        index["number_of_shards"] = settings.number_of_shards
    if settings.number_of_replicas is not None:
        index["number_of_replicas"] = settings.number_of_replicas
    text = _text(ANALYZER_NAME)
    date = {"type": "date_nanos", "format": "strict_date_optional_time_nanos||epoch_millis"}
    dynamic = [
        # attribute strings are exact values (service names, ids, routes): keyword
        {"attribute_strings": {"match_mapping_type": "string", "mapping": _KEYWORD}},
    ]
    properties: dict[str, Any] = {
        "@timestamp": date,
        "observed_timestamp": date,
        "start_timestamp": date,
        # otel mode
        "body": {"properties": {"text": text, "structured": {"type": "object"}}},
        "trace_id": {"type": "keyword"},
        "span_id": {"type": "keyword"},
        "parent_span_id": {"type": "keyword"},
        "severity_text": {"type": "keyword"},
        "severity_number": {"type": "byte"},
        "event_name": {"type": "keyword"},
        "name": _text(ANALYZER_NAME),
        "duration": {"type": "long"},
        "kind": {"type": "keyword"},
        "data_stream": {
            "properties": {
                "type": {"type": "keyword"},
                "dataset": {"type": "keyword"},
                "namespace": {"type": "keyword"},
            }
        },
        # ecs mode
        "message": text,
        # none / raw modes
        "Body": text,
        "TraceId": {"type": "keyword"},
        "SpanId": {"type": "keyword"},
        "EndTimestamp": date,
    }
    return {
        "template": {
            "settings": {"index": index},
            "mappings": {"dynamic_templates": dynamic, "properties": properties},
        },
        "_meta": {"managed_by": "airis", "analyzer": analyzer},
    }


def index_patterns(config: ElasticsearchConfig, signal: str) -> list[str]:
    static = getattr(config, f"{signal}_index")
    if static:
        return [static, f"{static}-*"]
    return [f"{signal}-*"]


def index_templates(config: ElasticsearchConfig, signals: set[str]) -> dict[str, dict[str, Any]]:
    """name -> body of the composable index templates for the signals in use (span events
    go to the logs pattern, so traces also install the logs template)."""
    wanted = set(signals)
    if "traces" in wanted and config.mapping.mode == "otel" and not config.traces_index:
        wanted.add("logs")
    out: dict[str, dict[str, Any]] = {}
    for signal in sorted(wanted):
        out[f"airis-otel-{signal}"] = {
            "index_patterns": index_patterns(config, signal),
            "composed_of": [COMPONENT],
            "priority": config.templates.priority,
            "_meta": {"managed_by": "airis"},
        }
    return out
