-- AIRIS addition: feeds the per-minute rollup from one metric point table (gauge or sum).
CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.${view} ${cluster}
TO ${database}.${target}
AS SELECT
    ServiceName,
    MetricName,
    '${metric_type}' AS MetricType,
    MetricUnit,
    Attributes,
    toStartOfMinute(TimeUnix) AS Minute,
    toUInt64(count()) AS Count,
    sum(Value) AS Sum,
    min(Value) AS Min,
    max(Value) AS Max
FROM ${database}.${source}
GROUP BY ServiceName, MetricName, MetricUnit, Attributes, Minute
