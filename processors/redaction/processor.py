"""redaction: removes attributes whose keys are not allowed and masks (or hashes) sensitive
values, in resource, scope, span, span event, span link, log record and metric data point
attributes and in log bodies, following the Collector's redactionprocessor. (The Collector
leaves span links alone; AIRIS treats their attributes like span event attributes.) No item
is ever dropped; resources and scopes stay as they are.

All attribute columns of a batch go through the value rules together, so each pattern runs
(and is compiled: Arrow compiles a regex per call) once per batch, not once per column."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import LOGS_SIGNAL, METRICS_SIGNAL, POINT_TABLES, TRACES, Batch
from otlp.columns import as_array, list_offsets
from otlp.ottl.contexts import refresh_service_name
from otlp.ottl.runtime import CountingProcessor
from otlp.telemetry import Telemetry
from processors.redaction.attributes import KeyRules, redact_columns
from processors.redaction.body import redact_bodies
from processors.redaction.config import RedactionConfig
from processors.redaction.values import ValueRules

log = logging.getLogger("airis.processor.redaction")


def _with_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    position = table.schema.get_field_index(name)
    field = table.schema.field(position)
    if column.type != field.type:
        column = column.cast(field.type)
    return table.set_column(position, field, column)


class _Nested:
    """The structs of a list column (span events or links) as a table, and the way back."""

    def __init__(self, table: pa.Table, name: str) -> None:
        self.name = name
        self.column = as_array(table.column(name))
        self.offsets = list_offsets(self.column)
        inner = pc.list_flatten(self.column)
        self.structs = pa.Table.from_struct_array(inner) if len(inner) else None
        self.list_type = table.schema.field(name).type
        self.attributes: pa.Array | None = None

    def put(self, attributes: pa.Array) -> None:
        self.attributes = attributes

    def rebuild(self, table: pa.Table) -> pa.Table:
        assert self.structs is not None and self.attributes is not None
        structs = _with_column(self.structs, "attributes", self.attributes)
        rebuilt = pa.ListArray.from_arrays(
            self.offsets, structs.to_struct_array().combine_chunks(), type=self.list_type
        )
        if self.column.null_count:
            rebuilt = pc.if_else(self.column.is_null(), pa.scalar(None, rebuilt.type), rebuilt)
        return _with_column(table, self.name, rebuilt)


class RedactionProcessor(CountingProcessor):
    def __init__(self, component_id: str, config: RedactionConfig, telemetry: Telemetry) -> None:
        super().__init__(component_id, telemetry, log)
        self.config = config
        self.keys = KeyRules(config)
        self.values = ValueRules(
            config.blocked_values,
            config.blocked_value_sets,
            config.allowed_values,
            config.hash_function,
            config.hmac_key,
            config.masking_string,
        )

    def process(self, batch: Batch) -> Batch:
        tables = dict(batch.tables)
        tables["_resources"] = batch.resources
        tables["_scopes"] = batch.scopes
        # (column, how to put the redacted column back) for every attribute column
        jobs: list[tuple[pa.Array, Callable[[pa.Array], None]]] = []

        def attributes_of(name: str) -> None:
            table = tables[name]
            if table.num_rows:

                def put(column: pa.Array, name: str = name) -> None:
                    tables[name] = _with_column(tables[name], "attributes", column)

                jobs.append((table.column("attributes"), put))

        attributes_of("_resources")
        attributes_of("_scopes")
        nested: list[_Nested] = []
        if batch.signal == TRACES:
            attributes_of("spans")
            for name in ("events", "links"):
                part = _Nested(tables["spans"], name)
                if part.structs is not None:
                    nested.append(part)
                    jobs.append((part.structs.column("attributes"), part.put))
        elif batch.signal == LOGS_SIGNAL:
            attributes_of("logs")
        elif batch.signal == METRICS_SIGNAL:
            for name in POINT_TABLES:
                attributes_of(name)
        results, masked = redact_columns([c for c, _ in jobs], self.keys, self.values, self.config)
        for (_, put), result in zip(jobs, results, strict=True):
            if result is not None:
                put(result)
        for part in nested:
            if part.attributes is not None:
                tables["spans"] = part.rebuild(tables["spans"])
        if batch.signal == LOGS_SIGNAL and tables["logs"].num_rows:
            logs = tables["logs"]
            body, attributes, body_masked = redact_bodies(
                logs.column("body"), as_array(logs.column("attributes")), self.keys, self.values
            )
            masked += body_masked
            tables["logs"] = _with_column(
                _with_column(logs, "body", body), "attributes", attributes
            )
        if masked and log.isEnabledFor(logging.DEBUG):
            log.debug("masked %d values", masked)
        resources = tables.pop("_resources")
        if resources is not batch.resources:
            # service_name is derived from resource attributes: kept in step with them
            resources = refresh_service_name(resources)
        scopes = tables.pop("_scopes")
        return Batch(batch.signal, resources, scopes, tables, dict(batch.context))
