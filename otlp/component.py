"""Component model: factories registered by config type name, async lifecycle, `consume`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from otlp.batch import Batch
    from otlp.telemetry import Telemetry

RECEIVER = "receiver"
PROCESSOR = "processor"
EXPORTER = "exporter"
EXTENSION = "extension"
KINDS = (RECEIVER, PROCESSOR, EXPORTER, EXTENSION)


class ComponentConfig(BaseModel):
    """Base for every component's config model: unknown keys are errors, as in the Collector."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass(frozen=True, slots=True)
class ComponentID:
    """`type[/name]` as written in the config (`otlp`, `clickhouse/archive`)."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> ComponentID:
        type_, _, name = text.partition("/")
        return cls(type_.strip(), name.strip())

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


class Consumer(Protocol):
    async def consume(self, batch: Batch) -> None: ...


class Host(Protocol):
    """What a running component may ask of the service around it."""

    telemetry: Telemetry

    def extension(self, component_id: str) -> Any: ...


class Component:
    """Async lifecycle shared by every component."""

    async def start(self, host: Host) -> None:
        pass

    async def shutdown(self) -> None:
        pass


class Receiver(Component):
    """Calls `consumers[signal].consume(batch)` for data it receives."""

    def __init__(self) -> None:
        self.consumers: dict[str, Consumer] = {}


class Processor(Component):
    """Transforms a batch and hands it to `next`; may drop items (and counts them)."""

    next: Consumer

    async def consume(self, batch: Batch) -> None:
        await self.next.consume(batch)

    async def flush(self) -> None:
        """Hand everything held back (batches being built) to `next`; called on shutdown."""


class Exporter(Component):
    """Sends one batch to a backend. The runtime puts a queue, workers and retries in front.

    `export` raises RetryableError (the queue retries with backoff) or PermanentError (the
    batch is dropped and counted).
    """

    async def export(self, batch: Batch) -> None:
        raise NotImplementedError


@dataclass(slots=True)
class CreateSettings:
    id: ComponentID
    kind: str
    telemetry: Telemetry
    # the signals of the pipelines this component is used in
    signals: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Factory:
    type: str
    kind: str
    config_model: type[ComponentConfig]
    create: Callable[[CreateSettings, Any], Component]
    signals: frozenset[str] = frozenset({"traces", "metrics", "logs"})
    # exporter behind the runtime's sending queue / retry helper (config keys included)
    description: str = ""
