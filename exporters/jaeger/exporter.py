"""`jaeger` exporter: spans to Jaeger over its api_v2 gRPC (`protocol: grpc`) or over OTLP/gRPC
(`protocol: otlp`, which is the `otlp` exporter's code with this exporter's settings)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from grpc import aio

from exporters.jaeger.config import JaegerConfig
from exporters.jaeger.translate import MAX_REQUEST_BYTES, Request, post_spans_requests
from exporters.otlp.errors import from_rpc_error
from exporters.otlp.exporter import (
    OTLPGrpcExporter,
    channel_credentials,
    channel_options,
    compression_of,
    grpc_target,
)
from otlp.batch import TRACES, Batch
from otlp.component import Exporter, Host
from otlp.errors import ConfigError, PermanentError, RetryableError
from otlp.telemetry import Telemetry

log = logging.getLogger("airis.exporter.jaeger")

POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"


def _encode(batch: Batch) -> list[Request]:
    return list(post_spans_requests(batch, MAX_REQUEST_BYTES))


class JaegerExporter(Exporter):
    def __init__(self, exporter_id: str, config: JaegerConfig, telemetry: Telemetry) -> None:
        if not config.endpoint:
            raise ConfigError(f"exporters::{exporter_id}: endpoint: must be set")
        self.id = exporter_id
        self.config = config
        self.otlp: OTLPGrpcExporter | None = None
        if config.protocol == "otlp":
            self.otlp = OTLPGrpcExporter(exporter_id, config, telemetry)
            return
        self.target, scheme_tls = grpc_target(config.endpoint)
        self.secure = not config.tls.insecure if scheme_tls is None else scheme_tls
        self.metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self.compression = compression_of(exporter_id, config.compression or "none")
        self._channel: aio.Channel | None = None
        self._post: Any = None
        if self.secure and config.tls.insecure_skip_verify:
            log.warning(
                "grpcio cannot skip server certificate verification; verifying against "
                "tls.ca_file (or the system roots)",
                extra={"exporter": exporter_id},
            )

    async def start(self, host: Host | None = None) -> None:
        if self.otlp is not None:
            await self.otlp.start(host)
            return
        options = channel_options(self.config)
        if self.secure:
            self._channel = aio.secure_channel(
                self.target, channel_credentials(self.config.tls), options=options
            )
        else:
            self._channel = aio.insecure_channel(self.target, options=options)
        # bytes in, bytes out: the request is encoded straight from the columns
        self._post = self._channel.unary_unary(POST_SPANS)

    async def shutdown(self) -> None:
        if self.otlp is not None:
            await self.otlp.shutdown()
            return
        if self._channel is not None:
            await self._channel.close(grace=1.0)
            self._channel = None
            self._post = None

    async def export(self, batch: Batch) -> None:
        if batch.signal != TRACES:
            raise PermanentError(f"the jaeger exporter takes traces, not {batch.signal}")
        if self.otlp is not None:
            await self.otlp.export(batch)
            return
        if self._post is None:
            raise RetryableError(f"exporter {self.id} is not started", retry_after=1.0)
        # the encoding costs microseconds per span, mostly in Arrow and numpy kernels that
        # release the GIL: a thread (this exporter's own, see exporterhelper's bulkhead) keeps
        # large batches from stalling the receivers on the event loop
        requests = await asyncio.to_thread(_encode, batch)
        if not requests:
            return
        # one PostSpans per resource (Jaeger takes one process per Batch), sent together
        results = await asyncio.gather(
            *(self._send(request.body) for request in requests), return_exceptions=True
        )
        failures = [
            (request, result)
            for request, result in zip(requests, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if not failures:
            return
        for _, error in failures:
            if not isinstance(error, Exception):
                raise error
        retryable = [error for _, error in failures if isinstance(error, RetryableError)]
        if retryable:
            # the whole batch is retried: requests that went through are sent again
            # (at-least-once, as the Collector's jaegerexporter did)
            raise retryable[0]
        first = failures[0][1]
        if isinstance(first, PermanentError):
            raise PermanentError(str(first), rejected=sum(r.span_count for r, _ in failures))
        raise first

    async def _send(self, body: bytes) -> None:
        try:
            await self._post(
                body,
                timeout=self.config.timeout or None,
                metadata=self.metadata,
                compression=self.compression,
                wait_for_ready=self.config.wait_for_ready,
            )
        except aio.AioRpcError as err:
            raise from_rpc_error(err) from None
