"""The columnar batch: one decoded OTLP request (or several, concatenated) as Arrow tables.

Shape (see ARCHITECTURE.md, "The columnar batch"):

* ``resources``: one row per ResourceSpans/ResourceLogs/ResourceMetrics.
* ``scopes``: one row per Scope* message, ``resource_index`` pointing into ``resources``.
* record tables, named per signal (``RECORD_TABLES``), each row carrying ``scope_index``
  (and for metric data points ``metric_index`` into the ``metrics`` table).

Column names follow the OTLP protobuf field names so that encode(decode(x)) == x; exporters
derive their own shapes (ClickHouse columns, Jaeger spans, ES documents) from these.

Attribute values keep their OTLP type in ``VALUE``: ``type`` says which field holds it.
Arrays and key-value lists keep the serialized ``AnyValue`` in ``bytes`` (faithful) and a
JSON rendering in ``str`` (what ClickHouse maps and search documents want).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa

# AnyValue kinds, stored in VALUE.type. 0 means "no value set" (an empty AnyValue).
V_EMPTY: Final = 0
V_STRING: Final = 1
V_BOOL: Final = 2
V_INT: Final = 3
V_DOUBLE: Final = 4
V_ARRAY: Final = 5
V_KVLIST: Final = 6
V_BYTES: Final = 7

VALUE_FIELDS = [
    pa.field("type", pa.int8(), nullable=False),
    pa.field("str", pa.string()),
    pa.field("int", pa.int64()),
    pa.field("double", pa.float64()),
    pa.field("bool", pa.bool_()),
    pa.field("bytes", pa.binary()),
]
VALUE = pa.struct(VALUE_FIELDS)
ATTRIBUTE = pa.struct([pa.field("key", pa.string(), nullable=False), *VALUE_FIELDS])
ATTRIBUTES = pa.list_(pa.field("item", ATTRIBUTE, nullable=False))

TRACE_ID = pa.binary(16)
SPAN_ID = pa.binary(8)

ENTITY_REF = pa.struct(
    [
        pa.field("schema_url", pa.string()),
        pa.field("type", pa.string()),
        pa.field("id_keys", pa.list_(pa.string())),
        pa.field("description_keys", pa.list_(pa.string())),
    ]
)

RESOURCES = pa.schema(
    [
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("schema_url", pa.string()),
        # derived: resource.attributes["service.name"] as a string ("" when absent)
        pa.field("service_name", pa.string()),
        # Resource.entity_refs (OTLP 1.8+, development status), kept for faithful forwarding
        pa.field("entity_refs", pa.list_(pa.field("item", ENTITY_REF, nullable=False))),
    ]
)

SCOPES = pa.schema(
    [
        pa.field("resource_index", pa.int32(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("version", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("schema_url", pa.string()),
    ]
)

EVENT = pa.struct(
    [
        pa.field("time_unix_nano", pa.uint64()),
        pa.field("name", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
    ]
)

LINK = pa.struct(
    [
        pa.field("trace_id", TRACE_ID),
        pa.field("span_id", SPAN_ID),
        pa.field("trace_state", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("flags", pa.uint32()),
    ]
)

# Empty ids (allowed by the protobuf, e.g. a root span's parent) are null.
SPANS = pa.schema(
    [
        pa.field("scope_index", pa.int32(), nullable=False),
        pa.field("trace_id", TRACE_ID),
        pa.field("span_id", SPAN_ID),
        pa.field("trace_state", pa.string()),
        pa.field("parent_span_id", SPAN_ID),
        pa.field("flags", pa.uint32()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.int8()),
        pa.field("start_time_unix_nano", pa.uint64()),
        pa.field("end_time_unix_nano", pa.uint64()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("events", pa.list_(pa.field("item", EVENT, nullable=False))),
        pa.field("dropped_events_count", pa.uint32()),
        pa.field("links", pa.list_(pa.field("item", LINK, nullable=False))),
        pa.field("dropped_links_count", pa.uint32()),
        pa.field("status_message", pa.string()),
        pa.field("status_code", pa.int8()),
    ]
)

LOGS = pa.schema(
    [
        pa.field("scope_index", pa.int32(), nullable=False),
        pa.field("time_unix_nano", pa.uint64()),
        pa.field("observed_time_unix_nano", pa.uint64()),
        pa.field("severity_number", pa.int8()),
        pa.field("severity_text", pa.string()),
        pa.field("body", VALUE),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("flags", pa.uint32()),
        pa.field("trace_id", TRACE_ID),
        pa.field("span_id", SPAN_ID),
        pa.field("event_name", pa.string()),
    ]
)

# Metric.data oneof, stored in METRICS.type
M_EMPTY: Final = 0
M_GAUGE: Final = 1
M_SUM: Final = 2
M_HISTOGRAM: Final = 3
M_EXPONENTIAL_HISTOGRAM: Final = 4
M_SUMMARY: Final = 5
METRIC_TYPE_TABLE: Final = {
    M_GAUGE: "gauge",
    M_SUM: "sum",
    M_HISTOGRAM: "histogram",
    M_EXPONENTIAL_HISTOGRAM: "exponential_histogram",
    M_SUMMARY: "summary",
}

METRICS = pa.schema(
    [
        pa.field("scope_index", pa.int32(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("description", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("type", pa.int8(), nullable=False),
        # sum, histogram, exponential_histogram only (0 = unspecified)
        pa.field("aggregation_temporality", pa.int8()),
        # sum only
        pa.field("is_monotonic", pa.bool_()),
        pa.field("metadata", ATTRIBUTES),
    ]
)

# NumberDataPoint.value / Exemplar.value oneof: 0 none, 1 as_double, 2 as_int
N_NONE: Final = 0
N_DOUBLE: Final = 1
N_INT: Final = 2

EXEMPLAR = pa.struct(
    [
        pa.field("filtered_attributes", ATTRIBUTES),
        pa.field("time_unix_nano", pa.uint64()),
        pa.field("value_type", pa.int8()),
        pa.field("as_double", pa.float64()),
        pa.field("as_int", pa.int64()),
        pa.field("span_id", SPAN_ID),
        pa.field("trace_id", TRACE_ID),
    ]
)
EXEMPLARS = pa.list_(pa.field("item", EXEMPLAR, nullable=False))

_POINT_COMMON = [
    pa.field("metric_index", pa.int32(), nullable=False),
    pa.field("attributes", ATTRIBUTES),
    pa.field("start_time_unix_nano", pa.uint64()),
    pa.field("time_unix_nano", pa.uint64()),
    pa.field("flags", pa.uint32()),
    pa.field("exemplars", EXEMPLARS),
]

NUMBER_POINTS = pa.schema(
    [
        *_POINT_COMMON,
        pa.field("value_type", pa.int8()),
        pa.field("as_double", pa.float64()),
        pa.field("as_int", pa.int64()),
    ]
)

# optional fields (sum, min, max) are null when not set
HISTOGRAM_POINTS = pa.schema(
    [
        *_POINT_COMMON,
        pa.field("count", pa.uint64()),
        pa.field("sum", pa.float64()),
        pa.field("bucket_counts", pa.list_(pa.uint64())),
        pa.field("explicit_bounds", pa.list_(pa.float64())),
        pa.field("min", pa.float64()),
        pa.field("max", pa.float64()),
    ]
)

EXPONENTIAL_HISTOGRAM_POINTS = pa.schema(
    [
        *_POINT_COMMON,
        pa.field("count", pa.uint64()),
        pa.field("sum", pa.float64()),
        pa.field("scale", pa.int32()),
        pa.field("zero_count", pa.uint64()),
        pa.field("positive_offset", pa.int32()),
        pa.field("positive_bucket_counts", pa.list_(pa.uint64())),
        pa.field("negative_offset", pa.int32()),
        pa.field("negative_bucket_counts", pa.list_(pa.uint64())),
        pa.field("min", pa.float64()),
        pa.field("max", pa.float64()),
        pa.field("zero_threshold", pa.float64()),
    ]
)

SUMMARY_POINTS = pa.schema(
    [
        *_POINT_COMMON,
        pa.field("count", pa.uint64()),
        pa.field("sum", pa.float64()),
        pa.field(
            "quantile_values",
            pa.list_(
                pa.field(
                    "item",
                    pa.struct(
                        [pa.field("quantile", pa.float64()), pa.field("value", pa.float64())]
                    ),
                    nullable=False,
                )
            ),
        ),
    ]
)

TRACES: Final = "traces"
METRICS_SIGNAL: Final = "metrics"
LOGS_SIGNAL: Final = "logs"
SIGNALS: Final = (TRACES, METRICS_SIGNAL, LOGS_SIGNAL)

# record tables per signal, with their schemas; the first one is what items are counted in
# for traces and logs; for metrics, items are data points (the Collector's metric_points).
RECORD_TABLES: Final[dict[str, dict[str, pa.Schema]]] = {
    TRACES: {"spans": SPANS},
    LOGS_SIGNAL: {"logs": LOGS},
    METRICS_SIGNAL: {
        "metrics": METRICS,
        "gauge": NUMBER_POINTS,
        "sum": NUMBER_POINTS,
        "histogram": HISTOGRAM_POINTS,
        "exponential_histogram": EXPONENTIAL_HISTOGRAM_POINTS,
        "summary": SUMMARY_POINTS,
    },
}
POINT_TABLES: Final = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


@dataclass(slots=True)
class Batch:
    """Telemetry of one signal in columnar form, as it travels through a pipeline."""

    signal: str
    resources: pa.Table
    scopes: pa.Table
    tables: dict[str, pa.Table]
    # request metadata travelling with the data (e.g. the authenticated tenant, client address)
    context: dict[str, str] = field(default_factory=dict)

    def item_count(self) -> int:
        if self.signal == METRICS_SIGNAL:
            return sum(self.tables[name].num_rows for name in POINT_TABLES)
        return self.tables["spans" if self.signal == TRACES else "logs"].num_rows

    def nbytes(self) -> int:
        return (
            self.resources.nbytes
            + self.scopes.nbytes
            + sum(table.nbytes for table in self.tables.values())
        )

    @property
    def records(self) -> pa.Table:
        """The main record table: spans or log records (metrics: the metrics table)."""
        return self.tables[next(iter(RECORD_TABLES[self.signal]))]


def empty_batch(signal: str) -> Batch:
    return Batch(
        signal=signal,
        resources=RESOURCES.empty_table(),
        scopes=SCOPES.empty_table(),
        tables={name: schema.empty_table() for name, schema in RECORD_TABLES[signal].items()},
    )
