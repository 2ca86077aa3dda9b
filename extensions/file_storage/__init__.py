"""`file_storage` extension: the contrib filestorage extension's config; persistent sending
queues keep their write-ahead logs in its directory."""

from __future__ import annotations

from extensions.file_storage.config import FileStorageConfig
from extensions.file_storage.extension import FileStorageExtension, sanitize
from otlp.component import EXTENSION, CreateSettings, Factory


def _create(settings: CreateSettings, config: FileStorageConfig) -> FileStorageExtension:
    return FileStorageExtension(str(settings.id), config)


factory = Factory(
    type="file_storage",
    kind=EXTENSION,
    config_model=FileStorageConfig,
    create=_create,
    signals=frozenset(),
    description="local directory for persistent sending queues (write-ahead logs)",
)

__all__ = ["FileStorageConfig", "FileStorageExtension", "factory", "sanitize"]
