-- AIRIS addition (not in the contrib exporter): the seed design's per-minute metric rollup.
-- One row per (service, metric, type, minute, unit, attribute set) once parts are merged;
-- until then a key may have several rows, so read it aggregated:
--   SELECT ServiceName, MetricName, Minute, Attributes, sum(Count) AS count,
--          sum(Sum) / sum(Count) AS avg, min(Min) AS min, max(Max) AS max
--   FROM <rollup> GROUP BY ServiceName, MetricName, Minute, Attributes
-- The attribute map is part of the sorting key (so merges never mix label sets) but not
-- of the primary index, which stays small.
CREATE TABLE IF NOT EXISTS ${database}.${table} ${cluster} (
    ServiceName LowCardinality(String) CODEC(ZSTD(3)),
    MetricName LowCardinality(String) CODEC(ZSTD(3)),
    MetricType LowCardinality(String) CODEC(ZSTD(3)),
    MetricUnit LowCardinality(String) CODEC(ZSTD(3)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    Minute DateTime CODEC(Delta, ZSTD(3)),
    Count SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(3)),
    Sum SimpleAggregateFunction(sum, Float64) CODEC(ZSTD(3)),
    Min SimpleAggregateFunction(min, Float64) CODEC(ZSTD(3)),
    Max SimpleAggregateFunction(max, Float64) CODEC(ZSTD(3)),
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ${engine}
PARTITION BY toDate(Minute)
PRIMARY KEY (ServiceName, MetricName, MetricType, Minute)
ORDER BY (ServiceName, MetricName, MetricType, Minute, MetricUnit, Attributes)
${ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
