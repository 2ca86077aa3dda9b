"""Errors that cross the `consume` interface. Receivers map them to OTLP status codes."""

from __future__ import annotations


class ConsumeError(Exception):
    """Base class for errors returned by a consumer."""


class RetryableError(ConsumeError):
    """The data was not accepted now but may be later (backend down, timeout)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackpressureError(RetryableError):
    """Refused to protect the process (memory limit, full queue): the client should back off.

    Receivers answer gRPC UNAVAILABLE (with RetryInfo) / HTTP 503 with Retry-After.
    """


class PermanentError(ConsumeError):
    """Data a backend will never accept: dropped, counted and logged, never retried."""

    def __init__(self, message: str, rejected: int = 0) -> None:
        super().__init__(message)
        self.rejected = rejected


class InvalidRequestError(ConsumeError):
    """A request that does not decode (receivers answer 400 / INVALID_ARGUMENT)."""


class ConfigError(Exception):
    """Bad configuration: the message names the key path and what was expected."""
