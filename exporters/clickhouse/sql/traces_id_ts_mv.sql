-- <traces>_trace_id_ts_mv feeds <traces>_trace_id_ts (traces_id_ts_lookup_mv.sql, v0.165.0).
CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.${view} ${cluster}
TO ${database}.${target}
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM ${database}.${source}
WHERE TraceId != ''
GROUP BY TraceId
