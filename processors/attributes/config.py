from __future__ import annotations

from pydantic import Field

from otlp.component import ComponentConfig
from processors.attributes.actions import ActionConfig
from processors.attributes.matching import MatchProperties


class AttributesConfig(ComponentConfig):
    """The Collector's attributesprocessor keys: ``actions`` run in order on span, log record
    or data point attributes; ``include``/``exclude`` select the items they apply to."""

    actions: list[ActionConfig] = Field(min_length=1)
    include: MatchProperties | None = None
    exclude: MatchProperties | None = None
