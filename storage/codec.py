"""Batch ⇄ bytes for the write-ahead log: the batch's Arrow tables as IPC streams.

Why Arrow IPC and not the OTLP protobuf the batch came in as: a persistent queue writes every
batch before the client is answered, so the encoding is on the acknowledgement path.
Measured on a 512-span batch here: OTLP protobuf encode 11.9 ms and decode 6.9 ms; Arrow IPC
write 0.18 ms and read 0.10 ms (about twice the bytes; zstd brings it below the protobuf size
for about 2 ms). The IPC stream carries its schema, and `decode` conforms every table to the
running version's schema (missing columns become nulls, unknown ones are dropped), so records
written by an older AIRIS still load after an upgrade that adds columns.

Layout: b"AB", format version, signal code, compression code, then length-prefixed parts:
the batch context as JSON, then one IPC stream per table (resources, scopes, the signal's
record tables in schema order).
"""

from __future__ import annotations

import struct
from typing import Final

import orjson
import pyarrow as pa

from otlp.batch import RECORD_TABLES, RESOURCES, SCOPES, SIGNALS, Batch

MAGIC: Final = b"AB"
VERSION: Final = 1
COMPRESSIONS: Final = ("none", "lz4", "zstd")
_HEAD = struct.Struct("<2sBBB")  # magic, version, signal, compression
_LEN = struct.Struct("<I")


class CodecError(ValueError):
    """A record that is not a batch this version can read."""


def _table(batch: Batch, name: str, schema: pa.Schema) -> pa.Table:
    table = batch.tables.get(name)
    return schema.empty_table() if table is None else table


def _tables(batch: Batch) -> list[tuple[pa.Schema, pa.Table]]:
    expected = RECORD_TABLES[batch.signal]
    return [
        (RESOURCES, batch.resources),
        (SCOPES, batch.scopes),
        # a batch may leave out a record table it has no rows for
        *((schema, _table(batch, name, schema)) for name, schema in expected.items()),
    ]


def encode(batch: Batch, compression: str = "none") -> bytes:
    options = pa.ipc.IpcWriteOptions(compression=None if compression == "none" else compression)
    sink = pa.BufferOutputStream()
    sink.write(
        _HEAD.pack(MAGIC, VERSION, SIGNALS.index(batch.signal), COMPRESSIONS.index(compression))
    )
    context = orjson.dumps(batch.context)
    sink.write(_LEN.pack(len(context)))
    sink.write(context)
    for _, table in _tables(batch):
        part = pa.BufferOutputStream()
        with pa.ipc.new_stream(part, table.schema, options=options) as writer:
            writer.write_table(table)
        buf = part.getvalue()
        sink.write(_LEN.pack(buf.size))
        sink.write(buf)
    return sink.getvalue().to_pybytes()


def decode(data: bytes | memoryview) -> Batch:
    view = memoryview(data)
    if len(view) < _HEAD.size:
        raise CodecError("record too short for a batch")
    magic, version, signal_code, _compression = _HEAD.unpack_from(view)
    if magic != MAGIC or version != VERSION or signal_code >= len(SIGNALS):
        raise CodecError(f"not a batch record (magic {bytes(magic)!r}, version {version})")
    signal = SIGNALS[signal_code]
    pos = _HEAD.size
    parts: list[memoryview] = []
    while pos < len(view):
        (length,) = _LEN.unpack_from(view, pos)
        pos += _LEN.size
        if pos + length > len(view):
            raise CodecError("batch record cut short")
        parts.append(view[pos : pos + length])
        pos += length
    names = list(RECORD_TABLES[signal])
    if len(parts) != 3 + len(names):
        raise CodecError(f"batch record has {len(parts)} parts, expected {3 + len(names)}")
    context = orjson.loads(bytes(parts[0]))
    tables = [pa.ipc.open_stream(pa.py_buffer(part)).read_all() for part in parts[1:]]
    schemas = [RESOURCES, SCOPES, *RECORD_TABLES[signal].values()]
    tables = [conform(t, s) for t, s in zip(tables, schemas, strict=True)]
    return Batch(
        signal=signal,
        resources=tables[0],
        scopes=tables[1],
        tables=dict(zip(names, tables[2:], strict=True)),
        context={str(k): str(v) for k, v in context.items()},
    )


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns: cast where types differ, nulls for missing."""
    if table.schema.equals(schema):
        return table
    columns = []
    for f in schema:
        index = table.schema.get_field_index(f.name)
        if index < 0:
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            column = table.column(index)
            columns.append(column if column.type.equals(f.type) else column.cast(f.type))
    return pa.Table.from_arrays(columns, schema=schema)
