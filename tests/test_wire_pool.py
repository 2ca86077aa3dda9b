"""The compiled decoder recycles its export blocks (otlp/_wire.c, block_get/block_put): a block
goes back to the pool only when every table of its request was released, and a reused block
must never show through in a batch that is still alive."""

from __future__ import annotations

import gc
import threading

from test_wire_decoder import _two_trace_requests, check, compiled

from benchmarks.payloads import make_templates


def _bodies() -> list[bytes]:
    # requests of very different sizes, so blocks are asked for in several size classes
    small, large = (r.SerializeToString() for r in _two_trace_requests())
    big = make_templates("traces", 512, distinct=1)[0].render(3)
    return [small, large, big]


def test_live_batches_survive_block_reuse() -> None:
    bodies = _bodies()
    kept = [compiled("traces", body) for body in bodies]
    expected = [batch.tables["spans"].to_pylist() for batch in kept if batch]
    for round_ in range(8):
        # decoded and dropped at once: these blocks go back to the pool and are reused
        for body in bodies[round_ % 3 :] + bodies[: round_ % 3]:
            check("traces", body, accept=True)
        gc.collect()
    assert [batch.tables["spans"].to_pylist() for batch in kept if batch] == expected


def test_blocks_released_on_another_thread_are_reused_correctly() -> None:
    bodies = _bodies()
    for _ in range(3):
        batches = [compiled("traces", body) for body in bodies * 4]

        def drop(batches: list[object]) -> None:
            batches.clear()
            gc.collect()

        thread = threading.Thread(target=drop, args=(batches,))
        thread.start()
        thread.join()
        # the next requests take the blocks the other thread gave back
        for body in reversed(bodies):
            check("traces", body, accept=True)


def test_partially_released_request_keeps_its_block() -> None:
    """Dropping two of a request's three tables must not hand its block to the next request."""
    big = _bodies()[2]
    batch = compiled("traces", big)
    assert batch is not None
    spans = batch.tables["spans"]
    expected = spans.to_pylist()
    del batch
    gc.collect()
    for _ in range(4):
        check("traces", big, accept=True)
    spans.validate(full=True)
    assert spans.to_pylist() == expected
