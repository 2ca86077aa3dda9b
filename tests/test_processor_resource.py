"""resource processor: attribute actions on every resource; the derived service name
follows service.name."""

from __future__ import annotations

import pytest

from otlp.batch import Batch
from otlp.config import validate
from otlp.decode import decode_logs, decode_metrics, decode_traces
from otlp.encode import encode
from otlp.errors import ConfigError
from otlp.telemetry import Telemetry
from processors.resource.config import ResourceConfig
from processors.resource.processor import ResourceProcessor
from tests.otlp_samples import sample_logs, sample_metrics, sample_traces


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


async def process(actions: list[dict], batch: Batch) -> Batch:
    telemetry = Telemetry()
    processor = ResourceProcessor(
        "resource", ResourceConfig.model_validate({"attributes": actions}), telemetry
    )
    sink = Sink()
    processor.next = sink
    await processor.consume(batch)
    assert (
        telemetry.value(
            "otelcol_processor_outgoing_"
            + {"traces": "spans", "logs": "log_records"}.get(batch.signal, "metric_points")
            + "_total",
            processor="resource",
        )
        == batch.item_count()
    )
    return sink.batches[0]


def attrs(message) -> dict:
    out = {}
    for item in message.attributes:
        kind = item.value.WhichOneof("value")
        out[item.key] = getattr(item.value, kind) if kind else None
    return out


ACTIONS = [
    {"key": "cloud.zone", "value": "zone-1", "action": "upsert"},
    {"key": "service.name", "value": "fallback", "action": "insert"},
    {"key": "i", "action": "convert", "converted_type": "string"},
    {"key": "s", "action": "hash"},
    {"pattern": "^[amy]$", "action": "delete"},
]


async def test_traces() -> None:
    out = await process(ACTIONS, decode_traces(sample_traces()))
    request = encode(out)
    first, second = (attrs(rs.resource) for rs in request.resource_spans)
    assert first["cloud.zone"] == "zone-1" and second == {
        "cloud.zone": "zone-1",
        "service.name": "fallback",
    }
    assert first["service.name"] == "checkout"  # insert does not overwrite
    assert first["i"] == "-42"
    assert first["s"] == "982d9e3eb996f559e633f4d194def3761d909f5a3b647d1a851fead67c32c9d1"
    assert not {"a", "m", "y"} & set(first)
    assert out.resources.column("service_name").to_pylist() == ["checkout", "fallback"]
    # records are untouched
    assert out.tables["spans"].equals(decode_traces(sample_traces()).tables["spans"])


@pytest.mark.parametrize(
    "decode", [lambda: decode_logs(sample_logs()), lambda: decode_metrics(sample_metrics())]
)
async def test_logs_and_metrics(decode) -> None:
    out = await process([{"key": "service.name", "value": "x", "action": "update"}], decode())
    assert out.resources.column("service_name").to_pylist() == ["x"]
    assert out.item_count() == decode().item_count()


def test_config_errors() -> None:
    raw = {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "processors": {"resource": {"attributes": [{"key": "k", "action": "upsert"}]}},
        "exporters": {"nop": {}},
        "service": {
            "pipelines": {
                "logs": {"receivers": ["otlp"], "processors": ["resource"], "exporters": ["nop"]}
            }
        },
    }
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert str(info.value).startswith(
        'processors.resource.attributes.0: Value error, action "upsert" needs one of "value", '
        '"from_attribute" or "from_context"'
    )
    raw["processors"]["resource"] = {"actions": []}
    with pytest.raises(ConfigError, match=r"processors\.resource\.actions: unknown key"):
        validate(raw)
