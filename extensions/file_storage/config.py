"""Config of the `file_storage` extension: the contrib filestorage extension's keys, plus an
AIRIS `wal` section for the write-ahead log behind persistent sending queues.

The Collector's extension is a bbolt key-value file per client; AIRIS keeps a write-ahead
log directory per client instead (see storage/wal.py), so:

* ``directory``, ``create_directory``, ``directory_permissions``: as in the Collector.
* ``timeout``: how long to wait for another process's lock on a client's directory.
* ``fsync``: true — every acknowledged request is fdatasync'ed before the client hears
  success (concurrent requests share one fdatasync). false (the Collector's default) — data
  is written to the OS before the answer, so it survives a crash or kill -9 of AIRIS, but
  not a power loss or kernel crash (see ``wal.fsync_interval``).
* ``compaction``, ``recreate``: accepted for compatibility; the log reclaims space segment
  by segment as records are delivered, so there is nothing to compact, and a damaged tail is
  always truncated (never a reason not to start).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from otlp.component import ComponentConfig
from otlp.confmodels import Duration
from storage.codec import COMPRESSIONS

DEFAULT_DIRECTORY = "/var/lib/otelcol/file_storage"
_MIB = 1 << 20


class CompactionSettings(ComponentConfig):
    """Accepted as the Collector's keys; nothing to do for a segmented log."""

    on_start: bool = False
    on_rebound: bool = False
    directory: str = ""
    max_transaction_size: int = Field(65536, ge=0)
    rebound_needed_threshold_mib: int = Field(100, ge=0)
    rebound_trigger_threshold_mib: int = Field(10, ge=0)
    check_interval: Duration = 5.0
    cleanup_on_start: bool = False


class WalSettings(ComponentConfig):
    """AIRIS: the write-ahead log of each persistent queue (one per exporter and signal)."""

    # segments are deleted whole once every record in them is delivered
    segment_size_mib: int = Field(16, ge=1, le=1024)
    # per queue: appends that would pass it are refused with a retryable error (0: no cap
    # besides sending_queue.queue_size)
    max_size_mib: int = Field(1024, ge=0)
    # records are the batch's Arrow tables; lz4/zstd trade CPU for a third or less of the bytes
    compression: str = "none"
    # with fsync false: fdatasync in the background this often, bounding what a power loss
    # can take (0: leave it to the OS)
    fsync_interval: Duration = 0.0

    @field_validator("compression")
    @classmethod
    def _compression(cls, value: str) -> str:
        if value not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> WalSettings:
        if self.max_size_mib and self.max_size_mib < 2 * self.segment_size_mib:
            raise ValueError(
                "max_size_mib must be 0 or at least twice segment_size_mib "
                f"({2 * self.segment_size_mib})"
            )
        return self

    @property
    def segment_bytes(self) -> int:
        return self.segment_size_mib * _MIB

    @property
    def max_bytes(self) -> int:
        return self.max_size_mib * _MIB


class FileStorageConfig(ComponentConfig):
    directory: str = DEFAULT_DIRECTORY
    timeout: Duration = 1.0
    fsync: bool = False
    create_directory: bool = False
    directory_permissions: str = "0750"
    compaction: CompactionSettings = Field(default_factory=CompactionSettings)
    recreate: bool = False
    wal: WalSettings = Field(default_factory=WalSettings)

    @field_validator("directory_permissions")
    @classmethod
    def _permissions(cls, value: str) -> str:
        try:
            mode = int(value, 8)
        except ValueError:
            raise ValueError(
                f"directory_permissions must be octal, e.g. 0750 (got {value!r})"
            ) from None
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"directory_permissions out of range: {value!r}")
        return value

    @model_validator(mode="after")
    def _directory(self) -> FileStorageConfig:
        # as the Collector: an existing directory is required unless we may create it
        if not self.directory:
            raise ValueError("directory must be set")
        if not self.create_directory:
            path = Path(self.directory)
            if not path.exists():
                raise ValueError(
                    f"directory must exist: {self.directory} (or set create_directory: true)"
                )
            if not path.is_dir():
                raise ValueError(f"{self.directory} is not a directory")
        return self

    @property
    def permissions(self) -> int:
        return int(self.directory_permissions, 8)

    def ensure_directory(self) -> Path:
        path = Path(self.directory)
        if self.create_directory:
            path.mkdir(mode=self.permissions, parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"file_storage directory {path} is not writable")
        return path
