#!/usr/bin/env bash
# Installs the real peers the tests talk to, cached outside the checkout by version.
# (The OTel Python SDK clients are Python test extras; chDB is a dependency.)
set -euo pipefail
CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
mkdir -p "$CACHE"
echo "peers: cache at $CACHE"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# OpenSearch 2.19.6 from Maven Central jars (the elasticsearch exporter's end-to-end tests):
# mostly downloads, so it runs beside the Go builds below, which use the CPU
bash "$HERE/opensearch.sh" >/dev/null &
OPENSEARCH=$!
# Jaeger v2 (the jaeger exporter's end-to-end tests), the longest cold build (~10 min on 2
# cores): beside the others, so that its module downloads and single-threaded links overlap
# their compiles (Go's build cache is safe to share between concurrent builds)
bash "$HERE/jaeger.sh" >/dev/null &
JAEGER=$!
# OpenTelemetry Collector (interop tests, benchmarks): prints its path, which we don't need here;
# a cached build says nothing, a cold one reports its progress on stderr.
bash "$HERE/otelcol.sh" >/dev/null
# Prometheus Alertmanager (the rules processor's alertmanager channel, tests/test_rules_e2e.py)
bash "$HERE/alertmanager.sh" >/dev/null
# OTel Collector with contrib's tail_sampling (tests/test_processor_tail_sampling_interop.py)
bash "$HERE/otelcol_tailsampling.sh" >/dev/null
# OTel Collector with contrib's probabilistic_sampler and redaction (known answers for ours)
bash "$HERE/otelcol_contrib_processors.sh" >/dev/null
wait "$JAEGER"
wait "$OPENSEARCH"
