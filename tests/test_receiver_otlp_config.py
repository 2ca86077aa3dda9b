"""The otlp receiver's config (keys, defaults and errors as the Collector's otlpreceiver),
bounded decompression, status encoding, and a run on uvloop."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any

import grpc
import pytest
import zstandard
from pydantic import ValidationError

from otlp.batch import Batch
from otlp.component import RECEIVER, ComponentID, CreateSettings
from otlp.config import format_validation_error
from otlp.errors import BackpressureError, ConfigError
from otlp.telemetry import Telemetry
from receivers.otlp import factory
from receivers.otlp.compression import CorruptBody, TooLarge, decompress
from receivers.otlp.config import OTLPReceiverConfig
from receivers.otlp.receiver import OTLPReceiver


class _Sink:
    def __init__(self) -> None:
        self.items = 0

    async def consume(self, batch: Batch) -> None:
        self.items += batch.item_count()


class _Host:
    def __init__(self) -> None:
        self.telemetry = Telemetry()

    def extension(self, component_id: str) -> Any:
        return None


def test_runs_on_uvloop() -> None:
    """The service runs on uvloop: both servers, fed by the SDK's gRPC and HTTP exporters."""
    import uvloop
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPC
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTP
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for name in ("a", "b"):
        with provider.get_tracer("t").start_as_current_span(name):
            pass
    spans = memory.get_finished_spans()

    async def scenario() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        host = _Host()
        config = OTLPReceiverConfig.model_validate(
            {
                "protocols": {
                    "grpc": {"endpoint": "127.0.0.1:0"},
                    "http": {"endpoint": "127.0.0.1:0"},
                }
            }
        )
        settings = CreateSettings(id=ComponentID("otlp"), kind=RECEIVER, telemetry=host.telemetry)
        receiver = factory.create(settings, config)
        assert isinstance(receiver, OTLPReceiver)
        sink = _Sink()
        receiver.consumers["traces"] = sink
        await receiver.start(host)
        try:
            for exporter in (
                GRPC(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True),
                HTTP(endpoint=f"http://127.0.0.1:{receiver.http_port}/v1/traces"),
            ):
                assert (await asyncio.to_thread(exporter.export, spans)).name == "SUCCESS"
                await asyncio.to_thread(exporter.shutdown)
        finally:
            await receiver.shutdown()
        assert sink.items == 4

    uvloop.run(scenario())


# --- config ------------------------------------------------------------------------------


def _receiver_config(receiver: Any) -> OTLPReceiverConfig:
    """Validated as the config loader does it (`value or {}`, errors under the key path)."""
    try:
        return OTLPReceiverConfig.model_validate(receiver or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error("receivers.otlp", exc)) from None


def test_config_defaults_follow_the_collector() -> None:
    cfg = _receiver_config({"protocols": {"grpc": None, "http": None}})
    grpc_cfg, http_cfg = cfg.protocols.grpc, cfg.protocols.http
    assert grpc_cfg is not None and http_cfg is not None
    assert grpc_cfg.endpoint == "127.0.0.1:4317"
    assert grpc_cfg.max_recv_bytes() == 4 << 20
    assert grpc_cfg.read_buffer_size == 512 * 1024
    assert http_cfg.endpoint == "127.0.0.1:4318"
    assert http_cfg.body_limit() == 20 << 20
    assert http_cfg.url_paths() == {
        "traces": "/v1/traces",
        "metrics": "/v1/metrics",
        "logs": "/v1/logs",
    }
    assert http_cfg.cors is None and http_cfg.tls is None


def test_config_one_protocol_named_enables_only_it() -> None:
    cfg = _receiver_config({"protocols": {"http": {}}})
    assert cfg.protocols.grpc is None and cfg.protocols.http is not None


def test_config_collector_example_loads() -> None:
    cfg = _receiver_config(
        {
            "protocols": {
                "grpc": {
                    "endpoint": "0.0.0.0:4317",
                    "max_recv_msg_size_mib": 32,
                    "max_concurrent_streams": 16,
                    "read_buffer_size": 1048576,
                    "write_buffer_size": 524288,
                    "keepalive": {
                        "server_parameters": {
                            "max_connection_idle": "11s",
                            "max_connection_age": "12s",
                            "max_connection_age_grace": "13s",
                            "time": "30s",
                            "timeout": "5s",
                        },
                        "enforcement_policy": {"min_time": "10s", "permit_without_stream": True},
                    },
                },
                "http": {
                    "endpoint": "0.0.0.0:4318",
                    "max_request_body_size": 10485760,
                    "include_metadata": True,
                    "cors": {"allowed_origins": ["https://*.test.com"], "max_age": 7200},
                    "traces_url_path": "/traces",
                    "compression_algorithms": ["", "gzip", "zstd", "snappy"],
                },
            }
        }
    )
    assert cfg.protocols.grpc is not None
    assert cfg.protocols.grpc.keepalive.server_parameters.max_connection_idle == 11.0
    from receivers.otlp.grpc import server_options

    options = dict(server_options(cfg.protocols.grpc, reuse_port=False))
    assert options["grpc.max_receive_message_length"] == 32 << 20
    assert options["grpc.max_connection_idle_ms"] == 11000
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 10000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.so_reuseport"] == 0


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        (None, "must specify at least one protocol"),
        ({"protocols": None}, "must specify at least one protocol"),
        ({"protocols": {"grpc": {"endpoint": "localhost"}}}, "expected host:port"),
        ({"protocols": {"grpc": {"max_recv_msg_size_mib": -1}}}, "max_recv_msg_size_mib"),
        ({"protocols": {"grpc": {"keepalive": {"server_parameters": {"time": "soon"}}}}}, "time"),
        # the extension it names is checked by the loader (tests/test_security_auth.py)
        ({"protocols": {"grpc": {"auth": {}}}}, "auth.authenticator: required key"),
        ({"protocols": {"http": {"tls": {"cert_file": "x.crt"}}}}, "certificate and a key"),
        (
            {
                "protocols": {
                    "http": {"tls": {"cert_file": "a", "key_file": "b", "min_version": "1.4"}}
                }
            },
            "min_version",
        ),
        ({"protocols": {"http": {"compression_algorithms": ["br"]}}}, "compression"),
        (
            {"protocols": {"http": {"endpont": "0.0.0.0:4318"}}},
            "protocols.http.endpont: unknown key",
        ),
        ({"protocols": {"thrift": {}}}, "unknown key"),
    ],
)
def test_config_errors_name_the_key(receiver: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _receiver_config(receiver)
    assert "receivers.otlp" in str(info.value)


# --- bounded decompression ----------------------------------------------------------------


def test_decompress_caps_output_for_every_codec() -> None:
    big = bytes(10 << 20)
    zobj = zlib.compressobj(wbits=-15)
    for codec, data in (
        ("gzip", gzip.compress(big)),
        ("deflate", zlib.compress(big)),
        ("deflate", zobj.compress(big) + zobj.flush()),
        ("zstd", zstandard.ZstdCompressor().compress(big)),
    ):
        assert decompress(codec, data, 10 << 20) == big
        with pytest.raises(TooLarge):
            decompress(codec, data, (10 << 20) - 1)
    with pytest.raises(CorruptBody):
        decompress("gzip", gzip.compress(big)[:-10], 20 << 20)
    with pytest.raises(CorruptBody):
        decompress("gzip", gzip.compress(b"ok") + b"trailing junk", 100)


def test_status_bodies_are_json_when_asked() -> None:
    from receivers.otlp.status import from_exception, status_json

    body = status_json(from_exception(BackpressureError("full", retry_after=1.5)))
    doc = json.loads(body)
    assert doc["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert doc["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert doc["details"][0]["retryDelay"] == "1.500s"


def test_registered_and_loaded_by_the_config_loader() -> None:
    from otlp import registry
    from otlp.config import validate

    assert registry.lookup(RECEIVER, "otlp") is not None
    cfg = validate(
        {
            "receivers": {
                "otlp": {"protocols": {"grpc": None, "http": {"include_metadata": True}}}
            },
            "exporters": {"nop": None},
            "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["nop"]}}},
        }
    )
    (receiver,) = cfg.components[RECEIVER].values()
    assert isinstance(receiver, OTLPReceiverConfig)
    assert receiver.protocols.http is not None and receiver.protocols.http.include_metadata
