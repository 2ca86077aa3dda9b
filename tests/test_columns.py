"""otlp.columns: ids as hex, AnyValues as pcommon's AsString() text, times as timestamps.

Known answers for doubles come from pcommon.Value.AsString (float64AsString: ES6 number
formatting) in go.opentelemetry.io/collector/pdata v1.71.0.
"""

from __future__ import annotations

import base64
import math
import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otlp import columns
from otlp.batch import (
    ATTRIBUTES,
    SPAN_ID,
    TRACE_ID,
    V_ARRAY,
    V_BOOL,
    V_BYTES,
    V_DOUBLE,
    V_EMPTY,
    V_INT,
    V_KVLIST,
    V_STRING,
    VALUE,
)


def test_hex_ids_null_and_zero_ids_are_empty() -> None:
    ids = pa.array([bytes(range(16)), None, bytes(16), b"\xff" * 16], TRACE_ID)
    assert columns.hex_ids(ids).to_pylist() == [
        "000102030405060708090a0b0c0d0e0f",
        "",
        "",
        "f" * 32,
    ]


def test_hex_ids_empty_as_zeros_like_hex_encode() -> None:
    ids = pa.array([None, bytes(8), b"\x01" * 8], SPAN_ID)
    assert columns.hex_ids(ids, empty_as_zeros=True).to_pylist() == [
        "0" * 16,
        "0" * 16,
        "01" * 8,
    ]


def test_hex_ids_sliced_and_chunked_match_bytes_hex() -> None:
    raw = [os.urandom(16) for _ in range(1000)]
    ids = pa.array(raw, TRACE_ID)
    assert columns.hex_ids(ids.slice(7, 500)).to_pylist() == [r.hex() for r in raw[7:507]]
    chunked = pa.chunked_array([ids.slice(0, 10), ids.slice(10)])
    assert columns.hex_ids(chunked).to_pylist() == [r.hex() for r in raw]
    assert columns.hex_ids(ids.slice(0, 0)).to_pylist() == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1e20, "100000000000000000000"),
        (123456789012345678.0, "123456789012345680"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (2.5e-300, "2.5e-300"),
        (5e-324, "5e-324"),
        (0.1 + 0.2, "0.30000000000000004"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_doubles_render_as_pcommon_asstring(value: float, text: str) -> None:
    assert columns.go_float_string(value) == text
    assert columns.double_strings(pa.array([value])).to_pylist() == [text]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_vectorised_doubles_match_scalar_rendering(values: list[float]) -> None:
    rendered = columns.double_strings(pa.array(values, pa.float64())).to_pylist()
    assert rendered == [columns.go_float_string(v) for v in values]
    for value, text in zip(values, rendered, strict=True):
        if math.isfinite(value):
            assert float(text) == value  # shortest digits that round-trip


def _value(kind: int, **fields: object) -> dict[str, object]:
    return {"type": kind, **fields}


def test_value_to_string_every_kind() -> None:
    values = pa.array(
        [
            _value(V_STRING, str="hello"),
            _value(V_INT, int=-42),
            _value(V_DOUBLE, double=1e-7),
            _value(V_BOOL, bool=True),
            _value(V_BOOL, bool=False),
            _value(V_BYTES, bytes=b"\x00\xffhi"),
            _value(V_ARRAY, str='[1,"a"]', bytes=b"raw"),
            _value(V_KVLIST, str='{"a":1}', bytes=b"raw"),
            _value(V_EMPTY),
            None,
        ],
        VALUE,
    )
    assert columns.value_to_string(values).to_pylist() == [
        "hello",
        "-42",
        "1e-7",
        "true",
        "false",
        base64.b64encode(b"\x00\xffhi").decode(),
        '[1,"a"]',
        '{"a":1}',
        "",
        "",
    ]


def test_value_to_string_strings_only_and_sliced() -> None:
    values = pa.array([_value(V_STRING, str=f"s{i}") for i in range(10)], VALUE)
    assert columns.value_to_string(values.slice(3, 4)).to_pylist() == ["s3", "s4", "s5", "s6"]


def test_attributes_to_string_map_keeps_order_and_empties() -> None:
    attrs = pa.array(
        [
            [
                {"key": "z", "type": V_INT, "int": 7},
                {"key": "a", "type": V_STRING, "str": "x"},
                {"key": "d", "type": V_DOUBLE, "double": 2.0},
            ],
            None,
            [],
            [{"key": "b", "type": V_BYTES, "bytes": b"\x01"}],
        ],
        ATTRIBUTES,
    )
    result = columns.attributes_to_string_map(attrs)
    assert result.type == pa.map_(pa.string(), pa.string())
    assert result.null_count == 0
    assert result.to_pylist() == [
        [("z", "7"), ("a", "x"), ("d", "2")],
        [],
        [],
        [("b", "AQ==")],
    ]
    assert columns.attributes_to_string_map(attrs.slice(3)).to_pylist() == [[("b", "AQ==")]]


def test_timestamps_ns_clamps_and_defaults() -> None:
    nanos = pa.array([1_700_000_000_123_456_789, None, 2**64 - 1], pa.uint64())
    out = columns.timestamps_ns(nanos)
    assert out.type == pa.timestamp("ns")
    assert out.cast(pa.int64()).to_pylist() == [1_700_000_000_123_456_789, 0, 2**63 - 1]


def test_timestamps_s_truncates_to_datetime_range() -> None:
    nanos = pa.array([1_700_000_000_999_999_999, None, 2**64 - 1], pa.uint64())
    out = columns.timestamps_s(nanos)
    assert out.type == pa.timestamp("s")
    assert out.cast(pa.int64()).to_pylist() == [1_700_000_000, 0, 2**32 - 1]


def test_lookup_strings() -> None:
    codes = pa.array([0, 2, 9, None, -1], pa.int8())
    assert columns.lookup_strings(codes, ["Unset", "Ok", "Error"]).to_pylist() == [
        "Unset",
        "Error",
        "",
        "Unset",
        "",
    ]


def test_list_offsets_treat_null_lists_as_empty() -> None:
    lists = pa.array([[1, 2], None, [3]], pa.list_(pa.int64()))
    offsets = columns.list_offsets(lists.slice(1))
    assert offsets.to_pylist() == [0, 0, 1]
    rebuilt = columns.relist(offsets, pa.array(np.array([3])))
    assert rebuilt.to_pylist() == [[], [3]]


def test_hex_ids_all_null_column() -> None:
    ids = pa.nulls(3, SPAN_ID)
    assert columns.hex_ids(ids).to_pylist() == ["", "", ""]
    assert columns.hex_ids(ids, empty_as_zeros=True).to_pylist() == ["0" * 16] * 3
