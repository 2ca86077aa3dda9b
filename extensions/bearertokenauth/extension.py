"""The bearertokenauth extension, server side: the request's `header` must be
`<scheme> <token>` for a configured token.

Tokens are compared by their SHA-256 digests in a dict, so the time a lookup takes does not
depend on how much of a token an attacker guessed right. The token file is re-read when its
modification time or size changes, checked lazily (at most once per reload_interval) on the
request path: no watcher thread, and a rotated Kubernetes secret is picked up.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

from extensions.bearertokenauth.config import BearerTokenAuthConfig
from otlp.auth import Policy, Principal, Unauthenticated
from otlp.component import Component, Host

log = logging.getLogger("airis.extension.bearertokenauth")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class BearerTokenAuth(Component):
    def __init__(self, component_id: str, config: BearerTokenAuthConfig) -> None:
        self.id = component_id
        self.config = config
        self.header = config.header.lower()
        self.prefix = f"{config.scheme} " if config.scheme else ""
        self.policy = Policy(config.authorization) if config.authorization else None
        self._static: dict[bytes, Principal] = {}
        if config.filename and config.token:
            log.warning(
                "a filename is specified; the configured token is ignored",
                extra={"extension": component_id},
            )
        plain = list(config.tokens) + (
            [config.token] if config.token and not config.filename else []
        )
        for i, token in enumerate(plain):
            self._static[_digest(token)] = self._principal(f"token[{i}]", [], "")
        for i, client in enumerate(config.clients):
            name = client.name or f"clients[{i}]"
            self._static[_digest(client.token)] = self._principal(name, client.roles, client.tenant)
        self._from_file: dict[bytes, Principal] = {}
        self._file_stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def _principal(self, subject: str, roles: list[str], tenant: str) -> Principal:
        granted = self.policy.roles_of(roles) if self.policy else frozenset()
        return Principal(subject, granted, tenant, self.policy)

    async def start(self, host: Host) -> None:
        if self.config.filename:
            self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.config.reload_interval:
            return
        self._checked = now
        path = Path(self.config.filename)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._file_stamp:
                return
            lines = path.read_text().splitlines()
        except OSError as exc:
            if force:
                raise OSError(f"bearertokenauth {self.id}: cannot read {path}: {exc}") from exc
            log.error("cannot read the token file", extra={"extension": self.id, "error": str(exc)})
            return
        tokens = [line.strip() for line in lines if line.strip()]
        self._from_file = {
            _digest(t): self._principal(f"{os.path.basename(path)}[{i}]", [], "")
            for i, t in enumerate(tokens)
        }
        self._file_stamp = stamp
        log.info("token file loaded", extra={"extension": self.id, "tokens": len(tokens)})

    async def authenticate(self, headers: Mapping[str, list[str]]) -> Principal:
        values = headers.get(self.header)
        if not values:
            raise Unauthenticated("no credentials")
        value = values[0]
        if self.prefix:
            if not value.startswith(self.prefix):
                raise Unauthenticated("wrong scheme")
            value = value[len(self.prefix) :]
        digest = _digest(value)
        found = self._static.get(digest)
        if found is None and self.config.filename:
            self._reload()
            found = self._from_file.get(digest)
        if found is None:
            raise Unauthenticated("unknown token")
        return found
