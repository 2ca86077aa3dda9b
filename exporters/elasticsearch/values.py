"""Columnar batch pieces -> JSON-ready Python values with their OTLP types kept: an int
attribute stays a JSON number, a kvlist an object, an array an array, bytes base64 text.

Attributes come out of Arrow once per column (`to_pylist`, in C); what remains per value
is one type switch. Nested arrays and maps are the JSON the decoder already rendered
(`VALUE.str`), parsed back with orjson.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import V_ARRAY, V_BOOL, V_BYTES, V_DOUBLE, V_INT, V_KVLIST, V_STRING
from otlp.columns import as_array, fill_null, hex_ids

# pdata's SpanKind.String() / StatusCode.String() (what the otel mapping mode writes)
SPAN_KINDS: Final = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES: Final = ("Unset", "Ok", "Error")
# the Collector's legacy (none/raw) names
LEGACY_SPAN_KINDS: Final = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
LEGACY_STATUS: Final = ("Unset", "Ok", "Error")


def value(item: dict[str, Any] | None) -> Any:
    """One VALUE / ATTRIBUTE struct (as to_pylist gives it) -> its JSON value."""
    if item is None:
        return None
    kind = item["type"]
    if kind == V_STRING:
        return item["str"]
    if kind == V_INT:
        return item["int"]
    if kind == V_DOUBLE:
        return item["double"]
    if kind == V_BOOL:
        return item["bool"]
    if kind == V_KVLIST or kind == V_ARRAY:
        text = item["str"]
        return orjson.loads(text) if text else None
    if kind == V_BYTES:
        raw = item["bytes"]
        return base64.b64encode(raw).decode("ascii") if raw is not None else None
    return None


def attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """list<ATTRIBUTE> row -> {key: typed value}; a repeated key keeps the last value, as
    pdata's map does (Elasticsearch rejects duplicate keys)."""
    if not items:
        return {}
    return {item["key"]: value(item) for item in items}


def attribute_column(column: pa.Array | pa.ChunkedArray) -> list[dict[str, Any]]:
    return [attributes(row) for row in as_array(column).to_pylist()]


def hex_column(column: pa.Array | pa.ChunkedArray) -> list[str]:
    """ids -> lowercase hex; empty ids -> "" (the field is left out)."""
    return hex_ids(column).to_pylist()


def ints(column: pa.Array | pa.ChunkedArray, default: int = 0) -> list[int]:
    return fill_null(column, default).to_pylist()


def strings(column: pa.Array | pa.ChunkedArray) -> list[str]:
    return fill_null(column, "").to_pylist()


def nanos(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    arr = fill_null(column, 0)
    return arr.to_numpy(zero_copy_only=False).astype(np.uint64)


def epoch_millis_nanos(ns: np.ndarray) -> list[str]:
    """Unix nanoseconds -> "<millis>.<nanos within the milli, 6 digits>": what the otel
    mapping mode writes for date_nanos fields (epoch_millis with a fraction keeps all nine
    digits; the fraction is zero-padded so 5 ns reads as .000005, not .5 ms)."""
    if not len(ns):
        return []
    millis = pa.array(ns // np.uint64(1_000_000))
    rest = pa.array(ns % np.uint64(1_000_000))
    frac = pc.utf8_lpad(pc.cast(rest, pa.string()), 6, "0")
    return pc.binary_join_element_wise(pc.cast(millis, pa.string()), frac, ".").to_pylist()


def rfc3339_nanos(ns: np.ndarray) -> list[str]:
    """Unix nanoseconds -> "2006-01-02T15:04:05.000000000Z" (the legacy and ECS modes)."""
    if not len(ns):
        return []
    clipped = np.minimum(ns, np.uint64(2**63 - 1)).astype(np.int64)
    stamps = pa.array(clipped, pa.timestamp("ns"))
    return pc.strftime(stamps, "%Y-%m-%dT%H:%M:%SZ").to_pylist()


def epoch_millis_nanos_one(ns: int | None) -> str:
    ns = ns or 0
    return f"{ns // 1_000_000}.{ns % 1_000_000:06d}"


def rfc3339_nanos_one(ns: int | None) -> str:
    ns = min(ns or 0, 2**63 - 1)
    seconds = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return seconds.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def values_column(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    return [value(item) for item in as_array(column).to_pylist()]
