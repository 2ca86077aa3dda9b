-- AIRIS addition (not in the contrib exporter): the seed design's per-minute metric rollup.
-- One row per (service, metric, type, attribute set, minute) after merges; read it with
--   SELECT ..., sum(Count) AS n, sum(Sum) / sum(Count) AS avg, min(Min), max(Max)
--   FROM <rollup> GROUP BY ...
-- because rows of one key may sit in parts that are not merged yet.
-- The attribute set is in the sorting key only by hash (a Map is not sortable), so the
-- Attributes column itself carries no aggregate: merged rows share it.
CREATE TABLE IF NOT EXISTS ${database}.${table} ${cluster} (
    ServiceName LowCardinality(String) CODEC(ZSTD(3)),
    MetricName LowCardinality(String) CODEC(ZSTD(3)),
    MetricType LowCardinality(String) CODEC(ZSTD(3)),
    MetricUnit LowCardinality(String) CODEC(ZSTD(3)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    AttributesHash UInt64 CODEC(ZSTD(3)),
    Minute DateTime CODEC(Delta, ZSTD(3)),
    Count SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(3)),
    Sum SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(3)),
    Min SimpleAggregateFunction(min, Float64) CODEC(ZSTD(3)),
    Max SimpleAggregateFunction(max, Float64) CODEC(ZSTD(3)),
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ${engine}
PARTITION BY toDate(Minute)
ORDER BY (ServiceName, MetricName, MetricType, Minute, AttributesHash)
${ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
