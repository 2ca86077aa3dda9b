"""The component registry: every factory under the name used in YAML."""

from __future__ import annotations

import importlib
from functools import cache

from otlp.component import Factory

# One module per component; each exposes `factory`.
COMPONENT_MODULES = (
    "receivers.otlp",
    "processors.batch",
    "processors.memory_limiter",
    "processors.filter",
    "processors.transform",
    "processors.attributes",
    "processors.resource",
    "processors.rules",
    "processors.tail_sampling",
    "processors.probabilistic_sampler",
    "processors.redaction",
    "exporters.clickhouse",
    "exporters.debug",
    "exporters.elasticsearch",
    "exporters.nop",
    "exporters.otlp",
    "exporters.otlp.alias",
    "exporters.otlphttp",
    "exporters.otlphttp.alias",
    "exporters.loadbalancing",
    "exporters.loadbalancing.alias",
    "exporters.jaeger",
    "extensions.health_check",
    "extensions.file_storage",
    "extensions.bearertokenauth",
    "extensions.oidc",
)


@cache
def factories() -> dict[tuple[str, str], Factory]:
    """(kind, type) → Factory."""
    found: dict[tuple[str, str], Factory] = {}
    for module_name in COMPONENT_MODULES:
        factory: Factory = importlib.import_module(module_name).factory
        found[(factory.kind, factory.type)] = factory
    return found


# names whose module is not `<kind>s.<type>`
ALIASES = {
    ("exporter", "otlp_grpc"): "exporters.otlp.alias",
    ("exporter", "otlp_http"): "exporters.otlphttp.alias",
    ("exporter", "load_balancing"): "exporters.loadbalancing.alias",
}


@cache
def lookup(kind: str, type_: str) -> Factory | None:
    """The factory of one component type. Imports only its module when the name follows the
    layout (`exporters/clickhouse`): a collector loads what its config names, not every
    component's dependencies (tens of MiB of resident memory)."""
    module_name = ALIASES.get((kind, type_), f"{kind}s.{type_}")
    if module_name in COMPONENT_MODULES:
        factory: Factory = importlib.import_module(module_name).factory
        if (factory.kind, factory.type) == (kind, type_):
            return factory
    return factories().get((kind, type_))
