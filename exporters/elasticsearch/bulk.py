"""Bulk indexing: NDJSON bodies, one `_bulk` request per flush, the response read item by
item.

A `Flusher` (one per signal) gathers the documents of concurrent `export` calls until
`flush.bytes` are buffered, `flush.interval` has passed since the first one, or every
caller that could add more is already waiting (so a lone export never waits for company
that cannot come); then one bulk request carries them all and each caller gets the outcome
of its own documents. No caller returns before its documents are indexed or given up on,
so the sending queue's at-least-once promise holds.

Outcomes per document, from the bulk response's items:
* 2xx: indexed;
* a status in `retry.retry_on_status` (default 429 and 5xx): sent again after a backoff
  (`initial_interval` doubling up to `max_interval`), up to `max_retries` times; what is
  still failing then is reported as retryable to the exporter (the queue retries later);
* any other status (mapping conflicts, bad values: 400): dropped, counted and logged with
  the error type and reason, never retried.
A request that fails as a whole (connection refused, timeout, a 429/5xx answer) is retried
the same way; a whole-request 4xx drops its documents with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from exporters.elasticsearch.documents import Doc

log = logging.getLogger("airis.exporter.elasticsearch")

INDEXED = "indexed"
DROPPED = "dropped"
RETRYABLE = "retryable"


@dataclass(slots=True)
class Outcome:
    status: str = INDEXED
    http_status: int = 200
    reason: str = ""


@dataclass(slots=True)
class BulkReply:
    """What one `_bulk` call returned: an HTTP status and the parsed body (or an error)."""

    status: int
    body: Any = None
    error: str = ""


SendBulk = Callable[[bytes], Awaitable[BulkReply]]


@dataclass(slots=True)
class RetryPolicy:
    enabled: bool
    max_retries: int
    initial_interval: float
    max_interval: float
    retry_on_status: frozenset[int]

    def delay(self, attempt: int) -> float:
        return min(self.initial_interval * (2**attempt), self.max_interval)


@dataclass(slots=True)
class Stats:
    """Per-flush tallies the exporter turns into self-metrics."""

    requests: int = 0
    request_failures: int = 0
    retried_docs: int = 0


class BulkSender:
    """Sends a list of documents with per-document retries; returns one Outcome per doc."""

    def __init__(
        self,
        send: SendBulk,
        policy: RetryPolicy,
        pipeline: str = "",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.send = send
        self.policy = policy
        self.pipeline = pipeline
        self.sleep = sleep
        self._actions: dict[str, bytes] = {}

    def _action(self, index: str) -> bytes:
        line = self._actions.get(index)
        if line is None:
            meta: dict[str, str] = {"_index": index}
            if self.pipeline:
                meta["pipeline"] = self.pipeline
            line = orjson.dumps({"create": meta}) + b"\n"
            if len(self._actions) < 4096:
                self._actions[index] = line
        return line

    def body(self, docs: list[Doc]) -> bytes:
        parts: list[bytes] = []
        for doc in docs:
            parts.append(self._action(doc.index))
            parts.append(doc.body)
            parts.append(b"\n")
        return b"".join(parts)

    async def index(self, docs: list[Doc], stats: Stats) -> list[Outcome]:
        outcomes = [Outcome() for _ in docs]
        pending = list(range(len(docs)))
        attempt = 0
        policy = self.policy
        while pending:
            reply = await self.send(self.body([docs[i] for i in pending]))
            stats.requests += 1
            retry: list[int] = []
            if reply.status < 300 and not reply.error and not isinstance(reply.body, dict):
                # a 2xx that is not a bulk response (a proxy's page): nothing is known
                reply = BulkReply(reply.status, reply.body, "unexpected bulk response")
            if reply.error or reply.status in policy.retry_on_status:
                stats.request_failures += 1
                reason = reply.error or _request_reason(reply)
                for i in pending:
                    outcomes[i] = Outcome(RETRYABLE, reply.status, reason)
                retry = pending
            elif reply.status >= 300:
                stats.request_failures += 1
                reason = _request_reason(reply)
                for i in pending:
                    outcomes[i] = Outcome(DROPPED, reply.status, reason)
            elif reply.body.get("errors"):
                items = reply.body.get("items") or []
                for pos, i in enumerate(pending):
                    result = _item_result(items[pos]) if pos < len(items) else None
                    if result is None:
                        outcomes[i] = Outcome(RETRYABLE, 0, "no item in the bulk response")
                        retry.append(i)
                        continue
                    status, reason = result
                    if 200 <= status < 300:
                        outcomes[i] = Outcome(INDEXED, status)
                    elif status in policy.retry_on_status:
                        outcomes[i] = Outcome(RETRYABLE, status, reason)
                        retry.append(i)
                    else:
                        outcomes[i] = Outcome(DROPPED, status, reason)
            else:
                for i in pending:
                    outcomes[i] = Outcome(INDEXED, 200)
            if not retry or not policy.enabled or attempt >= policy.max_retries:
                break
            stats.retried_docs += len(retry)
            await self.sleep(policy.delay(attempt))
            attempt += 1
            pending = retry
        return outcomes


def _item_result(item: dict[str, Any]) -> tuple[int, str] | None:
    if not item:
        return None
    result = next(iter(item.values()))
    status = int(result.get("status", 0))
    error = result.get("error")
    if not error:
        return status, ""
    if isinstance(error, dict):
        reason = f"{error.get('type', '')}: {error.get('reason', '')}"
        caused = error.get("caused_by")
        if isinstance(caused, dict) and caused.get("reason"):
            reason += f" (caused by {caused.get('type', '')}: {caused.get('reason')})"
        return status, reason
    return status, str(error)


def _request_reason(reply: BulkReply) -> str:
    body = reply.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return f"HTTP {reply.status}: {err.get('type', '')}: {err.get('reason', '')}"
    text = body if isinstance(body, str) else orjson.dumps(body).decode() if body else ""
    return f"HTTP {reply.status}: {text[:300]}"


@dataclass(eq=False, slots=True)
class _Waiter:
    docs: list[Doc]
    future: asyncio.Future[list[Outcome]]


@dataclass(slots=True)
class _Buffer:
    waiters: list[_Waiter] = field(default_factory=list)
    nbytes: int = 0


class Flusher:
    """Coalesces concurrent submissions into bulk requests (see the module docstring)."""

    def __init__(
        self,
        sender: BulkSender,
        flush_bytes: int,
        interval: float,
        max_waiters: int,
        workers: asyncio.Semaphore,
        on_flush: Callable[[Stats], None],
    ) -> None:
        self.sender = sender
        self.flush_bytes = flush_bytes
        self.interval = interval
        self.max_waiters = max(1, max_waiters)
        self.workers = workers
        self.on_flush = on_flush
        self._buffer = _Buffer()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, docs: list[Doc]) -> list[Outcome]:
        if not docs:
            return []
        loop = asyncio.get_running_loop()
        waiter = _Waiter(docs, loop.create_future())
        size = sum(len(d.body) for d in docs) + 64 * len(docs)
        if size >= self.flush_bytes:
            # bigger than a flush by itself: its own requests, split at flush.bytes
            self._spawn(self._flush_chunks(waiter))
        else:
            if self._buffer.nbytes + size > self.flush_bytes:
                self._flush_now()
            self._buffer.waiters.append(waiter)
            self._buffer.nbytes += size
            if (
                self._buffer.nbytes >= self.flush_bytes
                or len(self._buffer.waiters) >= self.max_waiters
                or self.interval <= 0
            ):
                self._flush_now()
            elif self._timer is None:
                self._timer = loop.call_later(self.interval, self._flush_now)
        return await waiter.future

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        buffer, self._buffer = self._buffer, _Buffer()
        if buffer.waiters:
            self._spawn(self._flush(buffer.waiters))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, waiters: list[_Waiter]) -> None:
        docs = [d for w in waiters for d in w.docs]
        stats = Stats()
        try:
            async with self.workers:
                outcomes = await self.sender.index(docs, stats)
        except BaseException as exc:  # cancelled or a bug: every caller learns of it
            for w in waiters:
                if not w.future.done():
                    w.future.set_exception(
                        exc if isinstance(exc, Exception) else asyncio.CancelledError()
                    )
            if not isinstance(exc, Exception):
                raise
            return
        self.on_flush(stats)
        pos = 0
        for w in waiters:
            n = len(w.docs)
            if not w.future.done():
                w.future.set_result(outcomes[pos : pos + n])
            pos += n

    async def _flush_chunks(self, waiter: _Waiter) -> None:
        outcomes: list[Outcome] = []
        stats = Stats()
        try:
            chunk: list[Doc] = []
            size = 0
            for doc in waiter.docs:
                doc_size = len(doc.body) + 64
                if chunk and size + doc_size > self.flush_bytes:
                    async with self.workers:
                        outcomes += await self.sender.index(chunk, stats)
                    chunk, size = [], 0
                chunk.append(doc)
                size += doc_size
            if chunk:
                async with self.workers:
                    outcomes += await self.sender.index(chunk, stats)
        except BaseException as exc:
            if not waiter.future.done():
                waiter.future.set_exception(
                    exc if isinstance(exc, Exception) else asyncio.CancelledError()
                )
            if not isinstance(exc, Exception):
                raise
            return
        self.on_flush(stats)
        if not waiter.future.done():
            waiter.future.set_result(outcomes)

    async def close(self) -> None:
        """Flush what is buffered and wait for requests in flight."""
        self._flush_now()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
