"""`clickhouse` exporter: the OTel Collector contrib clickhouseexporter's schema and config,
writing Arrow batches to an embedded chDB store (`chdb://PATH`) or a ClickHouse server."""

from __future__ import annotations

from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.exporter import ClickHouseExporter
from otlp.component import EXPORTER, Factory

factory = Factory(
    type="clickhouse",
    kind=EXPORTER,
    config_model=ClickHouseConfig,
    create=ClickHouseExporter,
    description="ClickHouse (embedded chDB or server) with the contrib exporter's schema",
)

__all__ = ["ClickHouseConfig", "ClickHouseExporter", "factory"]
