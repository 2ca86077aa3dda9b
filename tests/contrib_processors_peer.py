"""The OTel Collector with contrib's probabilistic_sampler and redaction, as a test peer.

Built from the Go module proxy by tests/peers/otelcol_contrib_processors.sh (run by
tests/peers/install.sh) and cached by version; a test that needs it builds it or fails.
"""

from __future__ import annotations

from pathlib import Path

from tests.harness import peer_binary

BUILD_TIMEOUT_S = 1800


def contrib_processors_otelcol() -> Path:
    """The cached binary, built first when missing (raises when the build fails)."""
    return peer_binary(
        "otelcol_contrib_processors.sh", "the Collector with contrib processors", BUILD_TIMEOUT_S
    )
