"""Routing keys per record, and the split of a batch into one part per backend.

Keys (the Collector's loadbalancingexporter): traceID (spans, log records), service
(resource service.name), resource (all resource attributes), metric (metric name),
streamID (resource + scope + metric name + data point attributes), attributes (the
`routing_attributes` values, looked up on the record, then its scope, then its resource).
A log record without a trace ID routed by traceID goes by its resource instead, so it still
lands somewhere stable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from exporters.loadbalancing.ring import HashRing, key_hash
from otlp.batch import METRICS_SIGNAL, POINT_TABLES, Batch
from otlp.batch_ops import take_records


def _attr_key(attributes: list[dict] | None) -> str:
    """A stable identity of an attribute list (order-insensitive)."""
    if not attributes:
        return ""
    items = []
    for kv in attributes:
        value = next(
            (kv[f] for f in ("str", "int", "double", "bool", "bytes") if kv.get(f) is not None),
            None,
        )
        items.append(f"{kv['key']}={value!r}")
    return "\x1f".join(sorted(items))


def _lookup(attributes: list[dict] | None, names: Sequence[str]) -> list[str]:
    found = {}
    for kv in attributes or ():
        if kv["key"] in names:
            value = next(
                (kv[f] for f in ("str", "int", "double", "bool") if kv.get(f) is not None), ""
            )
            found[kv["key"]] = str(value)
    return [found.get(n, "") for n in names]


def _index(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.int64)


class Router:
    def __init__(self, routing_key: str, routing_attributes: Sequence[str] = ()) -> None:
        self.routing_key = routing_key
        self.routing_attributes = list(routing_attributes)

    # --- per-resource / per-scope keys, computed once per batch ------------------------------
    def _resource_keys(self, batch: Batch) -> list[bytes]:
        if self.routing_key == "service":
            return [s.encode() for s in batch.resources.column("service_name").to_pylist()]
        return [_attr_key(a).encode() for a in batch.resources.column("attributes").to_pylist()]

    def _scope_keys(self, batch: Batch) -> list[bytes]:
        resource_keys = self._resource_keys(batch)
        return [resource_keys[i] for i in batch.scopes.column("resource_index").to_pylist()]

    def _hash_per_scope(self, batch: Batch, scope_index: np.ndarray) -> np.ndarray:
        per_scope = np.array([key_hash(k) for k in self._scope_keys(batch)], dtype=np.uint64)
        return per_scope[scope_index] if len(scope_index) else np.zeros(0, dtype=np.uint64)

    def _attributes_hashes(self, batch: Batch, table: pa.Table, scope_index: np.ndarray):
        names = self.routing_attributes
        res_attrs = batch.resources.column("attributes").to_pylist()
        scopes = batch.scopes
        scope_attrs = scopes.column("attributes").to_pylist()
        scope_res = scopes.column("resource_index").to_pylist()
        hashes = []
        for attrs, scope in zip(table.column("attributes").to_pylist(), scope_index, strict=True):
            values = _lookup(attrs, names)
            for fallback in (scope_attrs[scope], res_attrs[scope_res[scope]]):
                if all(values):
                    break
                more = _lookup(fallback, names)
                values = [v or m for v, m in zip(values, more, strict=True)]
            hashes.append(key_hash("\x1f".join(values).encode()))
        return np.array(hashes, dtype=np.uint64)

    def _record_hashes(self, batch: Batch, table: pa.Table) -> np.ndarray:
        scope_index = _index(table, "scope_index")
        if self.routing_key == "traceID":
            ids = table.column("trace_id").to_pylist()
            fallback = None
            hashes = np.empty(len(ids), dtype=np.uint64)
            for i, trace_id in enumerate(ids):
                if trace_id:
                    hashes[i] = key_hash(trace_id)
                else:
                    if fallback is None:
                        fallback = self._hash_per_scope(batch, scope_index)
                    hashes[i] = fallback[i]
            return hashes
        if self.routing_key == "attributes":
            return self._attributes_hashes(batch, table, scope_index)
        return self._hash_per_scope(batch, scope_index)

    def _point_hashes(self, batch: Batch, table: pa.Table) -> np.ndarray:
        metrics = batch.tables["metrics"]
        metric_index = _index(table, "metric_index")
        if not len(metric_index):
            return np.zeros(0, dtype=np.uint64)
        metric_scope = _index(metrics, "scope_index")
        if self.routing_key in ("service", "resource"):
            return self._hash_per_scope(batch, metric_scope[metric_index])
        if self.routing_key == "attributes":
            return self._attributes_hashes(batch, table, metric_scope[metric_index])
        names = metrics.column("name").to_pylist()
        if self.routing_key == "metric":
            per_metric = np.array([key_hash(n.encode()) for n in names], dtype=np.uint64)
            return per_metric[metric_index]
        # streamID: resource, scope, metric name and the point's attributes
        resource_keys = self._resource_keys(batch)
        scope_res = batch.scopes.column("resource_index").to_pylist()
        scope_ids = [
            f"{n}\x1e{v}\x1e{_attr_key(a)}"
            for n, v, a in zip(
                batch.scopes.column("name").to_pylist(),
                batch.scopes.column("version").to_pylist(),
                batch.scopes.column("attributes").to_pylist(),
                strict=True,
            )
        ]
        point_attrs = table.column("attributes").to_pylist()
        hashes = np.empty(len(metric_index), dtype=np.uint64)
        for i, (m, attrs) in enumerate(zip(metric_index, point_attrs, strict=True)):
            scope = metric_scope[m]
            stream = b"\x1d".join(
                (
                    resource_keys[scope_res[scope]],
                    scope_ids[scope].encode(),
                    names[m].encode(),
                    _attr_key(attrs).encode(),
                )
            )
            hashes[i] = key_hash(stream)
        return hashes

    # --- the split ----------------------------------------------------------------------------
    def split(self, batch: Batch, ring: HashRing) -> dict[str, Batch]:
        """One part per backend that owns some of the batch's records."""
        if batch.signal != METRICS_SIGNAL:
            table = batch.records
            owners = ring.locate(self._record_hashes(batch, table))
            parts = {}
            for owner in np.unique(owners):
                selection = pa.array(np.flatnonzero(owners == owner))
                parts[ring.endpoints[int(owner)]] = take_records(batch, selection)
            return parts
        per_table = {
            name: ring.locate(self._point_hashes(batch, batch.tables[name]))
            for name in POINT_TABLES
        }
        used = np.unique(np.concatenate(list(per_table.values()))) if per_table else []
        parts = {}
        for owner in used:
            selection = {
                name: pa.array(np.flatnonzero(owners == owner), type=pa.int64())
                for name, owners in per_table.items()
            }
            parts[ring.endpoints[int(owner)]] = take_records(batch, selection)
        return parts
