"""`elasticsearch` exporter: the OTel Collector contrib elasticsearchexporter's config and
document shapes, bulk indexing into Elasticsearch 7.17+/8/9 or OpenSearch 1/2/3."""

from __future__ import annotations

from exporters.elasticsearch.config import ElasticsearchConfig
from exporters.elasticsearch.exporter import ElasticsearchExporter
from otlp.component import EXPORTER, Factory

factory = Factory(
    type="elasticsearch",
    kind=EXPORTER,
    config_model=ElasticsearchConfig,
    create=ElasticsearchExporter,
    description="Elasticsearch / OpenSearch bulk indexing (otel, ecs, raw, none mappings)",
)

__all__ = ["ElasticsearchConfig", "ElasticsearchExporter", "factory"]
