"""The OTLP receiver: one gRPC and one HTTP server (either optional) feeding the pipelines.

Both transports decode a request into a Batch and call `export`, which hands it to the
signal's consumer, counts accepted/refused items, and turns consumer errors into a
`Failure` (see status.py) or a partial success.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from otlp.batch import Batch
from otlp.component import CreateSettings, Host, Receiver
from otlp.errors import ConsumeError, PermanentError
from receivers.otlp import status
from receivers.otlp.config import OTLPReceiverConfig

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter

    from receivers.otlp.grpc import GRPCServer
    from receivers.otlp.http import HTTPServer

log = logging.getLogger("airis.receiver.otlp")


class OTLPReceiver(Receiver):
    # set by the runtime before start() when several worker processes share the ports
    reuse_port: bool = False

    def __init__(self, settings: CreateSettings, config: OTLPReceiverConfig) -> None:
        super().__init__()
        self.id = str(settings.id)
        self.config = config
        self.telemetry = settings.telemetry
        self.grpc: GRPCServer | None = None
        self.http: HTTPServer | None = None
        # (signal, transport) → (accepted, refused) counters, resolved once
        self._counters: dict[tuple[str, str], tuple[Counter, Counter]] = {}

    @property
    def grpc_port(self) -> int | None:
        """The bound gRPC port (useful with endpoint port 0)."""
        return self.grpc.port if self.grpc else None

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http else None

    async def start(self, host: Host) -> None:
        # imported here so that loading a config does not import uvicorn and the servers
        from receivers.otlp.grpc import GRPCServer
        from receivers.otlp.http import HTTPServer

        self.telemetry = host.telemetry
        for signal in self.consumers:
            for transport in ("grpc", "http"):
                self._counters[(signal, transport)] = (
                    self.telemetry.counter("receiver_accepted", signal).labels(self.id, transport),
                    self.telemetry.counter("receiver_refused", signal).labels(self.id, transport),
                )
        protocols = self.config.protocols
        if protocols.grpc is not None:
            self.grpc = GRPCServer(self, protocols.grpc)
            await self.grpc.start()
        if protocols.http is not None:
            self.http = HTTPServer(self, protocols.http)
            try:
                await self.http.start()
            except BaseException:
                self.http = None
                await self.shutdown()
                raise

    async def shutdown(self) -> None:
        http, grpc = self.http, self.grpc
        self.http = self.grpc = None
        try:
            if http is not None:
                await http.stop()
        finally:
            if grpc is not None:
                await grpc.stop()

    async def export(self, signal: str, batch: Batch, transport: str) -> tuple[int, str] | None:
        """Push one decoded request. Returns None on success, (rejected, message) for a partial
        success; raises status.Failure when the client should be told of an error."""
        items = batch.item_count()
        if items == 0:
            # as the Collector: an empty request succeeds without reaching the pipeline
            return None
        accepted, refused = self._counters[(signal, transport)]
        try:
            await self.consumers[signal].consume(batch)
        except PermanentError as exc:
            # a count the consumer does not know (0) or cannot know (> items) means all of it
            rejected = exc.rejected if 0 < exc.rejected <= items else items
            accepted.inc(items - rejected)
            refused.inc(rejected)
            log.debug("data rejected permanently", extra={"receiver": self.id, "error": str(exc)})
            return rejected, str(exc)
        except Exception as exc:
            refused.inc(items)
            if not isinstance(exc, ConsumeError):
                log.exception("consumer failed", extra={"receiver": self.id})
            raise status.from_exception(exc) from exc
        accepted.inc(items)
        return None


def create(settings: CreateSettings, config: OTLPReceiverConfig) -> OTLPReceiver:
    return OTLPReceiver(settings, config)
