"""How an outcome is told to an OTLP client: gRPC status codes, HTTP status codes, the
google.rpc.Status (with a RetryInfo detail) both transports carry, and the
Export*ServiceResponse with partial_success.

Mapping (OTLP specification, "Failures", and the Collector's otlpreceiver):

- RetryableError → UNAVAILABLE / 503; BackpressureError → UNAVAILABLE / 429. Both carry a
  RetryInfo detail (gRPC) or a Retry-After header (HTTP) when the error has a retry delay.
- InvalidRequestError → INVALID_ARGUMENT / 400.
- anything unexpected → UNAVAILABLE / 503: retryable, as the Collector treats errors
  without a status, so data is not lost to a bug that a restart fixes.
- PermanentError is not a failure here: the request succeeds with partial_success
  (rejected_spans / rejected_data_points / rejected_log_records and the error message).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlp import jsonpb
from otlp.errors import BackpressureError, InvalidRequestError, RetryableError


@dataclass
class Failure(Exception):
    """A request that did not succeed, with everything either transport needs to say so."""

    grpc_code: grpc.StatusCode
    http_status: int
    message: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message

    def status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.grpc_code.value[0], message=self.message)
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after * 1e9))
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            status.details.append(detail)
        return status

    def retry_after_header(self) -> bytes | None:
        """Retry-After in whole seconds, rounded up so a client never retries too early."""
        if self.retry_after is None:
            return None
        return str(max(0, math.ceil(self.retry_after))).encode()


def invalid(message: str) -> Failure:
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, 400, message)


def from_exception(exc: BaseException) -> Failure:
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, InvalidRequestError):
        return invalid(str(exc))
    if isinstance(exc, BackpressureError):
        return Failure(grpc.StatusCode.UNAVAILABLE, 429, str(exc), exc.retry_after)
    if isinstance(exc, RetryableError):
        return Failure(grpc.StatusCode.UNAVAILABLE, 503, str(exc), exc.retry_after)
    return Failure(grpc.StatusCode.UNAVAILABLE, 503, f"internal error: {exc}")


def status_protobuf(failure: Failure) -> bytes:
    return failure.status().SerializeToString()


def status_json(failure: Failure) -> bytes:
    # the RetryInfo Any resolves through the default pool (error_details_pb2 is imported)
    return jsonpb.message_to_json(failure.status())


Message = (
    trace_service_pb2.ExportTraceServiceResponse
    | metrics_service_pb2.ExportMetricsServiceResponse
    | logs_service_pb2.ExportLogsServiceResponse
)


def partial_success_response(signal: str, rejected: int, message: str) -> Message:
    if signal == "traces":
        return trace_service_pb2.ExportTraceServiceResponse(
            partial_success=trace_service_pb2.ExportTracePartialSuccess(
                rejected_spans=rejected, error_message=message
            )
        )
    if signal == "metrics":
        return metrics_service_pb2.ExportMetricsServiceResponse(
            partial_success=metrics_service_pb2.ExportMetricsPartialSuccess(
                rejected_data_points=rejected, error_message=message
            )
        )
    return logs_service_pb2.ExportLogsServiceResponse(
        partial_success=logs_service_pb2.ExportLogsPartialSuccess(
            rejected_log_records=rejected, error_message=message
        )
    )
