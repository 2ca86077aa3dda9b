"""Redaction of log bodies. Scalar bodies (most logs) are one string column through the
value rules. Map and array bodies are walked in Python, as the Collector walks them (keys
are decided per key path: ignored, removed when not allowed, masked whole when blocked);
all their leaf values of a batch then go through the value rules in one columnar pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otlp.anyvalue import as_string
from otlp.batch import V_ARRAY, V_KVLIST, V_STRING, VALUE
from otlp.columns import as_array, go_float_string, value_to_string
from processors.redaction.attributes import BODY_SUMMARY, KeyRules, Outcome, write_summary
from processors.redaction.values import ValueRules


@dataclass(slots=True)
class _Record:
    redacted: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _scalar_string(value: AnyValue) -> str:
    """pcommon Value.AsString() of a scalar."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return go_float_string(value.double_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "bytes_value":
        import base64

        return base64.b64encode(value.bytes_value).decode()
    return ""


class _Walk:
    def __init__(self, keys: KeyRules, values: ValueRules) -> None:
        self.keys = keys
        self.values = values
        # leaf values still to check: (record, key path, the value, its string form)
        self.leaves: list[tuple[_Record, str, AnyValue, str]] = []

    def _map(self, record: _Record, prefix: str | None, value: AnyValue) -> None:
        entries = value.kvlist_value.values
        remove = []
        for i, kv in enumerate(entries):
            path = kv.key if prefix is None else f"{prefix}.{kv.key}"
            _, ignored, not_allowed, masked = self.keys.one(kv.key)
            if ignored:
                record.ignored.append(path)
            elif not_allowed:
                remove.append(i)
                record.redacted.append(path)
            elif masked:
                record.masked.append(path)
                # Value.Str() of a non-string is ""
                text = kv.value.string_value if kv.value.HasField("string_value") else ""
                kv.value.string_value = self.values.mask_one(text)
            else:
                self._value(record, path, kv.value)
        for i in reversed(remove):
            del entries[i]

    def _value(self, record: _Record, path: str, value: AnyValue) -> None:
        kind = value.WhichOneof("value")
        if kind == "kvlist_value":
            self._map(record, path, value)
        elif kind == "array_value":
            for i, item in enumerate(value.array_value.values):
                self._value(record, f"{path}.[{i}]", item)
        else:
            self.leaves.append((record, path, value, _scalar_string(value)))

    def body(self, record: _Record, value: AnyValue) -> None:
        kind = value.WhichOneof("value")
        if kind == "kvlist_value":
            self._map(record, None, value)
        else:
            for i, item in enumerate(value.array_value.values):
                self._value(record, f"[{i}]", item)

    def finish(self) -> None:
        if not self.leaves:
            return
        text = pa.array([leaf[3] for leaf in self.leaves], pa.string())
        allowed = self.values.allowed(text)
        after = self.values.apply(text) if self.values.active else text
        changed = pc.not_equal(text, after).to_numpy(zero_copy_only=False) & ~allowed
        new_text = after.to_pylist()
        for i, (record, path, value, _) in enumerate(self.leaves):
            if allowed[i]:
                record.allowed.append(path)
            elif changed[i]:
                record.masked.append(path)
                value.string_value = new_text[i]


def _outcome(n: int, rows: dict[int, list[str]], debug: bool) -> Outcome:
    counts = np.zeros(n, np.int64)
    texts: list[str | None] = [None] * n
    for row, keys in rows.items():
        counts[row] = len(keys)
        if keys:
            texts[row] = ",".join(sorted(keys, key=str.encode))
    return Outcome(counts, pa.array(texts, pa.string()) if debug else None)


def redact_bodies(
    bodies: pa.Array | pa.ChunkedArray,
    attributes: pa.Array,
    keys: KeyRules,
    values: ValueRules,
) -> tuple[pa.Array, pa.Array, int]:
    """(new bodies, attributes with the body summary, number of values masked)."""
    body = as_array(bodies)
    n = len(body)
    types = pc.fill_null(pc.struct_field(body, "type"), 0).to_numpy(zero_copy_only=False)
    structured = (types == V_KVLIST) | (types == V_ARRAY)
    records: dict[int, _Record] = {}
    masked_total = 0
    # scalar bodies: the string form through the value rules
    scalar_rows = np.flatnonzero(~structured)
    scalar_allowed = np.zeros(0, np.int64)
    scalar_masked = np.zeros(0, np.int64)
    new_body = body
    if len(scalar_rows):
        text = value_to_string(body.take(pa.array(scalar_rows)))
        allowed = values.allowed(text)
        after = values.apply(text) if values.active else text
        changed = pc.not_equal(text, after).to_numpy(zero_copy_only=False) & ~allowed
        scalar_allowed = scalar_rows[allowed]
        scalar_masked = scalar_rows[changed]
        if changed.any():
            n_changed = int(changed.sum())
            strings = as_array(after).filter(pa.array(changed))
            replacement = pa.StructArray.from_arrays(
                [
                    pa.array(np.full(n_changed, V_STRING, np.int8)),
                    strings,
                    pa.nulls(n_changed, pa.int64()),
                    pa.nulls(n_changed, pa.float64()),
                    pa.nulls(n_changed, pa.bool_()),
                    pa.nulls(n_changed, pa.binary()),
                ],
                fields=list(VALUE),
            )
            mask = np.zeros(n, np.bool_)
            mask[scalar_masked] = True
            new_body = _replace_rows(new_body, mask, replacement)
            masked_total += n_changed
    # structured bodies: walked in Python, leaves checked together
    rows = np.flatnonzero(structured)
    if len(rows):
        walk = _Walk(keys, values)
        raw = pc.struct_field(body, "bytes").take(pa.array(rows)).to_pylist()
        messages = []
        for row, data in zip(rows.tolist(), raw, strict=True):
            message = AnyValue.FromString(data or b"")
            record = records.setdefault(row, _Record())
            walk.body(record, message)
            messages.append(message)
        walk.finish()
        serialized = [m.SerializeToString() for m in messages]
        replacement = pa.StructArray.from_arrays(
            [
                pa.array(types[rows], pa.int8()),
                pa.array([as_string(m) for m in messages], pa.string()),
                pa.nulls(len(rows), pa.int64()),
                pa.nulls(len(rows), pa.float64()),
                pa.nulls(len(rows), pa.bool_()),
                pa.array(serialized, pa.binary()),
            ],
            fields=list(VALUE),
        )
        mask = np.zeros(n, np.bool_)
        mask[rows] = True
        new_body = _replace_rows(new_body, mask, replacement)
        masked_total += sum(len(r.masked) for r in records.values())
    if not keys.summary_enabled:
        return new_body, attributes, masked_total
    debug = keys.summary == "debug"
    redacted = {r: rec.redacted for r, rec in records.items()}
    masked = {r: rec.masked for r, rec in records.items()}
    allowed_rows = {r: rec.allowed for r, rec in records.items()}
    ignored = {r: rec.ignored for r, rec in records.items()}
    for r in scalar_masked.tolist():
        masked[r] = ["body"]
    for r in scalar_allowed.tolist():
        allowed_rows[r] = ["body"]
    attributes = write_summary(
        attributes,
        attributes,
        BODY_SUMMARY,
        keys.summary,
        _outcome(n, redacted, debug),
        _outcome(n, masked, debug),
        _outcome(n, allowed_rows, debug),
        _outcome(n, ignored, False),
    )
    return new_body, attributes, masked_total


def _replace_rows(column: pa.Array, mask: np.ndarray, rows: pa.StructArray) -> pa.Array:
    """``column`` with the rows where ``mask`` holds replaced, in order, by ``rows``."""
    positions = np.arange(len(column), dtype=np.int64)
    positions[np.flatnonzero(mask)] = len(column) + np.arange(len(rows))
    merged = pa.concat_arrays([column.cast(VALUE), rows])
    return merged.take(pa.array(positions))
