"""debug exporter (the Collector's debugexporter)."""

from __future__ import annotations

from exporters.debug.config import DebugConfig
from exporters.debug.exporter import DebugExporter
from otlp.component import EXPORTER, CreateSettings, Factory


def _create(settings: CreateSettings, config: DebugConfig) -> DebugExporter:
    return DebugExporter(str(settings.id), config)


factory = Factory(
    type="debug",
    kind=EXPORTER,
    config_model=DebugConfig,
    create=_create,
    description="writes received telemetry to the log or stdout (basic, normal, detailed)",
)

__all__ = ["DebugConfig", "DebugExporter", "factory"]
