"""The debug exporter: writes what it receives to the log (or stdout/stderr/files)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from exporters.debug import text
from exporters.debug.config import DebugConfig
from otlp.batch import Batch
from otlp.component import Exporter, Host

log = logging.getLogger("airis.exporter.debug")

_BUCKETS = 4096


class Sampler:
    """zap's sampler: per message and one-second window, let the first `initial` through,
    then every `thereafter`-th (0: none). Messages share 4096 counters by hash, as in zap,
    so memory stays bounded whatever the messages are."""

    def __init__(
        self, initial: int, thereafter: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.initial = initial
        self.thereafter = thereafter
        self.clock = clock
        self._counts = [0] * _BUCKETS
        self._window_end = 0.0

    def allow(self, message: str) -> bool:
        now = self.clock()
        if now >= self._window_end:
            self._counts = [0] * _BUCKETS
            self._window_end = now + 1.0
        bucket = hash(message) % _BUCKETS
        self._counts[bucket] += 1
        n = self._counts[bucket]
        return n <= self.initial or (
            self.thereafter > 0 and (n - self.initial) % self.thereafter == 0
        )


class DebugExporter(Exporter):
    def __init__(
        self, component_id: str, config: DebugConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.id = component_id
        self.config = config
        self.sampler = Sampler(config.sampling_initial, config.sampling_thereafter, clock)
        self._outputs: list[TextIO] = []
        self._owned: list[TextIO] = []

    async def start(self, host: Host) -> None:
        if self.config.use_internal_logger:
            return
        for path in self.config.output_paths or ["stdout"]:
            if path == "stdout":
                self._outputs.append(sys.stdout)
            elif path == "stderr":
                self._outputs.append(sys.stderr)
            else:
                stream = open(path, "a", encoding="utf-8")  # closed in shutdown()
                self._outputs.append(stream)
                self._owned.append(stream)

    async def shutdown(self) -> None:
        for stream in self._outputs:
            stream.flush()
        for stream in self._owned:
            stream.close()
        self._outputs, self._owned = [], []

    async def export(self, batch: Batch) -> None:
        message = text.SIGNAL_MESSAGES[batch.signal]
        self._emit(message, text.summary(batch), batch.signal)
        if self.config.verbosity == "basic":
            return
        render = text.detailed_text if self.config.verbosity == "detailed" else text.normal_text
        body = render(batch)
        if body:
            self._emit(body, {}, batch.signal)

    def _emit(self, message: str, fields: dict[str, int], signal: str) -> None:
        if not self.sampler.allow(message):
            return
        if self.config.use_internal_logger:
            context = {
                "otelcol.component.id": self.id,
                "otelcol.component.kind": "exporter",
                "otelcol.signal": signal,
            }
            log.info(message, extra=context | fields)
            return
        # zap's console encoder without time and level: the message, then the fields as JSON
        line = f"{message}\t{json.dumps(fields)}\n" if fields else message + "\n"
        for stream in self._outputs:
            stream.write(line)
