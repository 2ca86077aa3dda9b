"""The `file_storage` extension: hands each component that names it its own write-ahead log
directory, named as the Collector names its storage clients (`exporter_clickhouse__traces`:
kind, type, name, then the client's own name such as the signal)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from extensions.file_storage.config import FileStorageConfig
from otlp.component import Component, Host
from storage.wal import WalOptions, WriteAheadLog

log = logging.getLogger("airis.extension.file_storage")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def sanitize(name: str) -> str:
    """Every character but letters, digits, `.`, `-`, `_` becomes `~` and its code in hex
    (`/` → `~002F`), so names stay distinct and safe as file names (and `~` itself is
    escaped, so no sanitized name collides with a plain one)."""
    return _UNSAFE.sub(lambda m: f"~{ord(m.group()):04X}", name)


class FileStorageExtension(Component):
    def __init__(self, component_id: str, config: FileStorageConfig) -> None:
        self.id = component_id
        self.config = config
        self.directory = Path(config.directory)
        self._clients: dict[str, WriteAheadLog] = {}
        self._started = False

    @property
    def compression(self) -> str:
        return self.config.wal.compression

    async def start(self, host: Host) -> None:
        self.directory = self.config.ensure_directory()
        self._started = True

    def client_names(self, kind: str, id_prefix: str) -> list[str]:
        """What follows the storage name of `wal(kind, id_prefix…)` for every log in this
        directory (from any run), e.g. to find queues a previous run left behind:
        `id_prefix="loadbalancing/"` lists `10.0.0.7:4317_traces` for the log of
        `wal("exporter", "loadbalancing/10.0.0.7:4317", "traces")`."""
        type_, _, component_name = id_prefix.partition("/")
        prefix = f"{kind}_{type_}_{component_name}"
        found = []
        for path in self.directory.iterdir() if self.directory.is_dir() else ():
            raw = re.sub(r"~([0-9A-F]{4})", lambda m: chr(int(m.group(1), 16)), path.name)
            if path.is_dir() and raw.startswith(prefix):
                found.append(raw[len(prefix) :])
        return sorted(found)

    def wal(self, kind: str, component_id: str, name: str = "") -> WriteAheadLog:
        """The write-ahead log of one client (not opened: the caller opens and closes it)."""
        if not self._started:
            raise RuntimeError(f"extension {self.id} is not started")
        type_, _, component_name = component_id.partition("/")
        raw = f"{kind}_{type_}_{component_name}" + (f"_{name}" if name else "")
        key = sanitize(raw)
        if key in self._clients:
            raise RuntimeError(f"{self.id}: storage client {raw!r} is already in use")
        wal_cfg = self.config.wal
        options = WalOptions(
            segment_size=wal_cfg.segment_bytes,
            max_bytes=wal_cfg.max_bytes,
            fsync=self.config.fsync,
            fsync_interval=wal_cfg.fsync_interval,
            lock_timeout=self.config.timeout,
        )
        wal = WriteAheadLog(self.directory / key, options)
        self._clients[key] = wal
        return wal

    async def shutdown(self) -> None:
        # clients close their logs (after their consumers stop); this catches any left open
        for wal in self._clients.values():
            await wal.close()
        self._clients.clear()
