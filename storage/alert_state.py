"""Alert state on disk: one small JSON document, replaced atomically.

The rules processor writes its alert instances (state, since when, whether and when they
were notified) and the notifications not yet delivered after every evaluation that changed
them, so a restart neither re-notifies a firing alert nor loses a resolution or a
notification that was still queued. The file is written to a temporary name, fsynced and
renamed over the old one (and the directory fsynced), so a crash leaves the old or the new
document, never a torn one; an unreadable file is set aside and logged, never a crash."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("airis.storage.alert_state")

VERSION = 1


class AlertStateFile:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict) or doc.get("version") != VERSION:
                raise ValueError("not an alert state document of this version")
            return doc
        except (orjson.JSONDecodeError, ValueError) as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            log.error(
                "alert state unreadable, starting empty",
                extra={"path": str(self.path), "moved_to": str(aside), "error": str(exc)},
            )
            return {}

    @staticmethod
    def encode(doc: dict[str, Any]) -> bytes:
        return orjson.dumps({**doc, "version": VERSION})

    def save(self, doc: dict[str, Any]) -> None:
        self.write(self.encode(doc))

    def write(self, data: bytes) -> None:
        """Replace the file with an encoded document (blocking: run it off the loop)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
