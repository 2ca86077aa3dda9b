"""`otlphttp` exporter: OTLP/HTTP (protobuf or JSON) POSTs to the next hop, over httpx."""

from __future__ import annotations

import gzip
import logging
import os
import ssl
import tempfile
import zlib

import httpx
import zstandard
from google.protobuf import json_format
from google.rpc import status_pb2

from exporters.otlp.common import RESPONSES, PartialSuccess
from exporters.otlp.config import TLSClientConfig
from exporters.otlp.errors import from_http
from exporters.otlphttp.config import OTLPHttpConfig
from otlp import jsonpb
from otlp.batch import Batch
from otlp.component import Exporter, Host
from otlp.encode import encode, encode_protobuf
from otlp.errors import ConfigError, RetryableError
from otlp.telemetry import Telemetry

log = logging.getLogger("airis.exporter.otlphttp")

CONTENT_TYPES = {"proto": "application/x-protobuf", "json": "application/json"}
_ZSTD = zstandard.ZstdCompressor()
_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def ssl_context(tls: TLSClientConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.ca_file or None, cadata=tls.ca_pem or None)
    ctx.minimum_version = _VERSIONS[tls.min_version or "1.2"]
    if tls.max_version:
        ctx.maximum_version = _VERSIONS[tls.max_version]
    cert = tls.cert_file or tls.cert_pem
    key = tls.key_file or tls.key_pem
    if cert and key:
        _load_client_cert(ctx, tls)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, tls: TLSClientConfig) -> None:
    """The client certificate for mutual TLS, from files or inline PEM (load_cert_chain only
    reads files, so inline PEM goes through a private temporary directory)."""
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, path, inline in (
            ("cert", tls.cert_file, tls.cert_pem),
            ("key", tls.key_file, tls.key_pem),
        ):
            if path:
                paths.append(path)
                continue
            target = os.path.join(tmp, name + ".pem")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(inline)
            paths.append(target)
        ctx.load_cert_chain(paths[0], paths[1])


def compress(name: str, body: bytes) -> tuple[bytes, str | None]:
    if name == "gzip":
        return gzip.compress(body, compresslevel=6), "gzip"
    if name == "zstd":
        return _ZSTD.compress(body), "zstd"
    if name in ("deflate", "zlib"):
        return zlib.compress(body), "deflate"
    if name in ("", "none"):
        return body, None
    log.warning("unsupported HTTP compression %s; sending gzip", name)
    return gzip.compress(body, compresslevel=6), "gzip"


def _error_message(response: httpx.Response) -> str:
    """The google.rpc.Status message of an error body (protobuf or JSON), else its text."""
    body = response.content
    if not body:
        return ""
    if "protobuf" in response.headers.get("content-type", ""):
        status = status_pb2.Status()
        try:
            status.ParseFromString(body)
            return status.message
        except Exception:
            pass
    return body[:512].decode(errors="replace")


class OTLPHttpExporter(Exporter):
    def __init__(
        self,
        exporter_id: str,
        config: OTLPHttpConfig,
        telemetry: Telemetry,
        signals: set[str] | None = None,
    ) -> None:
        self.id = exporter_id
        self.config = config
        self.urls = {s: config.url(s) for s in ("traces", "metrics", "logs")}
        for signal in signals or ():
            if not self.urls.get(signal):
                raise ConfigError(
                    f"exporters::{exporter_id}: endpoint or {signal}_endpoint must be set"
                )
        self.headers = {
            **config.headers,
            "Content-Type": CONTENT_TYPES[config.encoding],
            "User-Agent": "AIRIS/0.1 (OTLP/HTTP exporter)",
        }
        self.partial = PartialSuccess(exporter_id, telemetry)
        self._client: httpx.AsyncClient | None = None

    async def start(self, host: Host | None = None) -> None:
        limits = httpx.Limits(
            max_connections=self.config.max_conns_per_host or None,
            max_keepalive_connections=0
            if self.config.disable_keep_alives
            else (self.config.max_idle_conns_per_host or self.config.max_idle_conns or 100),
            keepalive_expiry=self.config.idle_conn_timeout or 90.0,
        )
        self._client = httpx.AsyncClient(
            verify=ssl_context(self.config.tls),
            timeout=self.config.timeout or None,
            limits=limits,
            proxy=self.config.proxy_url or None,
        )

    async def shutdown(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _body(self, batch: Batch) -> bytes:
        if self.config.encoding == "json":
            return jsonpb.message_to_json(encode(batch))
        return encode_protobuf(batch)

    async def export(self, batch: Batch) -> None:
        client = self._client
        if client is None:
            raise RetryableError(f"exporter {self.id} is not started", retry_after=1.0)
        body, encoding = compress(self.config.compression, self._body(batch))
        headers = dict(self.headers)
        if encoding:
            headers["Content-Encoding"] = encoding
        extensions = {}
        if self.config.tls.server_name_override:
            extensions["sni_hostname"] = self.config.tls.server_name_override
        try:
            response = await client.post(
                self.urls[batch.signal], content=body, headers=headers, extensions=extensions
            )
        except httpx.TimeoutException as err:
            raise RetryableError(f"timeout: {err!r}") from None
        except httpx.HTTPError as err:
            raise RetryableError(f"HTTP request failed: {err!r}") from None
        if not 200 <= response.status_code < 300:
            raise from_http(
                response.status_code, _error_message(response), response.headers.get("retry-after")
            )
        self._partial_success(batch.signal, response)

    def _partial_success(self, signal: str, response: httpx.Response) -> None:
        body = response.content
        if not body:
            return
        message = RESPONSES[signal]()
        try:
            if "json" in response.headers.get("content-type", ""):
                json_format.Parse(body, message, ignore_unknown_fields=True)
            else:
                message.ParseFromString(body)
        except Exception:  # accepted; an odd response body is not a failure
            return
        self.partial.record(signal, message)
