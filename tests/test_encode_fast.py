"""The compiled encoder (otlp/_encode.c via otlp.encode_fast) against the Python encoder.

The Python encoder (``encode_protobuf_python``) is the specification: the compiled one must
produce the same bytes for every batch it accepts, on realistic payloads, on sliced and
concatenated (chunked) tables, on generated canonical requests, and on generated raw batches
holding what decoding never produces (nulls everywhere, NaN and -0.0, unknown enum values,
negative enums, V_* types that don't match the filled fields).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from otlp_samples import REQUESTS, SAMPLES, assert_batches_equal
from test_roundtrip import SETTINGS, _small

from benchmarks.payloads import make_templates
from otlp import _encode, batch_ops, encode_fast
from otlp.batch import (
    METRICS,
    METRICS_SIGNAL,
    POINT_TABLES,
    RECORD_TABLES,
    RESOURCES,
    SCOPES,
    Batch,
)
from otlp.decode import decode_protobuf
from otlp.encode import encode_protobuf, encode_protobuf_python

SIGNALS = ["traces", "logs", "metrics"]


def _assert_same(batch: Batch) -> bytes:
    """The compiled encoder accepts the batch and writes the reference's bytes."""
    fast = encode_fast.encode_protobuf(batch)
    assert fast is not None, "the compiled encoder declined the batch"
    for threshold in (10**9, 0):
        with _small(threshold):
            reference = encode_protobuf_python(batch)
        if fast != reference:
            at = next(
                (i for i, (a, b) in enumerate(zip(fast, reference, strict=False)) if a != b),
                min(len(fast), len(reference)),
            )
            pytest.fail(
                f"differs at byte {at} (lengths {len(fast)} vs {len(reference)}):\n"
                f"fast      {fast[max(0, at - 16) : at + 16].hex()}\n"
                f"reference {reference[max(0, at - 16) : at + 16].hex()}"
            )
    return fast


def _benchmark_batch(signal: str, requests: int = 6) -> Batch:
    templates = make_templates(signal, 512)
    bodies = [templates[i % len(templates)].render(i) for i in range(requests)]
    return batch_ops.concat([decode_protobuf(signal, body) for body in bodies])


def test_extension_is_built_from_this_source() -> None:
    """The encoder silently falls back without the extension, and a stale build (edited
    _encode.c, no reinstall) would test old code: rebuild with `pip install -e .`."""
    assert encode_fast.available()
    source = Path(encode_fast.__file__).with_name("_encode.c").read_bytes()
    assert _encode.SOURCE_HASH == hashlib.sha256(source).hexdigest()[:16]


@pytest.mark.parametrize("signal", SIGNALS)
def test_benchmark_payloads(signal: str) -> None:
    batch = _benchmark_batch(signal)
    # concatenated: chunked columns (the index columns are rebuilt whole by concat)
    assert max(column.num_chunks for column in batch.records.columns) > 1
    body = _assert_same(batch)
    assert encode_protobuf(batch) == body
    assert_batches_equal(decode_protobuf(signal, body), batch)


@pytest.mark.parametrize("signal", SIGNALS)
def test_samples(signal: str) -> None:
    request = SAMPLES[signal]()
    batch = decode_protobuf(signal, request.SerializeToString())
    assert _assert_same(batch) == request.SerializeToString()


@pytest.mark.parametrize("signal", SIGNALS)
def test_split_pieces(signal: str) -> None:
    """batch_ops.split slices record tables (arrays with offsets) and takes the rest."""
    pieces = batch_ops.split(_benchmark_batch(signal, 3), 700)
    assert len(pieces) > 1
    for piece in pieces:
        _assert_same(piece)


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_sliced_tables(signal: str) -> None:
    """Slices of every table, whole and through their nested lists and structs."""
    batch = decode_protobuf(signal, SAMPLES[signal]().SerializeToString())
    doubled = batch_ops.concat([batch, batch, batch])
    name = next(iter(RECORD_TABLES[signal]))
    records = doubled.tables[name]
    for start in range(records.num_rows):
        for length in (0, 1, records.num_rows - start):
            piece = Batch(
                signal, doubled.resources, doubled.scopes, {name: records.slice(start, length)}
            )
            _assert_same(piece)
    # resources and scopes sliced too (indices stay valid: the first copy is kept)
    first = Batch(
        signal,
        doubled.resources.slice(0, batch.resources.num_rows),
        doubled.scopes.slice(0, batch.scopes.num_rows),
        {name: records.slice(0, batch.records.num_rows)},
    )
    assert _assert_same(first) == encode_protobuf_python(batch)


def test_chunked_and_empty_tables() -> None:
    batch = decode_protobuf("traces", SAMPLES["traces"]().SerializeToString())
    spans = batch.tables["spans"]
    rechunked = pa.Table.from_batches(
        [spans.slice(0, 1).to_batches()[0], spans.slice(1).to_batches()[0]]
    )
    _assert_same(Batch("traces", batch.resources, batch.scopes, {"spans": rechunked}))
    _assert_same(Batch("traces", batch.resources, batch.scopes, {"spans": spans.slice(0, 0)}))
    empty = Batch(
        "traces", RESOURCES.empty_table(), SCOPES.empty_table(), {"spans": spans.slice(0, 0)}
    )
    assert _assert_same(empty) == b""


def test_resources_without_entity_refs() -> None:
    batch = decode_protobuf("logs", SAMPLES["logs"]().SerializeToString())
    resources = batch.resources.drop_columns(["entity_refs"])
    _assert_same(Batch("logs", resources, batch.scopes, batch.tables))


def test_declined_batches_take_the_python_encoder() -> None:
    batch = decode_protobuf("traces", SAMPLES["traces"]().SerializeToString())
    # a column of another type: not handed to the C code
    spans = batch.tables["spans"]
    position = spans.schema.get_field_index("kind")
    other = spans.set_column(position, "kind", spans.column("kind").cast(pa.int32()))
    odd = Batch("traces", batch.resources, batch.scopes, {"spans": other})
    assert encode_fast.encode_protobuf(odd) is None
    assert encode_protobuf(odd) == encode_protobuf_python(odd)
    # an index outside the scopes table: the C code declines
    position = spans.schema.get_field_index("scope_index")
    bad_index = pa.array([batch.scopes.num_rows] * spans.num_rows, pa.int32())
    bad = Batch(
        "traces",
        batch.resources,
        batch.scopes,
        {"spans": spans.set_column(position, SCOPES.field(0).with_name("scope_index"), bad_index)},
    )
    assert encode_fast.encode_protobuf(bad) is None
    # metric data points in a table that disagrees with their metric's type
    metrics = decode_protobuf("metrics", SAMPLES["metrics"]().SerializeToString())
    table = metrics.tables["metrics"]
    position = table.schema.get_field_index("type")
    gauges = pa.array([1] * table.num_rows, pa.int8())
    all_gauges = table.set_column(position, METRICS.field("type"), gauges)
    retyped = dict(metrics.tables, metrics=all_gauges)
    mixed = Batch("metrics", metrics.resources, metrics.scopes, retyped)
    assert encode_fast.encode_protobuf(mixed) is None


# ---------------------------------------------------------------------------------------------
# properties


@pytest.mark.parametrize("signal", SIGNALS)
def test_canonical_requests_property(signal: str) -> None:
    """Generated OTLP requests: same bytes as the reference, and decode(encode(b)) == b."""

    @SETTINGS
    @given(st.lists(REQUESTS[signal], min_size=1, max_size=2))
    def check(requests: list[Any]) -> None:
        batch = batch_ops.concat(
            [decode_protobuf(signal, request.SerializeToString()) for request in requests]
        )
        body = _assert_same(batch)
        assert_batches_equal(decode_protobuf(signal, body), batch)
        if len(requests) == 1:
            assert body == requests[0].SerializeToString()

    check()


# Raw batches: arbitrary column contents per otlp/batch.py schema, with the index columns
# kept in range. Lists hold no null items (the Python encoder, the reference, rejects them).
_INDEX_COLUMNS = {"resource_index", "scope_index", "metric_index"}
_FLOATS = st.floats() | st.sampled_from([0.0, -0.0, float("nan"), float("-nan")])


def _values(type_: pa.DataType, nullable: bool) -> st.SearchStrategy[Any]:
    base: st.SearchStrategy[Any]
    if pa.types.is_int8(type_):
        base = st.integers(-2, 8)  # enums and kinds: unknown and negative ones too
    elif pa.types.is_int32(type_):
        base = st.integers(-(2**31), 2**31 - 1)
    elif pa.types.is_uint32(type_):
        base = st.sampled_from([0, 1, 2**32 - 1]) | st.integers(0, 2**32 - 1)
    elif pa.types.is_uint64(type_):
        base = st.sampled_from([0, 1, 2**64 - 1]) | st.integers(0, 2**64 - 1)
    elif pa.types.is_int64(type_):
        base = st.sampled_from([0, -1]) | st.integers(-(2**63), 2**63 - 1)
    elif pa.types.is_float64(type_):
        base = _FLOATS
    elif pa.types.is_boolean(type_):
        base = st.booleans()
    elif pa.types.is_string(type_):
        base = st.text(max_size=5)
    elif pa.types.is_fixed_size_binary(type_):
        base = st.binary(min_size=type_.byte_width, max_size=type_.byte_width)
    elif pa.types.is_binary(type_):
        base = st.binary(max_size=5)
    elif pa.types.is_list(type_):
        base = st.lists(_values(type_.value_type, False), max_size=2)
    elif pa.types.is_struct(type_):
        base = st.fixed_dictionaries(
            {field.name: _values(field.type, field.nullable) for field in type_}
        )
    else:
        raise AssertionError(f"no strategy for {type_}")
    return st.none() | base if nullable else base


def _rows(schema: pa.Schema) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {f.name: _values(f.type, f.nullable) for f in schema if f.name not in _INDEX_COLUMNS}
    )


def _table(
    draw: Any,
    schema: pa.Schema,
    index: str | None,
    targets: list[int],
    max_rows: int,
    **overrides: st.SearchStrategy[Any],
) -> pa.Table:
    min_rows = 1 if targets or not index else 0
    max_rows = max_rows if min_rows else 0
    rows = draw(st.lists(_rows(schema), min_size=min_rows, max_size=max_rows))
    for row in rows:
        if index:
            row[index] = draw(st.sampled_from(targets))
        for name, values in overrides.items():
            row[name] = draw(values)
    columns = {f.name: pa.array([row[f.name] for row in rows], f.type) for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


@st.composite
def raw_batches(draw: Any, signal: str) -> Batch:
    resources = _table(draw, RESOURCES, None, [], 2)
    scopes = _table(draw, SCOPES, "resource_index", list(range(resources.num_rows)), 3)
    tables = {}
    scope_rows = list(range(scopes.num_rows))
    if signal == METRICS_SIGNAL:
        # mostly known metric types, so that the point tables have owners
        types = st.integers(1, 5) | st.integers(-2, 8)
        metrics = _table(draw, METRICS, "scope_index", scope_rows, 4, type=types)
        tables["metrics"] = metrics
        kinds = metrics.column("type").to_pylist()
        for kind, name in enumerate(POINT_TABLES, start=1):
            # points go to metrics of their table's type (others are declined: tested above)
            owners = [i for i, t in enumerate(kinds) if t == kind]
            tables[name] = _table(draw, RECORD_TABLES[signal][name], "metric_index", owners, 3)
    else:
        name, schema = next(iter(RECORD_TABLES[signal].items()))
        tables[name] = _table(draw, schema, "scope_index", scope_rows, 4)
    return Batch(signal, resources, scopes, tables)


@pytest.mark.parametrize("signal", SIGNALS)
def test_raw_batches_property(signal: str) -> None:
    @SETTINGS
    @given(raw_batches(signal))
    def check(batch: Batch) -> None:
        _assert_same(batch)

    check()
