"""The `elasticsearch` exporter: columnar batches -> bulk requests to Elasticsearch or
OpenSearch, over elastic_transport (node pool, TLS, gzip) rather than the `elasticsearch`
client, which refuses servers that do not announce themselves as Elasticsearch.

One instance serves every pipeline it is named in; the runtime's sending queue, retries
and circuit breaker sit in front of `export` (one queue per signal), so a dead cluster
only fills this exporter's queues.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import weakref
from collections import OrderedDict
from urllib.parse import urlsplit

from elastic_transport import (
    AsyncTransport,
    HttpxAsyncHttpNode,
    NodeConfig,
    OrjsonSerializer,
    TransportError,
)
from prometheus_client import Counter

from exporters.elasticsearch.bulk import (
    DROPPED,
    INDEXED,
    RETRYABLE,
    BulkReply,
    BulkSender,
    Flusher,
    RetryPolicy,
    Stats,
)
from exporters.elasticsearch.config import ElasticsearchConfig
from exporters.elasticsearch.documents import DocumentBuilder
from exporters.elasticsearch.templates import (
    COMPONENT,
    analyzer_type,
    component_template,
    index_templates,
    nori_available,
)
from exporters.otlphttp.exporter import ssl_context
from otlp.batch import SIGNALS, Batch
from otlp.component import CreateSettings, Exporter, Host
from otlp.errors import PermanentError, RetryableError
from otlp.telemetry import Telemetry

log = logging.getLogger("airis.exporter.elasticsearch")

# batches with some documents indexed, so a retry by the queue sends only the rest
_PROGRESS_LIMIT = 256
_COUNTERS: weakref.WeakKeyDictionary[Telemetry, tuple[Counter, Counter]] = (
    weakref.WeakKeyDictionary()
)


def _counters(telemetry: Telemetry) -> tuple[Counter, Counter]:
    """otelcol_elasticsearch_docs_processed{exporter, outcome} and
    otelcol_elasticsearch_bulk_requests{exporter, outcome}, after the Collector's
    otelcol.elasticsearch.docs.processed / bulk_requests.count."""
    found = _COUNTERS.get(telemetry)
    if found is None:
        found = _COUNTERS[telemetry] = (
            Counter(
                "otelcol_elasticsearch_docs_processed",
                "Documents processed by the Elasticsearch exporter, by outcome",
                ("exporter", "outcome"),
                registry=telemetry.registry,
            ),
            Counter(
                "otelcol_elasticsearch_bulk_requests",
                "Bulk requests sent by the Elasticsearch exporter, by outcome",
                ("exporter", "outcome"),
                registry=telemetry.registry,
            ),
        )
    return found


def auth_headers(config: ElasticsearchConfig) -> dict[str, str]:
    """The Authorization header for basic (user/password), ApiKey or Bearer auth."""
    if config.api_key:
        return {"authorization": f"ApiKey {config.api_key}"}
    if config.bearer_token:
        return {"authorization": f"Bearer {config.bearer_token}"}
    if config.user or config.password:
        token = base64.b64encode(f"{config.user}:{config.password}".encode()).decode()
        return {"authorization": f"Basic {token}"}
    return {}


def node_configs(config: ElasticsearchConfig) -> list[NodeConfig]:
    headers = {k.lower(): v for k, v in config.headers.items()}
    headers.update(auth_headers(config))
    nodes = []
    for url in config.resolved_endpoints():
        parts = urlsplit(url)
        https = parts.scheme == "https"
        kwargs: dict[str, object] = {}
        if https:
            kwargs["ssl_context"] = ssl_context(config.tls)
            if config.tls.server_name_override:
                kwargs["ssl_assert_hostname"] = config.tls.server_name_override
        nodes.append(
            NodeConfig(
                scheme=parts.scheme,
                host=parts.hostname or "localhost",
                port=parts.port or (443 if https else 80),
                path_prefix=parts.path.rstrip("/"),
                headers=headers,
                request_timeout=config.timeout or None,
                http_compress=config.compression == "gzip",
                **kwargs,  # type: ignore[arg-type]
            )
        )
    return nodes


class ElasticsearchExporter(Exporter):
    def __init__(self, settings: CreateSettings, config: ElasticsearchConfig) -> None:
        self.id = str(settings.id)
        self.config = config
        self.telemetry = settings.telemetry
        self.signals = set(settings.signals) or set(SIGNALS)
        self.builder = DocumentBuilder(config)
        self.transport: AsyncTransport | None = None
        self.analyzer = ""
        self._flushers: dict[str, Flusher] = {}
        self._templates_pending = False
        self._templates_lock = asyncio.Lock()
        # id(batch) -> (batch, positions of documents done, items dropped so far)
        self._progress: OrderedDict[int, tuple[Batch, set[int], set[int]]] = OrderedDict()
        self._docs, self._requests = _counters(self.telemetry)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        cfg = self.config
        nodes = node_configs(cfg)
        self.transport = AsyncTransport(
            nodes,
            node_class=HttpxAsyncHttpNode,
            serializers={"application/json": OrjsonSerializer()},
            # connection errors fail over to the next endpoint; status retries and backoff
            # are done per document by BulkSender
            max_retries=len(nodes) - 1,
            retry_on_status=(),
            retry_on_timeout=False,
            meta_header=False,
        )
        if cfg.discover.on_start or cfg.discover.interval:
            log.warning(
                "discover (node sniffing) is not supported; using the configured endpoints",
                extra={"exporter": self.id},
            )
        policy = RetryPolicy(
            enabled=cfg.retry.enabled,
            max_retries=cfg.retry.max_retries if cfg.retry.enabled else 0,
            initial_interval=cfg.retry.initial_interval,
            max_interval=cfg.retry.max_interval,
            retry_on_status=frozenset(cfg.retry.retry_on_status),
        )
        sender = BulkSender(self._send_bulk, policy, cfg.pipeline)
        workers = asyncio.Semaphore(cfg.num_workers or os.cpu_count() or 1)
        # every queue worker of a signal may wait in one flush; with the queue off the
        # callers are the pipeline itself, so flush each call at once
        queue = cfg.sending_queue
        waiters = queue.num_consumers if queue.enabled else 1
        for signal in self.signals:
            self._flushers[signal] = Flusher(
                sender, cfg.flush.bytes, cfg.flush.interval, waiters, workers, self._on_flush
            )
        self._templates_pending = cfg.templates.create
        if self._templates_pending:
            try:
                await self._install_templates()
            except RetryableError as exc:
                # the cluster may come up later: exports wait for the templates (queued)
                log.warning(
                    "Cluster not reachable to install index templates; will retry before "
                    "the first export",
                    extra={"exporter": self.id, "error": str(exc)},
                )

    async def shutdown(self) -> None:
        for flusher in self._flushers.values():
            await flusher.close()
        if self.transport is not None:
            await self.transport.close()
            self.transport = None

    # --- templates -------------------------------------------------------------------------
    async def _install_templates(self) -> None:
        """Detect nori, then PUT the component and index templates. Unreachable cluster:
        RetryableError; a template the cluster refuses: RuntimeError (a config problem)."""
        cfg = self.config
        async with self._templates_lock:
            if not self._templates_pending:
                return
            try:
                has_nori = False
                if cfg.templates.analyzer == "auto":
                    status, body = await self._request("GET", "/_nodes/plugins")
                    if status != 200:
                        raise RetryableError(f"GET /_nodes/plugins answered {status}: {body}")
                    has_nori = nori_available(body)  # type: ignore[arg-type]
                self.analyzer = analyzer_type(cfg.templates, has_nori)
                puts = [
                    (
                        f"/_component_template/{COMPONENT}",
                        component_template(cfg.templates, self.analyzer),
                    )
                ]
                for name, body in index_templates(cfg, self.signals).items():
                    puts.append((f"/_index_template/{name}", body))
                for path, body in puts:
                    status, reply = await self._request("PUT", path, body)
                    if status == 429 or status >= 500:
                        raise RetryableError(f"PUT {path} answered {status}: {reply}")
                    if status >= 300:
                        raise RuntimeError(
                            f"exporter {self.id}: PUT {path} answered {status}: {reply}"
                        )
            except TransportError as exc:
                raise RetryableError(f"installing index templates: {exc}") from exc
            self._templates_pending = False
            log.info(
                "Installed index templates",
                extra={"exporter": self.id, "analyzer": self.analyzer},
            )

    async def _request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        assert self.transport is not None
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        resp = await self.transport.perform_request(method, path, body=body, headers=headers)
        return resp.meta.status, resp.body

    # --- export ----------------------------------------------------------------------------
    async def _send_bulk(self, body: bytes) -> BulkReply:
        assert self.transport is not None
        try:
            resp = await self.transport.perform_request(
                "POST",
                "/_bulk",
                body=body,
                headers={"content-type": "application/x-ndjson", "accept": "application/json"},
            )
        except TransportError as exc:
            return BulkReply(0, None, f"{type(exc).__name__}: {exc}")
        return BulkReply(resp.meta.status, resp.body)

    def _on_flush(self, stats: Stats) -> None:
        failed = stats.request_failures
        if stats.requests - failed:
            self._requests.labels(self.id, "success").inc(stats.requests - failed)
        if failed:
            self._requests.labels(self.id, "failed").inc(failed)
        if stats.retried_docs:
            self._docs.labels(self.id, "retried").inc(stats.retried_docs)

    async def export(self, batch: Batch) -> None:
        if self.transport is None:
            raise RetryableError(f"exporter {self.id} is not started")
        if self._templates_pending:
            await self._install_templates()
        key = id(batch)
        entry = self._progress.get(key)
        if entry is not None and entry[0] is not batch:
            entry = None
        done: set[int] = entry[1] if entry is not None else set()
        dropped_items: set[int] = entry[2] if entry is not None else set()
        docs = self.builder.build(batch)
        positions = [n for n in range(len(docs)) if n not in done]
        if not positions:
            return
        outcomes = await self._flushers[batch.signal].submit([docs[n] for n in positions])
        indexed = dropped = 0
        retry_reason = ""
        reasons: dict[tuple[int, str], int] = {}
        for n, outcome in zip(positions, outcomes, strict=True):
            if outcome.status == INDEXED:
                done.add(n)
                indexed += 1
            elif outcome.status == DROPPED:
                done.add(n)
                dropped += 1
                dropped_items.add(docs[n].item)
                key_ = (outcome.http_status, outcome.reason)
                reasons[key_] = reasons.get(key_, 0) + 1
            elif outcome.status == RETRYABLE:
                retry_reason = retry_reason or f"HTTP {outcome.http_status}: {outcome.reason}"
        if indexed:
            self._docs.labels(self.id, "success").inc(indexed)
        if dropped:
            self._docs.labels(self.id, "failed_client").inc(dropped)
            for (status, reason), count in reasons.items():
                log.error(
                    "Documents rejected by the cluster; dropping them",
                    extra={
                        "exporter": self.id,
                        "data_type": batch.signal,
                        "status": status,
                        "reason": reason,
                        "dropped_documents": count,
                    },
                )
        if len(done) < len(docs):
            self._docs.labels(self.id, "failed_server").inc(len(docs) - len(done))
            # dropped items are counted when the batch completes: if it never does, the
            # runtime counts the whole batch as failed
            self._remember(batch, done, dropped_items)
            raise RetryableError(
                f"{len(docs) - len(done)} of {len(docs)} documents not indexed: {retry_reason}"
            )
        self._progress.pop(key, None)
        if entry is None and not indexed and len(dropped_items) == batch.item_count():
            # nothing of this batch went in: the runtime counts it as failed (and logs it)
            raise PermanentError(f"all {dropped} documents rejected", rejected=dropped)
        self._count_dropped(batch, dropped_items)

    def _count_dropped(self, batch: Batch, items: set[int]) -> None:
        """Items (spans, log records, points) dropped from a batch the runtime counts as
        sent: otelcol_exporter_send_failed_* gets them here."""
        if items:
            counter = self.telemetry.counter("exporter_send_failed", batch.signal)
            counter.labels(self.id).inc(len(items))

    def _remember(self, batch: Batch, done: set[int], dropped: set[int]) -> None:
        self._progress[id(batch)] = (batch, done, dropped)
        self._progress.move_to_end(id(batch))
        while len(self._progress) > _PROGRESS_LIMIT:
            self._progress.popitem(last=False)
