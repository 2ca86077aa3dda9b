"""concat / split / take_records keep every record with its resource, scope and metric."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from otlp_samples import REQUESTS, SAMPLES, assert_batches_equal

from otlp.batch import METRICS_SIGNAL, POINT_TABLES, Batch
from otlp.batch_ops import concat, context_key, split, take_records
from otlp.decode import decode_protobuf
from otlp.encode import encode_protobuf

SETTINGS = settings(
    max_examples=int(os.environ.get("AIRIS_HYPOTHESIS_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SIGNALS = ["traces", "metrics", "logs"]


def decode(signal: str, request: Any) -> Batch:
    return decode_protobuf(signal, request.SerializeToString())


def _without(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in keys}


def check_indices(batch: Batch) -> None:
    n_res, n_scopes = batch.resources.num_rows, batch.scopes.num_rows
    assert all(0 <= i < n_res for i in batch.scopes.column("resource_index").to_pylist())
    owner = "metrics" if batch.signal == METRICS_SIGNAL else next(iter(batch.tables))
    assert all(0 <= i < n_scopes for i in batch.tables[owner].column("scope_index").to_pylist())
    if batch.signal == METRICS_SIGNAL:
        n_metrics = batch.tables["metrics"].num_rows
        for name in POINT_TABLES:
            assert all(
                0 <= i < n_metrics for i in batch.tables[name].column("metric_index").to_pylist()
            )


def view(batch: Batch) -> list[tuple[Any, ...]]:
    """Every item with the resource, scope (and metric) it belongs to, in item order."""
    resources = [
        _without(r, "service_name") | {"sn": r["service_name"]} for r in batch.resources.to_pylist()
    ]
    scopes = batch.scopes.to_pylist()

    def context(scope_index: int) -> tuple[Any, ...]:
        scope = scopes[scope_index]
        return (resources[scope["resource_index"]], _without(scope, "resource_index"))

    if batch.signal != METRICS_SIGNAL:
        records = next(iter(batch.tables.values())).to_pylist()
        return [(*context(r["scope_index"]), _without(r, "scope_index")) for r in records]
    metrics = batch.tables["metrics"].to_pylist()
    items = []
    for name in POINT_TABLES:
        for point in batch.tables[name].to_pylist():
            metric = metrics[point["metric_index"]]
            items.append(
                (
                    *context(metric["scope_index"]),
                    _without(metric, "scope_index"),
                    name,
                    _without(point, "metric_index"),
                )
            )
    return items


def unreferenced(batch: Batch) -> list[str]:
    """The resources, scopes and metrics that no item references (as sorted reprs)."""
    out = []
    scopes = batch.scopes.to_pylist()
    used_res = {s["resource_index"] for s in scopes}
    out += [repr(r) for i, r in enumerate(batch.resources.to_pylist()) if i not in used_res]
    owner = "metrics" if batch.signal == METRICS_SIGNAL else next(iter(batch.tables))
    used_scopes = set(batch.tables[owner].column("scope_index").to_pylist())
    out += [
        repr(_without(s, "resource_index")) for i, s in enumerate(scopes) if i not in used_scopes
    ]
    if batch.signal == METRICS_SIGNAL:
        used = {
            i
            for name in POINT_TABLES
            for i in batch.tables[name].column("metric_index").to_pylist()
        }
        out += [
            repr(_without(x, "scope_index"))
            for i, x in enumerate(batch.tables["metrics"].to_pylist())
            if i not in used
        ]
    return sorted(out)


def sort_metric_items(items: list[tuple[Any, ...]]) -> list[str]:
    return sorted(repr(item) for item in items)


@pytest.mark.parametrize("signal", SIGNALS)
def test_concat_equals_decoding_the_merged_request(signal: str) -> None:
    @SETTINGS
    @given(st.lists(REQUESTS[signal], min_size=1, max_size=3))
    def check(requests: list[Any]) -> None:
        merged = type(requests[0])()
        field = merged.DESCRIPTOR.fields[0].name
        for request in requests:
            getattr(merged, field).extend(getattr(request, field))
        batches = [decode(signal, r) for r in requests]
        joined = concat(batches)
        assert_batches_equal(joined, decode(signal, merged))
        check_indices(joined)
        assert joined.item_count() == sum(b.item_count() for b in batches)

    check()


@pytest.mark.parametrize("signal", SIGNALS)
def test_split_bounds_and_preserves(signal: str) -> None:
    @SETTINGS
    @given(st.lists(REQUESTS[signal], min_size=1, max_size=3), st.integers(1, 5))
    def check(requests: list[Any], max_items: int) -> None:
        batch = concat([decode(signal, r) for r in requests])
        pieces = split(batch, max_items)
        assert all(p.item_count() <= max_items for p in pieces)
        assert sum(p.item_count() for p in pieces) == batch.item_count()
        if batch.item_count() > max_items:
            assert all(p.item_count() > 0 for p in pieces)
        for piece in pieces:
            check_indices(piece)
            assert_batches_equal(decode_protobuf(signal, encode_protobuf(piece)), piece)
        for piece in pieces[1:]:
            assert unreferenced(piece) == []  # later pieces hold only what their items reference
        rejoined = concat(pieces)
        if signal == METRICS_SIGNAL:
            assert sort_metric_items(view(rejoined)) == sort_metric_items(view(batch))
        else:
            assert view(rejoined) == view(batch)
        assert unreferenced(rejoined) == unreferenced(batch)

    check()


def test_split_metric_points_across_pieces() -> None:
    points = [m.NumberDataPoint(as_int=i) for i in range(5)]
    request = SAMPLES["metrics"]()
    request.resource_metrics[0].scope_metrics[0].metrics.insert(
        0, m.Metric(name="many", sum=m.Sum(data_points=points, is_monotonic=True))
    )
    batch = decode("metrics", request)
    pieces = split(batch, 2)
    assert [p.item_count() for p in pieces] == [2, 2, 2, 2, 2, 2, 1]
    # the Collector's order: metric by metric, so "many" fills the first pieces
    names = [p.tables["metrics"].column("name").to_pylist() for p in pieces]
    assert names[0][0] == "many" and names[1] == ["many"] and names[2][0] == "many"
    assert [x for p in pieces for x in p.tables["sum"].column("as_int").to_pylist()][:5] == [
        0,
        1,
        2,
        3,
        4,
    ]
    # metrics without points travel with the first piece
    assert {"nodata", "emptygauge"} <= set(names[0])


def test_split_small_batch_is_unchanged() -> None:
    batch = decode("traces", SAMPLES["traces"]())
    assert split(batch, 100) == [batch]
    with pytest.raises(ValueError):
        split(batch, 0)


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_take_records_property(signal: str) -> None:
    @SETTINGS
    @given(REQUESTS[signal], st.randoms(use_true_random=False), st.booleans())
    def check(request: Any, rnd: random.Random, as_indices: bool) -> None:
        batch = decode(signal, request)
        mask = [rnd.random() < 0.5 for _ in range(batch.item_count())]
        selection: Any = (
            [i for i, keep in enumerate(mask) if keep] if as_indices else np.array(mask, bool)
        )
        kept = take_records(batch, selection)
        check_indices(kept)
        assert unreferenced(kept) == []
        assert view(kept) == [item for item, keep in zip(view(batch), mask, strict=True) if keep]

    check()


def test_take_records_metrics_property() -> None:
    @SETTINGS
    @given(REQUESTS["metrics"], st.randoms(use_true_random=False))
    def check(request: Any, rnd: random.Random) -> None:
        batch = decode("metrics", request)
        masks = {
            name: [rnd.random() < 0.5 for _ in range(batch.tables[name].num_rows)]
            for name in POINT_TABLES
        }
        kept = take_records(batch, {name: np.array(mask, bool) for name, mask in masks.items()})
        check_indices(kept)
        assert unreferenced(kept) == []
        expected = []
        items = view(batch)
        flags = [keep for name in POINT_TABLES for keep in masks[name]]
        expected = [item for item, keep in zip(items, flags, strict=True) if keep]
        assert view(kept) == expected

    check()


def test_take_records_metric_selection() -> None:
    batch = decode("metrics", SAMPLES["metrics"]())
    names = batch.tables["metrics"].column("name").to_pylist()
    keep = [name in ("g", "h", "nodata") for name in names]
    kept = take_records(batch, {"metrics": keep})
    # "nodata" has no points, so it is pruned like every metric left without points
    assert kept.tables["metrics"].column("name").to_pylist() == ["g", "h"]
    assert kept.item_count() == 5
    assert kept.tables["sum"].num_rows == 0
    check_indices(kept)
    with pytest.raises(TypeError):
        take_records(batch, [True])
    with pytest.raises(ValueError):
        take_records(batch, {"bogus": []})


def test_take_nothing_and_everything() -> None:
    batch = decode("traces", SAMPLES["traces"]())
    empty = take_records(batch, np.zeros(batch.item_count(), bool))
    assert empty.item_count() == 0 and empty.resources.num_rows == 0 and empty.scopes.num_rows == 0
    everything = take_records(batch, np.ones(batch.item_count(), bool))
    # the empty scope of the sample is pruned; the records are all there
    assert view(everything) == view(batch)
    assert everything.scopes.num_rows == batch.scopes.num_rows - 1


def test_context_rules() -> None:
    a = decode("logs", SAMPLES["logs"]())
    b = decode("logs", SAMPLES["logs"]())
    a.context, b.context = {"tenant": "x", "client": "1"}, {"client": "1", "tenant": "x"}
    assert context_key(a) == context_key(b) == (("client", "1"), ("tenant", "x"))
    joined = concat([a, b])
    assert joined.context == a.context and joined.item_count() == 2 * a.item_count()
    assert all(p.context == a.context for p in split(joined, 3))
    assert take_records(joined, [0]).context == a.context
    b.context = {"tenant": "y"}
    with pytest.raises(ValueError, match="context"):
        concat([a, b])
    with pytest.raises(ValueError, match="concat"):
        concat([a, decode("traces", SAMPLES["traces"]())])
