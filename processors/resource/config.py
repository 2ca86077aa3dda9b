from __future__ import annotations

from pydantic import Field

from otlp.component import ComponentConfig
from processors.attributes.actions import ActionConfig


class ResourceConfig(ComponentConfig):
    """The Collector's resourceprocessor: ``attributes`` is a list of attribute actions
    applied to every resource."""

    attributes: list[ActionConfig] = Field(min_length=1)
