"""Bounded fuzzing (hypothesis) of what parses untrusted or semi-trusted text: the protobuf
and JSON request decoders (no exception other than InvalidRequestError, no hang), and the
OTTL parser/compiler (no exception other than OttlError). Each run ends with the receiver
still accepting a valid request. Example counts keep the file to a few seconds."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otlp import decode
from otlp.batch import Batch
from otlp.errors import InvalidRequestError
from otlp.ottl import Condition, OttlError, Statement
from tests.otlp_samples import sample_logs, sample_metrics, sample_traces, sdk_json
from tests.security_support import PB, grpc_call, local_protocols, running, traces

SIGNALS = ("traces", "metrics", "logs")
SAMPLES = {"traces": sample_traces(), "metrics": sample_metrics(), "logs": sample_logs()}
VALID_PB = {s: m.SerializeToString() for s, m in SAMPLES.items()}
VALID_JSON = {s: sdk_json(s, m).encode() for s, m in SAMPLES.items()}

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _decodes_or_refuses(fn: Any, signal: str, body: bytes) -> None:
    try:
        batch = fn(signal, body)
    except InvalidRequestError:
        return
    assert isinstance(batch, Batch)
    assert batch.item_count() >= 0


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, bytes]) -> tuple[str, bytes]:
    """A valid request with a few bytes flipped, cut, duplicated or inserted."""
    signal = draw(st.sampled_from(SIGNALS))
    data = bytearray(valid[signal])
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 8))):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) or 1)
        if op == 0 and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[pos : pos + rng.randrange(1, 16)]
        elif op == 2:
            data[pos:pos] = data[pos : pos + rng.randrange(1, 32)]
        else:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    return signal, bytes(data)


@FUZZ
@given(st.sampled_from(SIGNALS), st.binary(max_size=2048))
def test_protobuf_decoder_random_bytes(signal: str, body: bytes) -> None:
    _decodes_or_refuses(decode.decode_protobuf, signal, body)


@FUZZ
@given(mutated(VALID_PB))
def test_protobuf_decoders_mutated_requests(case: tuple[str, bytes]) -> None:
    signal, body = case
    # the compiled decoder (with its Python fallback) and the Python decoder alone
    _decodes_or_refuses(decode.decode_protobuf, signal, body)
    _decodes_or_refuses(decode.decode_protobuf_python, signal, body)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            [
                "resourceSpans", "resourceLogs", "resourceMetrics", "scopeSpans", "spans",
                "traceId", "spanId", "attributes", "key", "value", "stringValue", "intValue",
                "arrayValue", "kvlistValue", "values", "name", "kind", "body", "logRecords",
                "metrics", "gauge", "dataPoints", "asInt", "asDouble", "timeUnixNano", "x",
            ]
        ),
        children,
        max_size=4,
    ),
    max_leaves=30,
)  # fmt: skip


@FUZZ
@given(st.sampled_from(SIGNALS), JSON_VALUES)
def test_json_decoder_generated_documents(signal: str, doc: Any) -> None:
    body = json.dumps(doc, allow_nan=True).encode()
    _decodes_or_refuses(decode.decode_json, signal, body)


@FUZZ
@given(mutated(VALID_JSON))
def test_json_decoder_mutated_requests(case: tuple[str, bytes]) -> None:
    _decodes_or_refuses(decode.decode_json, *case)


OTTL_TOKENS = [
    "set", "delete_key", "keep_keys", "truncate_all", "replace_pattern", "limit", "Concat",
    "IsMatch", "Int", "String", "(", ")", "[", "]", "{", "}", ",", ":", "where", "and", "or",
    "not", "==", "!=", ">=", "<", "+", "-", "*", "/", "name", "attributes", "resource",
    "resource.attributes", "span.name", "kind", "status.code", "SPAN_KIND_SERVER", '"a"',
    '"x\\"y"', '"', "1", "-2", "3.5", "0x1f", "true", "nil", "cache", "body", "severity_number",
]  # fmt: skip


@FUZZ
@given(
    st.lists(st.sampled_from(OTTL_TOKENS), max_size=24).map(" ".join) | st.text(max_size=64),
    st.sampled_from(["span", "spanevent", "log", "datapoint", "resource"]),
)
def test_ottl_parser(text: str, context: str) -> None:
    for build in (Statement, lambda t, c: Condition([t], c)):
        try:
            build(text, context)
        except OttlError:
            pass


@pytest.mark.parametrize(
    "text",
    [
        "(" * 3000 + 'name == "a"' + ")" * 3000,
        "(" * 3000 + "1" + ")" * 3000 + " == 1",
        "not " * 3000 + "true",
        "Concat([" * 3000 + '"a"' + "])" * 3000 + ' == "a"',
    ],
    ids=["parens", "math", "not", "calls"],
)
def test_ottl_deep_nesting_is_a_parse_error(text: str) -> None:
    with pytest.raises(OttlError, match="nested deeper than 64 levels"):
        Condition([text], "span")


async def test_receiver_survives_fuzzed_requests() -> None:
    """A burst of mutated requests over both transports, then valid ones still succeed."""
    rng = random.Random(7)
    async with running({"protocols": local_protocols()}) as r:
        import httpx

        async with httpx.AsyncClient() as client:
            for i in range(60):
                signal = SIGNALS[i % 3]
                data = bytearray(VALID_PB[signal])
                for _ in range(4):
                    pos = rng.randrange(len(data))
                    data[pos] ^= 1 << rng.randrange(8)
                resp = await client.post(f"{r.http}/v1/{signal}", content=bytes(data), headers=PB)
                assert resp.status_code in (200, 400)
                assert await grpc_call(r.grpc_target, signal, bytes(data)) is not None
            assert (
                await client.post(f"{r.http}/v1/traces", content=traces(3), headers=PB)
            ).status_code == 200
        import grpc

        assert await grpc_call(r.grpc_target, "traces", traces(1)) == grpc.StatusCode.OK
