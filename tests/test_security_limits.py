"""Hostile input on the otlp receiver: request limits (refused with 400 / INVALID_ARGUMENT
naming the limit), SDK-style truncation (counted), deep nesting in both decoders, invalid
UTF-8, and slow or greedy HTTP clients. Every test ends with the server serving a valid
request."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp import decode
from otlp.limits import LimitsConfig, anyvalue_depth
from receivers.otlp.config import OTLPReceiverConfig
from receivers.otlp.grpc import server_options
from tests.security_support import PB, grpc_call, local_protocols, running, traces

# --- request builders -----------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_array(depth: int) -> bytes:
    """An AnyValue of `depth` arrays, each holding the next ([[[..."x"..]]]), built as bytes:
    the protobuf runtime would refuse to build what is deeper than its own limit."""
    value = _field(1, b"x")  # string_value
    for _ in range(depth):
        value = _field(5, _field(1, value))  # array_value { values: value }
    return value


def with_span_attribute(key: str, anyvalue: bytes, spans: int = 1) -> bytes:
    """A trace request whose spans carry one raw attribute."""
    span = trace_pb2.Span(
        trace_id=bytes(range(16)), span_id=b"\x01" * 8, name="op", start_time_unix_nano=1
    ).SerializeToString()
    span += _field(9, _field(1, key.encode()) + _field(2, anyvalue))
    scope = b"".join(_field(2, span) for _ in range(spans))
    return _field(1, _field(2, scope))


def attrs_request(**attributes: Any) -> bytes:
    kvs = [
        common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))
        for k, v in attributes.items()
    ]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=kvs),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        spans=[
                            trace_pb2.Span(
                                trace_id=bytes(range(16)),
                                span_id=b"\x02" * 8,
                                name="op",
                                attributes=kvs,
                                events=[trace_pb2.Span.Event(name="e", attributes=kvs)],
                            )
                        ]
                    )
                ],
            )
        ]
    ).SerializeToString()


async def _post(r: Any, body: bytes, path: str = "/v1/traces", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{r.http}{path}", content=body, headers={**PB, **headers})


async def _refused(r: Any, body: bytes, limit: str) -> None:
    """400 over HTTP and INVALID_ARGUMENT over gRPC, with the limit named."""
    resp = await _post(r, body)
    assert resp.status_code == 400, resp.content
    message = status_pb2.Status.FromString(resp.content).message
    assert limit in message, message
    assert await grpc_call(r.grpc_target, "traces", body) == grpc.StatusCode.INVALID_ARGUMENT


async def _still_serving(r: Any) -> None:
    assert (await _post(r, traces(2))).status_code == 200
    assert await grpc_call(r.grpc_target, "traces", traces(1)) == grpc.StatusCode.OK


# --- limits ------------------------------------------------------------------------------


async def test_hard_limits_refuse_the_request() -> None:
    limits = {
        "max_items_per_request": 10,
        "max_attributes": 4,
        "max_attribute_key_length": 16,
        "max_attribute_value_length": 64,
        "max_attribute_depth": 3,
    }
    async with running({"protocols": local_protocols(), "limits": limits}) as r:
        await _refused(r, traces(11), "max_items_per_request")
        await _refused(r, attrs_request(**{f"k{i}": "v" for i in range(5)}), "max_attributes")
        await _refused(r, attrs_request(**{"k" * 17: "v"}), "max_attribute_key_length")
        await _refused(r, attrs_request(k="v" * 65), "max_attribute_value_length")
        await _refused(r, with_span_attribute("deep", nested_array(4)), "max_attribute_depth")
        assert r.sinks["traces"].items() == 0
        refused = r.metric(
            "airis_receiver_limit_refused_requests_total",
            receiver="otlp",
            transport="http",
            limit="max_attribute_depth",
        )
        assert refused == 1
        # at the limits exactly: accepted
        assert (await _post(r, traces(10))).status_code == 200
        assert (await _post(r, with_span_attribute("deep", nested_array(3)))).status_code == 200
        await _still_serving(r)


async def test_sdk_style_truncation_is_applied_and_counted() -> None:
    limits = {"attribute_count_limit": 2, "attribute_value_length_limit": 3}
    async with running({"protocols": local_protocols(), "limits": limits}) as r:
        body = attrs_request(a="long-value", b="ok", c="x", d="y")
        assert (await _post(r, body)).status_code == 200
        (batch,) = r.sinks["traces"].batches
        spans = batch.tables["spans"].to_pylist()
        assert [(a["key"], a["str"]) for a in spans[0]["attributes"]] == [("a", "lon"), ("b", "ok")]
        assert spans[0]["dropped_attributes_count"] == 2
        assert spans[0]["events"][0]["dropped_attributes_count"] == 2
        assert batch.resources.column("dropped_attributes_count").to_pylist() == [2]

        def truncated(kind: str) -> float:
            return r.metric(
                "airis_receiver_truncated_total", receiver="otlp", transport="http", kind=kind
            )

        # resource, span, event: 2 dropped and 1 cut each
        assert truncated("attributes") == 6
        assert truncated("values") == 3
        await _still_serving(r)


@pytest.mark.parametrize("depth", [40, 120, 5_000])
async def test_deep_nesting_is_refused_without_recursion(depth: int) -> None:
    """Past the C decoder's own guard (32) and upb's (100 messages): refused, not crashed."""
    body = with_span_attribute("deep", nested_array(depth))
    async with running({"protocols": local_protocols(), "limits": {"max_attribute_depth": 0}}) as r:
        resp = await _post(r, body)
        assert resp.status_code == (200 if depth == 40 else 400)
        assert await grpc_call(r.grpc_target, "traces", body) == (
            grpc.StatusCode.OK if depth == 40 else grpc.StatusCode.INVALID_ARGUMENT
        )
        await _still_serving(r)


def test_depth_of_serialized_values() -> None:
    assert anyvalue_depth(nested_array(0), 10) == 0
    assert anyvalue_depth(nested_array(7), 10) == 7
    # counting stops early past the limit: hostile depth costs nothing more
    assert anyvalue_depth(nested_array(10_000), 10) == 11
    kvlist = common_pb2.AnyValue(
        kvlist_value=common_pb2.KeyValueList(
            values=[
                common_pb2.KeyValue(key="a", value=common_pb2.AnyValue(int_value=1)),
                common_pb2.KeyValue(
                    key="b",
                    value=common_pb2.AnyValue(
                        array_value=common_pb2.ArrayValue(values=[common_pb2.AnyValue()])
                    ),
                ),
            ]
        )
    )
    assert anyvalue_depth(kvlist.SerializeToString(), 10) == 2


async def test_deep_json_is_refused() -> None:
    deep = '{"stringValue":"x"}'
    for _ in range(3000):
        deep = '{"arrayValue":{"values":[' + deep + "]}}"
    body = (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"000102030405060708090a0b0c0d0e0f",'
        '"spanId":"0101010101010101","name":"op","attributes":[{"key":"d","value":'
        + deep
        + "}]}]}]}]}"
    ).encode()
    async with running({"protocols": local_protocols()}) as r:
        resp = await _post(r, body, **{"content-type": "application/json"})
        assert resp.status_code == 400
        await _still_serving(r)


async def test_invalid_utf8_is_refused_as_protobuf_requires() -> None:
    bad = with_span_attribute("k", _field(1, b"caf\xc3"))
    async with running({"protocols": local_protocols()}) as r:
        await _refused(r, bad, "UTF-8")
        await _still_serving(r)


def test_limits_defaults_are_generous() -> None:
    limits = LimitsConfig()
    assert limits.max_items_per_request >= 100_000
    assert limits.attribute_count_limit == 0 and limits.attribute_value_length_limit == 0
    # a big SDK batch passes untouched
    batch = decode.decode_protobuf("traces", traces(2048))
    from otlp.limits import Limiter

    assert Limiter(limits).apply(batch).attributes == 0


def test_grpc_caps_become_channel_arguments() -> None:
    cfg = OTLPReceiverConfig.model_validate(
        {
            "protocols": {
                "grpc": {
                    "max_connections": 100,
                    "max_header_bytes": 16384,
                    "max_concurrent_streams": 8,
                    "keepalive": {"server_parameters": {"max_connection_idle": "30s"}},
                }
            }
        }
    )
    assert cfg.protocols.grpc is not None
    options = dict(server_options(cfg.protocols.grpc, reuse_port=False))
    assert options["grpc.max_allowed_incoming_connections"] == 100
    assert options["grpc.max_metadata_size"] == 16384
    assert options["grpc.max_concurrent_streams"] == 8
    assert options["grpc.max_connection_idle_ms"] == 30_000


# --- slow and greedy HTTP clients --------------------------------------------------------------


async def _closed_by_server(sock: socket.socket, deadline: float = 10.0) -> bytes:
    """What the server sent before closing the connection (fails if it never closes)."""
    loop = asyncio.get_running_loop()
    received = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), end - time.monotonic())
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the server kept the connection open")


async def _connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def test_slow_clients_are_cut_off() -> None:
    http = {
        "endpoint": "127.0.0.1:0",
        "read_header_timeout": "200ms",
        "read_timeout": "200ms",
        "max_header_bytes": 4096,
    }
    async with running({"protocols": {"http": http}}) as r:
        port = r.receiver.http_port
        assert port is not None
        loop = asyncio.get_running_loop()
        # connects and says nothing
        silent = await _connect(port)
        # trickles its headers and stops
        trickle = await _connect(port)
        await loop.sock_sendall(trickle, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        # sends headers, then only part of the body
        stalled = await _connect(port)
        await loop.sock_sendall(
            stalled,
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x00" * 10,
        )
        # headers over max_header_bytes
        greedy = await _connect(port)
        await loop.sock_sendall(
            greedy, b"POST /v1/traces HTTP/1.1\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n"
        )
        for sock in (silent, trickle, stalled):
            assert await _closed_by_server(sock) == b""
        assert (await _closed_by_server(greedy)).startswith(b"HTTP/1.1 431")
        for sock in (silent, trickle, stalled, greedy):
            sock.close()
        assert (await _post(r, traces(1))).status_code == 200


async def test_connection_cap() -> None:
    http = {"endpoint": "127.0.0.1:0", "max_connections": 2}
    async with running({"protocols": {"http": http}}) as r:
        port = r.receiver.http_port
        assert port is not None
        held = [await _connect(port) for _ in range(2)]
        # wait until the server has accepted both (its connection set is what counts)
        deadline = time.monotonic() + 10
        while len(r.receiver.http._server.server_state.connections) < 2:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        extra = await _connect(port)
        assert await _closed_by_server(extra) == b""
        extra.close()
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                if (await _post(r, traces(1))).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "never served again after the cap"
            await asyncio.sleep(0.01)


async def test_invalid_utf8_can_be_replaced() -> None:
    """`invalid_utf8: replace`: bad sequences become U+FFFD (the OTLP specification's advice
    to sanitizers), in protobuf and JSON requests alike, and the repairs are counted."""
    bad_pb = with_span_attribute("k", _field(1, b"caf\xc3"))
    bad_json = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"000102030405060708090a0b0c0d0e0f",'
        b'"spanId":"0101010101010101","name":"op\xff"}]}]}]}'
    )
    limits = {"invalid_utf8": "replace"}
    async with running({"protocols": local_protocols(), "limits": limits}) as r:
        assert (await _post(r, bad_pb)).status_code == 200
        assert await grpc_call(r.grpc_target, "traces", bad_pb) == grpc.StatusCode.OK
        resp = await _post(r, bad_json, **{"content-type": "application/json"})
        assert resp.status_code == 200
        values = [
            a["str"] for b in r.sinks["traces"].batches[:2] for s in b.tables["spans"].to_pylist()
            for a in s["attributes"]
        ]  # fmt: skip
        assert values == ["caf\ufffd", "caf\ufffd"]
        assert r.sinks["traces"].batches[2].tables["spans"].column("name").to_pylist() == [
            "op\ufffd"
        ]
        repaired = r.metric(
            "airis_receiver_truncated_total", receiver="otlp", transport="http", kind="invalid_utf8"
        )
        assert repaired == 2
        # a request broken in other ways is still refused
        assert (await _post(r, bad_pb[:-3])).status_code == 400
        await _still_serving(r)


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_compiled_decoder_sizes_match_a_scan_of_the_columns(signal: str) -> None:
    """The receiver checks limits with what the compiled decoder measured (no column scan):
    it must agree with the scan, and refuse the same requests for the same reason."""
    from benchmarks.payloads import make_templates
    from otlp.limits import Limiter, LimitExceeded, _attribute_lists, _items, _longest

    body = make_templates(signal, 64)[0].render(7)
    batch = decode.decode_protobuf(signal, body)
    sizes = decode.wire_sizes()
    assert sizes is not None
    lists = [_items(lists) for lists in _attribute_lists(batch)]
    values = [v for v in lists if len(v)]
    if signal == "logs":
        values.append(batch.tables["logs"].column("body").combine_chunks())
    scanned = (
        max(_longest(lists) for lists in _attribute_lists(batch)),
        max(_longest(v.field("key")) for v in values if "key" in v.type.names),
        max(max(_longest(v.field("str")), _longest(v.field("bytes"))) for v in values),
    )
    assert sizes[:3] == scanned
    for limit, found in zip(
        ("max_attributes", "max_attribute_key_length", "max_attribute_value_length"),
        scanned,
        strict=True,
    ):
        tight = Limiter(LimitsConfig.model_validate({limit: found - 1}))
        reasons = []
        for measured in (sizes, None):
            with pytest.raises(LimitExceeded) as refused:
                tight.apply(decode.decode_protobuf(signal, body), len(body), measured)
            reasons.append(str(refused.value))
        assert reasons[0] == reasons[1] and limit in reasons[0]
