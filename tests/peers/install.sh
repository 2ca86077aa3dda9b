#!/usr/bin/env bash
# Installs the real peers the tests talk to, cached outside the checkout by version.
# (The OTel Python SDK clients are Python test extras; chDB is a dependency.)
set -euo pipefail
CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
mkdir -p "$CACHE"
echo "peers: cache at $CACHE"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# OpenTelemetry Collector (interop tests, benchmarks): prints its path, which we don't need here;
# a cached build says nothing, a cold one reports its progress on stderr.
bash "$HERE/otelcol.sh" >/dev/null
