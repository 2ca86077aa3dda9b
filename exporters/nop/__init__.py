"""nop exporter: accepts everything and drops it (the Collector's nopexporter)."""

from __future__ import annotations

from otlp.batch import Batch
from otlp.component import EXPORTER, ComponentConfig, CreateSettings, Exporter, Factory


class NopConfig(ComponentConfig):
    """No keys, as in the Collector."""


class NopExporter(Exporter):
    async def export(self, batch: Batch) -> None:
        return None


def _create(settings: CreateSettings, config: NopConfig) -> NopExporter:
    return NopExporter()


factory = Factory(
    type="nop",
    kind=EXPORTER,
    config_model=NopConfig,
    create=_create,
    description="accepts and discards",
)

__all__ = ["NopConfig", "NopExporter", "factory"]
