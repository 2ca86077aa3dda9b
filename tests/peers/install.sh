#!/usr/bin/env bash
# Installs the real peers the tests talk to, cached outside the checkout by version.
# (The OTel Python SDK clients are Python test extras; chDB is a dependency.)
set -euo pipefail
CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
mkdir -p "$CACHE"
echo "peers: cache at $CACHE"
