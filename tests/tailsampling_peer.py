"""The OTel Collector with contrib's tail_sampling processor, as a test peer.

Built from the Go module proxy by tests/peers/otelcol_tailsampling.sh (run by
tests/peers/install.sh) and cached by version; a test that needs it builds it or fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tests" / "peers" / "otelcol_tailsampling.sh"
VERSION = "0.140.1"  # see tests/peers/otelcol_tailsampling.sh: 0.165 does not resolve here
BUILD_TIMEOUT_S = 1800


def tailsampling_otelcol() -> Path:
    """The cached binary, built first when missing (raises when the build fails)."""
    cache = Path(os.environ.get("AIRIS_CACHE", Path.home() / ".cache" / "airis"))
    binary = cache / f"otelcol-tailsampling-{VERSION}" / "otelcol"
    if os.access(binary, os.X_OK):
        return binary
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the tail_sampling Collector failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])
