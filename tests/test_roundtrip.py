"""Property tests: decode -> encode is the identity on OTLP requests of all three signals, and
the OTLP/JSON path (the OTel SDK's JSON of the same request) decodes to the same batch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otlp_samples import REQUESTS, SAMPLES, assert_batches_equal, sdk_json

import otlp.anyvalue
from otlp.decode import decode_json, decode_protobuf
from otlp.encode import encode, encode_protobuf

SETTINGS = settings(
    max_examples=int(os.environ.get("AIRIS_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def _small(threshold: int) -> Iterator[None]:
    """Force the per-value (huge threshold) or the vectorised (0) attribute codec."""
    saved = otlp.anyvalue.SMALL
    otlp.anyvalue.SMALL = threshold
    try:
        yield
    finally:
        otlp.anyvalue.SMALL = saved


def _check_roundtrip(signal: str, request: Any) -> None:
    body = request.SerializeToString()
    for threshold in (10**9, 0):
        with _small(threshold):
            batch = decode_protobuf(signal, body)
            again = encode(batch)
            # canonical requests come back byte for byte (and so as equal messages)
            assert again == request
            assert encode_protobuf(batch) == body
            assert_batches_equal(decode_protobuf(signal, encode_protobuf(batch)), batch)


def _check_paths_agree(signal: str, request: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    body = request.SerializeToString()
    monkeypatch.setattr(otlp.anyvalue, "SMALL", 10**9)
    slow = decode_protobuf(signal, body)
    monkeypatch.setattr(otlp.anyvalue, "SMALL", 0)
    fast = decode_protobuf(signal, body)
    assert_batches_equal(slow, fast)
    assert_batches_equal(decode_json(signal, sdk_json(signal, request).encode()), fast)


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_samples_roundtrip(signal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    request = SAMPLES[signal]()
    _check_roundtrip(signal, request)
    _check_paths_agree(signal, request, monkeypatch)


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_roundtrip_property(signal: str) -> None:
    @SETTINGS
    @given(REQUESTS[signal])
    def check(request: Any) -> None:
        _check_roundtrip(signal, request)

    check()


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_json_and_vectorised_paths_property(signal: str) -> None:
    @SETTINGS
    @given(REQUESTS[signal])
    def check(request: Any) -> None:
        with pytest.MonkeyPatch.context() as monkeypatch:
            _check_paths_agree(signal, request, monkeypatch)

    check()


@SETTINGS
@given(st.lists(REQUESTS["traces"], min_size=1, max_size=3))
def test_decode_of_merged_requests_is_stable(requests: list[Any]) -> None:
    """Decoding is deterministic across re-serialization of merged requests."""
    merged = type(requests[0])()
    for request in requests:
        merged.resource_spans.extend(request.resource_spans)
    _check_roundtrip("traces", merged)
