"""batch and memory_limiter processors with the Collector's semantics."""

from __future__ import annotations

import asyncio

import pytest

from otlp.batch import Batch
from otlp.errors import BackpressureError, RetryableError
from otlp.telemetry import Telemetry
from processors.batch.config import BatchConfig
from processors.batch.processor import BatchProcessor
from processors.memory_limiter.config import MemoryLimiterConfig
from processors.memory_limiter.processor import MemoryLimiter, resident_bytes
from tests.test_exporterhelper import spans


class Sink:
    def __init__(self, error: Exception | None = None) -> None:
        self.batches: list[Batch] = []
        self.error = error

    async def consume(self, batch: Batch) -> None:
        if self.error:
            raise self.error
        self.batches.append(batch)


def batcher(sink: Sink, **config: object) -> BatchProcessor:
    processor = BatchProcessor("batch", BatchConfig.model_validate(config), Telemetry())
    processor.next = sink
    return processor


async def test_size_trigger_merges_requests() -> None:
    sink = Sink()
    processor = batcher(sink, send_batch_size=10, timeout="10s")
    await asyncio.gather(*(processor.consume(spans(2)) for _ in range(5)))
    assert [b.item_count() for b in sink.batches] == [10]


async def test_timeout_trigger_and_ack_after_handoff() -> None:
    sink = Sink()
    processor = batcher(sink, send_batch_size=1000, timeout="20ms")
    await processor.consume(spans(3))
    # consume returned: the data is already with the next consumer, not only in the batcher
    assert [b.item_count() for b in sink.batches] == [3]


async def test_max_size_splits() -> None:
    sink = Sink()
    processor = batcher(sink, send_batch_size=5, send_batch_max_size=5, timeout="10s")
    await processor.consume(spans(12))
    assert [b.item_count() for b in sink.batches] == [5, 5, 2]


async def test_downstream_error_reaches_every_waiter() -> None:
    sink = Sink(BackpressureError("queue full"))
    processor = batcher(sink, send_batch_size=4, timeout="10s")
    results = await asyncio.gather(
        processor.consume(spans(2)), processor.consume(spans(2)), return_exceptions=True
    )
    assert all(isinstance(r, RetryableError) for r in results)


async def test_flush_on_shutdown_sends_partial_batch() -> None:
    sink = Sink()
    processor = batcher(sink, send_batch_size=1000, timeout="1h")
    pending = asyncio.create_task(processor.consume(spans(7)))
    await asyncio.sleep(0)
    await processor.flush()
    await pending
    assert [b.item_count() for b in sink.batches] == [7]


async def test_metadata_keys_separate_batches() -> None:
    sink = Sink()
    processor = batcher(sink, send_batch_size=1000, timeout="10ms", metadata_keys=["tenant"])
    a, b = spans(1), spans(1)
    a.context["tenant"], b.context["tenant"] = "acme", "globex"
    await asyncio.gather(processor.consume(a), processor.consume(b))
    assert sorted(x.context["tenant"] for x in sink.batches) == ["acme", "globex"]


def test_batch_config_validation() -> None:
    with pytest.raises(ValueError, match="send_batch_max_size"):
        BatchConfig.model_validate({"send_batch_size": 10, "send_batch_max_size": 5})


async def test_memory_limiter_refuses_over_soft_limit() -> None:
    rss_mib = resident_bytes() // (1024 * 1024)
    low = MemoryLimiter(
        "memory_limiter",
        MemoryLimiterConfig(check_interval="1s", limit_mib=max(rss_mib // 2, 2)),
        Telemetry(),
    )
    low.next = Sink()
    low.check()
    with pytest.raises(BackpressureError, match="high memory usage"):
        await low.consume(spans(1))

    high = MemoryLimiter(
        "memory_limiter",
        MemoryLimiterConfig(check_interval="1s", limit_mib=rss_mib * 10),
        Telemetry(),
    )
    sink = Sink()
    high.next = sink
    high.check()
    await high.consume(spans(1))
    assert len(sink.batches) == 1
    assert high.soft_limit == high.hard_limit - high.hard_limit // 5


def test_memory_limiter_config_errors() -> None:
    with pytest.raises(ValueError, match="check_interval"):
        MemoryLimiterConfig(limit_mib=100)
    with pytest.raises(ValueError, match="limit_mib or limit_percentage"):
        MemoryLimiterConfig(check_interval="1s")
    with pytest.raises(ValueError, match="spike_limit_mib"):
        MemoryLimiterConfig(check_interval="1s", limit_mib=100, spike_limit_mib=100)
    cfg = MemoryLimiterConfig(check_interval="1s", limit_percentage=80, spike_limit_percentage=20)
    assert cfg.limit_percentage == 80
