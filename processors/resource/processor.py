"""resource: attribute actions on resource attributes (one row per resource, so the whole
batch costs a handful of Arrow calls)."""

from __future__ import annotations

import logging

import numpy as np

from otlp.batch import Batch
from otlp.ottl.contexts import refresh_service_name
from otlp.ottl.runtime import CountingProcessor
from otlp.telemetry import Telemetry
from processors.attributes.actions import Actions
from processors.resource.config import ResourceConfig

log = logging.getLogger("airis.processor.resource")


class ResourceProcessor(CountingProcessor):
    def __init__(self, component_id: str, config: ResourceConfig, telemetry: Telemetry) -> None:
        super().__init__(component_id, telemetry, log)
        self.actions = Actions(config.attributes)

    def process(self, batch: Batch) -> Batch:
        resources = batch.resources
        if resources.num_rows == 0:
            return batch
        lists = self.actions.apply(
            resources.column("attributes"), np.ones(resources.num_rows, np.bool_), batch.context
        )
        schema = resources.schema
        resources = resources.set_column(
            schema.get_field_index("attributes"), schema.field("attributes"), lists
        )
        # keep the derived service name in step with the attribute it is derived from
        resources = refresh_service_name(resources)
        return Batch(batch.signal, resources, batch.scopes, batch.tables, dict(batch.context))
