"""The OTLP receiver: one gRPC and one HTTP server (either optional) feeding the pipelines.

Both transports decode a request into a Batch and call `export`, which hands it to the
signal's consumer, counts accepted/refused items, and turns consumer errors into a
`Failure` (see status.py) or a partial success.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

import grpc
from prometheus_client import Counter

from otlp import decode as codec
from otlp.auth import (
    PermissionDenied,
    Principal,
    ServerAuthenticator,
    Unauthenticated,
    is_authenticator,
)
from otlp.batch import Batch
from otlp.component import CreateSettings, Host, Receiver
from otlp.errors import ConsumeError, InvalidRequestError, PermanentError
from otlp.limits import Limiter, LimitExceeded, replace_invalid_utf8
from otlp.telemetry import Telemetry
from receivers.otlp import status
from receivers.otlp.config import AuthConfig, OTLPReceiverConfig

if TYPE_CHECKING:
    from receivers.otlp.grpc import GRPCServer
    from receivers.otlp.http import HTTPServer

log = logging.getLogger("airis.receiver.otlp")

# what a client is told: nothing that helps guess credentials
UNAUTHENTICATED = status.Failure(grpc.StatusCode.UNAUTHENTICATED, 401, "unauthenticated")


def forbidden() -> status.Failure:
    return status.Failure(grpc.StatusCode.PERMISSION_DENIED, 403, "permission denied")


class SecurityCounters:
    """airis_receiver_* self-metrics of authentication, authorisation and limits."""

    def __init__(self, registry: object) -> None:
        self.auth_failures = Counter(
            "airis_receiver_auth_failures",
            "Requests refused by authentication (unauthenticated) or authorisation (forbidden)",
            ("receiver", "transport", "reason"),
            registry=registry,
        )
        self.limit_refused = Counter(
            "airis_receiver_limit_refused_requests",
            "Requests refused because they break a receiver limit",
            ("receiver", "transport", "limit"),
            registry=registry,
        )
        self.truncated = Counter(
            "airis_receiver_truncated",
            "Attributes dropped (attribute_count_limit) and values cut "
            "(attribute_value_length_limit) by SDK-style truncation",
            ("receiver", "transport", "kind"),
            registry=registry,
        )


_SECURITY: weakref.WeakKeyDictionary[Telemetry, SecurityCounters] = weakref.WeakKeyDictionary()


def security_counters(telemetry: Telemetry) -> SecurityCounters:
    found = _SECURITY.get(telemetry)
    if found is None:
        found = _SECURITY[telemetry] = SecurityCounters(telemetry.registry)
    return found


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
        self.limiter = Limiter(config.limits)
        self._decoded: tuple[Batch | None, tuple[int, int, int, int] | None] = (None, None)
        # transport → the authenticator extension, resolved at start
        self.authenticators: dict[str, ServerAuthenticator] = {}
        self.security = security_counters(settings.telemetry)

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
        self.security = security_counters(host.telemetry)
        protocols = self.config.protocols
        for transport, proto in (("grpc", protocols.grpc), ("http", protocols.http)):
            if proto is not None and proto.auth is not None:
                self.authenticators[transport] = self._authenticator(host, proto.auth)
        for signal in self.consumers:
            for transport in ("grpc", "http"):
                self._counters[(signal, transport)] = (
                    self.telemetry.counter("receiver_accepted", signal).labels(self.id, transport),
                    self.telemetry.counter("receiver_refused", signal).labels(self.id, transport),
                )
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

    def _authenticator(self, host: Host, auth: AuthConfig) -> ServerAuthenticator:
        ext = host.extension(auth.authenticator)
        if ext is None or not is_authenticator(ext):
            raise ValueError(
                f"receiver {self.id}: failed to resolve authenticator {auth.authenticator!r}: "
                "not an enabled server authenticator extension"
            )
        return ext  # type: ignore[no-any-return]

    async def authenticate(
        self, transport: str, signal: str, headers: Mapping[str, list[str]]
    ) -> Principal | None:
        """Before the body is decoded: who is calling and may they send this signal?
        None when the transport has no authenticator. Raises status.Failure."""
        authenticator = self.authenticators.get(transport)
        if authenticator is None:
            return None
        try:
            principal = await authenticator.authenticate(headers)
        except Unauthenticated as exc:
            self.security.auth_failures.labels(self.id, transport, "unauthenticated").inc()
            log.debug("authentication failed", extra={"receiver": self.id, "reason": str(exc)})
            raise UNAUTHENTICATED from None
        try:
            if signal:  # "" for an unknown HTTP path: 404 follows
                principal.check_signal(signal)
        except PermissionDenied as exc:
            self.security.auth_failures.labels(self.id, transport, "forbidden").inc()
            log.info("permission denied", extra={"receiver": self.id, "reason": str(exc)})
            raise forbidden() from None
        return principal

    def decode(self, signal: str, body: bytes, json: bool, transport: str) -> Batch:
        """Decode a request body; with `limits.invalid_utf8: replace`, a request refused for
        any reason is retried once with its invalid UTF-8 replaced (counted when that works)."""
        decoder = codec.decode_json if json else codec.decode_protobuf
        try:
            batch = decoder(signal, body)
            self._decoded = (batch, codec.wire_sizes())
            return batch
        except InvalidRequestError:
            if self.config.limits.invalid_utf8 != "replace":
                raise
            fixed: bytes | None
            if json:
                fixed = body.decode("utf-8", "replace").encode()
                fixed = None if fixed == body else fixed
            else:
                try:
                    fixed = replace_invalid_utf8(signal, body)
                except InvalidRequestError:
                    fixed = None
            if fixed is None:
                raise
        batch = decoder(signal, fixed)
        self.security.truncated.labels(self.id, transport, "invalid_utf8").inc()
        return batch

    def admit(
        self,
        batch: Batch,
        transport: str,
        principal: Principal | None,
        body_size: int | None = None,
    ) -> None:
        """After decoding: limits and truncation, then the principal's tenant rules.
        Raises status.Failure (400 naming the limit, or 403)."""
        # the decoder's measurements, when this batch is the one it just produced
        decoded, sizes = self._decoded
        self._decoded = (None, None)
        try:
            done = self.limiter.apply(batch, body_size, sizes if decoded is batch else None)
        except LimitExceeded as exc:
            self.security.limit_refused.labels(self.id, transport, exc.limit).inc()
            self._counters[(batch.signal, transport)][1].inc(batch.item_count())
            raise status.invalid(str(exc)) from None
        if done.attributes:
            self.security.truncated.labels(self.id, transport, "attributes").inc(done.attributes)
        if done.values:
            self.security.truncated.labels(self.id, transport, "values").inc(done.values)
        if principal is None:
            return
        try:
            principal.apply(batch)
        except PermissionDenied as exc:
            self.security.auth_failures.labels(self.id, transport, "forbidden").inc()
            log.info("permission denied", extra={"receiver": self.id, "reason": str(exc)})
            raise forbidden() from None

    async def export(
        self,
        signal: str,
        batch: Batch,
        transport: str,
        principal: Principal | None = None,
        body_size: int | None = None,
    ) -> tuple[int, str] | None:
        """Push one decoded request. Returns None on success, (rejected, message) for a partial
        success; raises status.Failure when the client should be told of an error."""
        items = batch.item_count()
        if items == 0:
            # as the Collector: an empty request succeeds without reaching the pipeline
            return None
        self.admit(batch, transport, principal, body_size)
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
