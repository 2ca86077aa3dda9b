"""tail_sampling: hold each trace's spans for ``decision_wait``, then decide with policies.

How the data is held: every incoming batch is kept once (a "chunk") and each trace keeps the
row numbers of its spans in the chunks it arrived in. A decision tick takes the due traces'
rows out of their chunks into one batch, evaluates every policy over it with whole-column
kernels, and forwards the sampled rows taken from the original chunks, so resources, scopes
and request context stay as they came. A chunk is freed when no pending trace points into it.

Semantics follow contrib's tailsamplingprocessor v0.165:

* a decided trace stays in memory (its decision only, the spans are released) until
  ``num_traces`` pressure evicts it; spans arriving meanwhile follow the decision. With a
  ``decision_cache`` the trace leaves memory at decision time and the cache answers;
* when a new trace arrives with ``num_traces`` traces in memory, the oldest is evicted; if
  it was still waiting, its spans are dropped (counted as
  ``sampling_trace_dropped_too_early`` and as dropped spans with reason ``evicted``, logged);
* on shutdown, pending traces are decided with what has arrived
  (``drop_pending_traces_on_shutdown: true`` drops them instead, counted).

Unlike the Collector, a trace is decided at the first tick after ``decision_wait`` (ticks
every second, or every ``decision_wait`` when shorter) rather than in one-second batches.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otlp.batch import Batch
from otlp.batch_ops import concat, context_key, take_records
from otlp.component import Host, Processor
from otlp.errors import BackpressureError
from otlp.exporterhelper import Clock
from otlp.telemetry import Telemetry
from processors.tail_sampling.config import TailSamplingConfig
from processors.tail_sampling.metrics import metrics_for
from processors.tail_sampling.policies import (
    DECISION_NAMES,
    DROPPED,
    ERROR,
    NOT_SAMPLED,
    SAMPLED,
    UNSPECIFIED,
    Policy,
    build,
)
from processors.tail_sampling.traceset import TraceSet

log = logging.getLogger("airis.processor.tail_sampling")
_ZERO_ID = pa.scalar(b"\x00" * 16, pa.binary(16))


@dataclass(slots=True)
class _Trace:
    arrival: float
    due: float
    spans: int = 0
    # (chunk id, span rows in that chunk) of spans waiting for the decision
    parts: list[tuple[int, np.ndarray]] = field(default_factory=list)
    decision: int = UNSPECIFIED
    decided_at: float = 0.0


@dataclass(slots=True)
class _Chunk:
    batch: Batch
    refs: int = 0


class _LRU:
    """Trace ids with their decision kept after the spans left memory (decision_cache)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ids: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, trace_id: bytes) -> bool:
        if trace_id in self.ids:
            self.ids.move_to_end(trace_id)
            return True
        return False

    def put(self, trace_id: bytes) -> bool:
        if self.size <= 0:
            return False
        self.ids[trace_id] = None
        self.ids.move_to_end(trace_id)
        while len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


class TailSamplingProcessor(Processor):
    def __init__(
        self,
        component_id: str,
        config: TailSamplingConfig,
        telemetry: Telemetry,
        clock: Clock | None = None,
    ) -> None:
        self.id = component_id
        self.config = config
        self.telemetry = telemetry
        self.metrics = metrics_for(telemetry)
        self.clock = clock or Clock()
        policies = [build(cfg, self.clock.monotonic) for cfg in config.policies]
        # drop decisions win, so drop policies are asked first (as the Collector orders them)
        kinds = [cfg.type for cfg in config.policies]
        self.drop_policies = [p for p, k in zip(policies, kinds, strict=True) if k == "drop"]
        self.policies = [p for p, k in zip(policies, kinds, strict=True) if k != "drop"]
        name = component_id.partition("/")[2]
        self._label = {p.name: f"{name}.{p.name}" if name else p.name for p in policies}
        self.traces: dict[bytes, _Trace] = {}
        self._due: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self.chunks: dict[int, _Chunk] = {}
        self._next_chunk = 0
        self._filling = -1
        self.sampled_cache = _LRU(config.decision_cache.sampled_cache_size)
        self.non_sampled_cache = _LRU(config.decision_cache.non_sampled_cache_size)
        wait = config.decision_wait
        self.tick_interval = min(1.0, wait) if wait > 0 else 1.0
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._stopped = False

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())

    async def _tick_loop(self) -> None:
        while True:
            await self.clock.sleep(self.tick_interval)
            try:
                await self.tick()
            except Exception:
                log.exception("tail sampling decision tick failed", extra={"processor": self.id})

    async def flush(self) -> None:
        """Shutdown: decide every pending trace now (or drop them, counted, when
        ``drop_pending_traces_on_shutdown`` is set)."""
        async with self._lock:
            if self._ticker is not None:
                # it is sleeping or waiting for the lock: nothing of its work is lost
                self._ticker.cancel()
                self._ticker = None
            self._stopped = True
            await self._finish([t for t, tr in self.traces.items() if tr.decision == UNSPECIFIED])

    async def _finish(self, pending: list[bytes]) -> None:
        now = self.clock.monotonic()
        if self.config.drop_pending_traces_on_shutdown:
            self._dropped(sum(self._forget(t, now) for t in pending), "shutdown")
            return
        await self._decide(pending, now)

    async def shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    # --- ingest ----------------------------------------------------------------------------

    async def consume(self, batch: Batch) -> None:
        total = batch.item_count()
        if total == 0:
            return
        spans = batch.tables["spans"]
        ids = pc.fill_null(spans.column("trace_id").combine_chunks(), _ZERO_ID)
        encoded = ids.dictionary_encode()
        trace_ids: list[bytes] = encoded.dictionary.to_pylist()
        index = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.argsort(index, kind="stable")
        bounds = np.zeros(len(trace_ids) + 1, np.int64)
        np.cumsum(np.bincount(index, minlength=len(trace_ids)), out=bounds[1:])
        parents = spans.column("parent_span_id").combine_chunks()
        is_root = pc.is_null(parents).to_numpy(zero_copy_only=False)
        roots = np.bincount(index[is_root], minlength=len(trace_ids)) > 0
        if self.config.block_on_overflow:
            # refused data was never taken in: it is not counted as incoming
            self._make_room(trace_ids)
        self.telemetry.counter("processor_incoming", batch.signal).labels(self.id).inc(total)

        now = self.clock.monotonic()
        chunk_id = self._next_chunk
        self._next_chunk += 1
        chunk = self.chunks[chunk_id] = _Chunk(batch)
        self._filling = chunk_id
        forward: list[np.ndarray] = []
        not_sampled = new = evicted_traces = evicted_spans = 0
        early_sampled = early_not_sampled = 0
        wait = self.config.decision_wait
        after_root = self.config.decision_wait_after_root_received
        for u, trace_id in enumerate(trace_ids):
            rows = order[bounds[u] : bounds[u + 1]]
            if trace_id in self.sampled_cache:
                forward.append(rows)
                early_sampled += len(rows)
                continue
            if trace_id in self.non_sampled_cache:
                early_not_sampled += len(rows)
                continue
            trace = self.traces.get(trace_id)
            if trace is None:
                if len(self.traces) >= self.config.num_traces:
                    lost = self._evict_oldest(now)
                    if lost >= 0:
                        evicted_traces += 1
                        evicted_spans += lost
                trace = self.traces[trace_id] = _Trace(arrival=now, due=now + wait)
                self._schedule(trace_id, trace.due)
                new += 1
            trace.spans += len(rows)
            if trace.decision == UNSPECIFIED:
                if roots[u] and after_root > 0 and now + after_root < trace.due:
                    trace.due = now + after_root
                    self._schedule(trace_id, trace.due)
                trace.parts.append((chunk_id, rows))
                chunk.refs += 1
                continue
            self.metrics.late_span_age.labels(self.id).observe(int(now - trace.decided_at))
            if trace.decision == SAMPLED:
                forward.append(rows)
            else:
                not_sampled += len(rows)
        self._filling = -1
        if chunk.refs == 0:
            del self.chunks[chunk_id]

        m = self.metrics
        m.new_trace_id_received.labels(self.id).inc(new)
        m.traces_on_memory.labels(self.id).set(len(self.traces))
        if early_sampled:
            m.early_releases.labels(self.id, "true").inc(early_sampled)
        if early_not_sampled:
            m.early_releases.labels(self.id, "false").inc(early_not_sampled)
        self._dropped(not_sampled + early_not_sampled, "not_sampled")
        if evicted_traces:
            self._dropped(evicted_spans, "evicted")
            m.trace_dropped_too_early.labels(self.id).inc(evicted_traces)
            log.warning(
                "num_traces reached: dropped traces before their sampling decision",
                extra={
                    "processor": self.id,
                    "traces": evicted_traces,
                    "spans": evicted_spans,
                    "num_traces": self.config.num_traces,
                },
            )
        if forward:
            rows = np.sort(np.concatenate(forward))
            out = batch if len(rows) == total else take_records(batch, rows)
            await self.next.consume(out)
            self._outgoing(out)
        if self._stopped:
            # data after the shutdown flush has no ticker left to wait for: decide it now
            async with self._lock:
                known = [t for t in trace_ids if t in self.traces]
                await self._finish([t for t in known if self.traces[t].decision == UNSPECIFIED])

    def _schedule(self, trace_id: bytes, due: float) -> None:
        self._seq += 1
        heapq.heappush(self._due, (due, self._seq, trace_id))

    def _make_room(self, trace_ids: list[bytes]) -> None:
        """``block_on_overflow``: decided traces make room; if pending ones fill
        ``num_traces``, refuse the request (the client retries after the next decisions)."""
        new = sum(
            1
            for t in trace_ids
            if t not in self.traces
            and t not in self.sampled_cache.ids
            and t not in self.non_sampled_cache.ids
        )
        limit = self.config.num_traces
        if len(self.traces) + new <= limit:
            return
        now = self.clock.monotonic()
        for trace_id in [t for t, tr in self.traces.items() if tr.decision != UNSPECIFIED]:
            if len(self.traces) + new <= limit:
                return
            self._forget(trace_id, now)
        if len(self.traces) + new > limit:
            raise BackpressureError(f"{self.id}: num_traces ({limit}) traces wait for a decision")

    def _evict_oldest(self, now: float) -> int:
        """Drop the oldest trace; the number of its spans lost (-1 if it was decided)."""
        trace_id = next(iter(self.traces))
        pending = self.traces[trace_id].decision == UNSPECIFIED
        lost = self._forget(trace_id, now)
        return lost if pending else -1

    def _forget(self, trace_id: bytes, now: float) -> int:
        """Remove a trace from memory, releasing its chunks; its buffered span count."""
        trace = self.traces.pop(trace_id)
        self.metrics.trace_removal_age.labels(self.id).observe(int(now - trace.arrival))
        spans = self._release(trace)
        return spans

    def _release(self, trace: _Trace) -> int:
        spans = 0
        for chunk_id, rows in trace.parts:
            spans += len(rows)
            chunk = self.chunks[chunk_id]
            chunk.refs -= 1
            if chunk.refs == 0 and chunk_id != self._filling:
                del self.chunks[chunk_id]
        trace.parts = []
        return spans

    # --- decisions -------------------------------------------------------------------------

    async def tick(self) -> None:
        """Decide every trace whose wait is over (the ticker calls this; tests call it with
        a fake clock)."""
        async with self._lock:
            if self._stopped:
                return
            now = self.clock.monotonic()
            due: list[bytes] = []
            seen: set[bytes] = set()
            while self._due and self._due[0][0] <= now:
                at, _, trace_id = heapq.heappop(self._due)
                trace = self.traces.get(trace_id)
                if trace is None or trace.decision != UNSPECIFIED or trace.due != at:
                    continue
                if trace_id not in seen:
                    seen.add(trace_id)
                    due.append(trace_id)
            await self._decide(due, now)

    async def _decide(self, trace_ids: list[bytes], now: float) -> None:
        started = time.perf_counter()
        m = self.metrics
        if not trace_ids:
            m.traces_on_memory.labels(self.id).set(len(self.traces))
            return
        traces = [self.traces[t] for t in trace_ids]
        # rows of the due traces per chunk, with the trace number of each row
        per_chunk: dict[int, tuple[list[np.ndarray], list[int]]] = {}
        for number, trace in enumerate(traces):
            for chunk_id, rows in trace.parts:
                rows_list, numbers = per_chunk.setdefault(chunk_id, ([], []))
                rows_list.append(rows)
                numbers.append(number)
        # chunks grouped by request context; evaluation runs over all of them at once
        by_context: dict[tuple[tuple[str, str], ...], tuple[Batch, list[Batch], list[np.ndarray]]]
        by_context = {}
        for chunk_id in sorted(per_chunk):
            rows_list, numbers = per_chunk[chunk_id]
            rows = np.concatenate(rows_list)
            group = np.repeat(np.array(numbers, np.int64), [len(r) for r in rows_list])
            order = np.argsort(rows, kind="stable")
            rows, group = rows[order], group[order]
            source = self.chunks[chunk_id].batch
            bare = Batch(source.signal, source.resources, source.scopes, source.tables)
            # the common case: every span of the chunk is due now
            piece = bare if len(rows) == source.item_count() else take_records(bare, rows)
            _, parts, part_groups = by_context.setdefault(context_key(source), (source, [], []))
            parts.append(piece)
            part_groups.append(group)
        contexts = [
            (first.context, concat(parts), np.concatenate(part_groups))
            for first, parts, part_groups in by_context.values()
        ]
        trace_set = TraceSet(
            concat([joined for _, joined, _ in contexts]),
            np.concatenate([group for _, _, group in contexts]),
            trace_ids,
            now,
        )
        decisions = self._evaluate(trace_set)

        outputs: list[Batch] = []
        for context, joined, group in contexts:
            keep = decisions[group] == SAMPLED
            if keep.any():
                out = joined if keep.all() else take_records(joined, keep)
                outputs.append(
                    Batch(out.signal, out.resources, out.scopes, out.tables, dict(context))
                )
        not_sampled = dropped = 0
        for trace_id, trace, decision in zip(trace_ids, traces, decisions.tolist(), strict=True):
            spans = self._release(trace)
            trace.decision = decision
            trace.decided_at = now
            if decision == DROPPED:
                dropped += spans
            elif decision != SAMPLED:
                not_sampled += spans
            cache = self.sampled_cache if decision == SAMPLED else self.non_sampled_cache
            if cache.put(trace_id):
                self._forget(trace_id, now)
        for decision, count in zip(*np.unique(decisions, return_counts=True), strict=True):
            name = DECISION_NAMES[int(decision)]
            sampled = "true" if decision == SAMPLED else "false"
            m.global_count_traces_sampled.labels(self.id, sampled, name).inc(int(count))
        self._dropped(not_sampled, "not_sampled")
        self._dropped(dropped, "dropped_by_policy")
        m.traces_on_memory.labels(self.id).set(len(self.traces))
        m.decision_timer_latency.labels(self.id).observe((time.perf_counter() - started) * 1e3)

        for out in outputs:
            try:
                await self.next.consume(out)
            except Exception as exc:
                # the Collector logs and moves on; we also count what was lost
                log.warning(
                    "error sending sampled spans to the next consumer: %s",
                    exc,
                    extra={"processor": self.id},
                )
                self._dropped(out.item_count(), "next_consumer_failed")
                continue
            self._outgoing(out)

    def _evaluate(self, ts: TraceSet) -> np.ndarray:
        """Final decision per trace: a drop policy's Dropped wins, then any Sampled samples
        (the first policy that samples ends the evaluation with ``sample_on_first_match``)."""
        final = np.full(ts.n, NOT_SAMPLED, np.int8)
        active = np.ones(ts.n, np.bool_)
        for policy in self.drop_policies:
            if not active.any():
                break
            got = self._run(policy, ts, active)
            hit = active & (got == DROPPED)
            final[hit] = DROPPED
            active &= ~hit
        sampled = np.zeros(ts.n, np.bool_)
        for policy in self.policies:
            asked = active & ~sampled if self.config.sample_on_first_match else active
            if not asked.any():
                continue
            got = self._run(policy, ts, asked)
            sampled |= asked & (got == SAMPLED)
        final[active & sampled] = SAMPLED
        return final

    def _run(self, policy: Policy, ts: TraceSet, active: np.ndarray) -> np.ndarray:
        got = policy.evaluate(ts, active)
        m = self.metrics
        label = self._label[policy.name]
        m.policy_execution_count.labels(self.id, label).inc(int(active.sum()))
        errors = int((active & (got == ERROR)).sum())
        if errors:
            m.policy_evaluation_error.labels(self.id).inc(errors)
        for decision in (SAMPLED, NOT_SAMPLED, DROPPED):
            hit = active & (got == decision)
            count = int(hit.sum())
            if count:
                sampled = "true" if decision == SAMPLED else "false"
                name = DECISION_NAMES[decision]
                m.count_traces_sampled.labels(self.id, label, sampled, name).inc(count)
                spans = int(ts.span_count[hit].sum())
                m.count_spans_sampled.labels(self.id, label, sampled, name).inc(spans)
        return got

    # --- counting --------------------------------------------------------------------------

    def _dropped(self, spans: int, reason: str) -> None:
        self.telemetry.processor_dropped(self.id, "traces", spans, reason)

    def _outgoing(self, batch: Batch) -> None:
        counter = self.telemetry.counter("processor_outgoing", batch.signal)
        counter.labels(self.id).inc(batch.item_count())

    def pending_spans(self) -> int:
        """Spans held waiting for a decision."""
        return sum(len(rows) for tr in self.traces.values() for _, rows in tr.parts)
