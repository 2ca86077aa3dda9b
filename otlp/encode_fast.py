"""The compiled encoder's glue: a ``Batch``'s Arrow tables handed to ``otlp._encode``.

The C extension writes the serialized Export*ServiceRequest straight from the Arrow buffers
(~1 us per span instead of ~18 us through upb messages). It reads the tables through the
Arrow C data interface, so it depends on their exact layout: a table whose schema differs
from otlp/batch.py (a processor that built a column with another type, say) is not handed to
it, and ``encode_protobuf`` returns None; so does a batch the C code declines (an index out
of range, data points under a metric of another type). The caller, ``otlp.encode``, then
uses the Python encoder, which is the specification the compiled one is tested against.
"""

from __future__ import annotations

import os
from typing import Any, Final

import pyarrow as pa

from otlp.batch import (
    LOGS_SIGNAL,
    METRICS_SIGNAL,
    POINT_TABLES,
    RECORD_TABLES,
    RESOURCES,
    SCOPES,
    TRACES,
    Batch,
)

try:
    from otlp import _encode
except ImportError:  # not built (e.g. a source checkout without a compiler): Python encoder
    _encode = None
# AIRIS_ENCODER=python: the Python encoder only (A/B measurements, ruling the C code out)
if os.environ.get("AIRIS_ENCODER") == "python":
    _encode = None

# the decoders may omit resources.entity_refs (a later addition); the C code checks for it
_RESOURCES_WITHOUT_REFS: Final = pa.schema(list(RESOURCES)[:4])


def available() -> bool:
    return _encode is not None


def _layout(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in schema]


_RECORD_SCHEMAS: Final = [s for tables in RECORD_TABLES.values() for s in tables.values()]
_EXPECTED: Final = {
    id(schema): _layout(schema)
    for schema in (RESOURCES, _RESOURCES_WITHOUT_REFS, SCOPES, *_RECORD_SCHEMAS)
}


def _capsule(table: pa.Table, *schemas: pa.Schema) -> Any | None:
    """The table as one contiguous record batch's "arrow_array" capsule, or None when its
    layout is not one of ``schemas`` (names and types; nullability flags don't matter)."""
    schema = table.schema
    if not any(schema.equals(expected) for expected in schemas):
        layout = _layout(schema)
        if not any(layout == _EXPECTED[id(expected)] for expected in schemas):
            return None
    batches = table.to_batches()
    if len(batches) != 1:
        # several chunks (a concatenated batch): one copy makes every column contiguous
        batches = table.combine_chunks().to_batches()
    if len(batches) == 1:
        record_batch = batches[0]
    else:  # no rows
        record_batch = pa.RecordBatch.from_arrays(
            [pa.array([], field.type) for field in schema], schema=schema
        )
    # the exported ArrowArray keeps its buffers alive until the capsule is released
    return record_batch.__arrow_c_array__()[1]


def encode_protobuf(batch: Batch) -> bytes | None:
    """The batch as a serialized Export*ServiceRequest, or None to use the Python encoder."""
    if _encode is None:
        return None
    resources = _capsule(batch.resources, RESOURCES, _RESOURCES_WITHOUT_REFS)
    scopes = _capsule(batch.scopes, SCOPES)
    if resources is None or scopes is None:
        return None
    schemas = RECORD_TABLES[batch.signal]
    names = ["metrics", *POINT_TABLES] if batch.signal == METRICS_SIGNAL else list(schemas)
    tables = [_capsule(batch.tables[name], schemas[name]) for name in names]
    if any(table is None for table in tables):
        return None
    encoder = {
        TRACES: _encode.encode_traces,
        LOGS_SIGNAL: _encode.encode_logs,
        METRICS_SIGNAL: _encode.encode_metrics,
    }[batch.signal]
    try:
        return encoder(resources, scopes, *tables)
    except ValueError:
        # a batch the C code leaves to the Python encoder's semantics (see otlp/_encode.c)
        return None
