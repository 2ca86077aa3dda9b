"""Server TLS from configtls settings: grpc server credentials and an ssl.SSLContext for HTTP.

A client CA (client_ca_file) turns on mutual TLS: clients must present a certificate it signed.

Rotation (`reload_interval`): the files are checked (modification time and size) at most once
per interval, when a client connects; a changed set is loaded and used for new connections,
open connections keep theirs, and a set that fails to load is logged and the old one kept.
gRPC asks a fetcher for the current certificates on every handshake
(dynamic_ssl_server_credentials); HTTP swaps the SSLContext of each new connection from the
handshake's server-name callback, which OpenSSL calls with or without SNI.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
import time
from pathlib import Path

import grpc

from receivers.otlp.config import TLSServerConfig

log = logging.getLogger("airis.receiver.otlp")

_SSL_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def _pem(path: str, inline: str) -> bytes:
    return Path(path).read_bytes() if path else inline.encode()


class FileWatch:
    """Tells, at most once per interval, whether any of the TLS files changed."""

    def __init__(self, cfg: TLSServerConfig) -> None:
        self.paths = [p for p in (cfg.cert_file, cfg.key_file, cfg.client_ca_file) if p]
        self.interval = cfg.reload_interval
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = self._read_stamp()

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and bool(self.paths)

    def _read_stamp(self) -> tuple[tuple[int, int], ...] | None:
        try:
            stats = [os.stat(p) for p in self.paths]
        except OSError:
            return None
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def changed(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._checked < self.interval:
                return False
            self._checked = now
            stamp = self._read_stamp()
            if stamp is None or stamp == self._stamp:
                return False
            self._stamp = stamp
            return True


def _grpc_config(cfg: TLSServerConfig) -> grpc.ServerCertificateConfiguration:
    client_ca = Path(cfg.client_ca_file).read_bytes() if cfg.client_ca_file else None
    return grpc.ssl_server_certificate_configuration(
        [(_pem(cfg.key_file, cfg.key_pem), _pem(cfg.cert_file, cfg.cert_pem))],
        root_certificates=client_ca,
    )


def grpc_credentials(cfg: TLSServerConfig) -> grpc.ServerCredentials:
    watch = FileWatch(cfg)
    require_client = bool(cfg.client_ca_file)
    if not watch.enabled:
        client_ca = Path(cfg.client_ca_file).read_bytes() if cfg.client_ca_file else None
        return grpc.ssl_server_credentials(
            [(_pem(cfg.key_file, cfg.key_pem), _pem(cfg.cert_file, cfg.cert_pem))],
            root_certificates=client_ca,
            require_client_auth=require_client,
        )
    initial = _grpc_config(cfg)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # runs on a grpc-core thread for every handshake: cheap unless the files changed
        if not watch.changed():
            return None
        try:
            fresh = _grpc_config(cfg)
        except Exception as exc:
            log.error("cannot reload the gRPC TLS certificates", extra={"error": str(exc)})
            return None
        log.info("gRPC TLS certificates reloaded", extra={"files": watch.paths})
        return fresh

    return grpc.dynamic_ssl_server_credentials(
        initial, fetch, require_client_authentication=require_client
    )


def _build_context(cfg: TLSServerConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # configtls defaults to TLS 1.2 as the minimum
    ctx.minimum_version = _SSL_VERSIONS[cfg.min_version or "1.2"]
    if cfg.max_version:
        ctx.maximum_version = _SSL_VERSIONS[cfg.max_version]
    if cfg.cert_file and cfg.key_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    else:
        # load_cert_chain only reads files: spill inline PEM to a private temp file
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            for path, data in (
                (cert, _pem(cfg.cert_file, cfg.cert_pem)),
                (key, _pem(cfg.key_file, cfg.key_pem)),
            ):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            ctx.load_cert_chain(cert, key)
    if cfg.client_ca_file:
        ctx.load_verify_locations(cafile=cfg.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def ssl_context(cfg: TLSServerConfig) -> ssl.SSLContext:
    outer = _build_context(cfg)
    watch = FileWatch(cfg)
    if not watch.enabled:
        return outer
    current = [outer]

    def pick(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if watch.changed():
            try:
                current[0] = _build_context(cfg)
                log.info("HTTP TLS certificates reloaded", extra={"files": watch.paths})
            except Exception as exc:
                log.error("cannot reload the HTTP TLS certificates", extra={"error": str(exc)})
        if current[0] is not outer:
            sslobj.context = current[0]

    outer.sni_callback = pick
    return outer
