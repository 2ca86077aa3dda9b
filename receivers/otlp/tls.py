"""Server TLS from configtls settings: grpc server credentials and an ssl.SSLContext for HTTP.

A client CA (client_ca_file) turns on mutual TLS: clients must present a certificate it signed.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

import grpc

from receivers.otlp.config import TLSServerConfig

_SSL_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def _pem(path: str, inline: str) -> bytes:
    return Path(path).read_bytes() if path else inline.encode()


def grpc_credentials(cfg: TLSServerConfig) -> grpc.ServerCredentials:
    client_ca = Path(cfg.client_ca_file).read_bytes() if cfg.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_pem(cfg.key_file, cfg.key_pem), _pem(cfg.cert_file, cfg.cert_pem))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def ssl_context(cfg: TLSServerConfig) -> ssl.SSLContext:
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
