"""How a next hop's answer becomes our typed error (OTLP specification, "Failures"; the
Collector's otlpexporter and otlphttpexporter)."""

from __future__ import annotations

import email.utils
import time

import grpc
from google.rpc import error_details_pb2, status_pb2

from otlp.errors import PermanentError, RetryableError

# gRPC codes the OTLP spec calls retryable; RESOURCE_EXHAUSTED only with a RetryInfo
# (the server says when it can take more), as in the Collector.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class UnavailableError(RetryableError):
    """The next hop could not be reached or refused service (gRPC UNAVAILABLE): the signal
    the loadbalancing exporter uses to take a backend out of its ring for a while."""


def retry_delay(status: status_pb2.Status) -> float | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def from_grpc(code: grpc.StatusCode, message: str, details: bytes | None) -> Exception:
    delay = None
    if details:
        status = status_pb2.Status()
        try:
            status.ParseFromString(details)
            delay = retry_delay(status)
        except Exception:  # a malformed detail must not hide the code
            delay = None
    text = f"rpc error: code = {code.name} desc = {message}"
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(text, retry_after=delay)
    if code in RETRYABLE_CODES or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay):
        return RetryableError(text, retry_after=delay)
    return PermanentError(text)


def from_rpc_error(err: grpc.aio.AioRpcError) -> Exception:
    """A failed call as the error the runtime acts on, RetryInfo from its status details."""
    details = None
    for key, value in err.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            details = value
    return from_grpc(err.code(), err.details() or "", details)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def from_http(status: int, message: str, retry_after: str | None) -> Exception:
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status in RETRYABLE_HTTP:
        return RetryableError(text, retry_after=parse_retry_after(retry_after))
    return PermanentError(text)
