"""The OTel Collector with contrib's probabilistic_sampler and redaction, as a test peer.

Built from the Go module proxy by tests/peers/otelcol_contrib_processors.sh (run by
tests/peers/install.sh) and cached by version; a test that needs it builds it or fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tests" / "peers" / "otelcol_contrib_processors.sh"
VERSION = "0.165.0"
BUILD_TIMEOUT_S = 1800


def contrib_processors_otelcol() -> Path:
    """The cached binary, built first when missing (raises when the build fails)."""
    cache = Path(os.environ.get("AIRIS_CACHE", Path.home() / ".cache" / "airis"))
    binary = cache / f"otelcol-contrib-processors-{VERSION}" / "otelcol"
    if os.access(binary, os.X_OK):
        return binary
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"building the Collector with contrib processors failed:\n{result.stderr[-4000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])
