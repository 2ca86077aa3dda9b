#!/usr/bin/env bash
# Builds the OpenTelemetry Collector (core components + contrib's fileexporter) from the Go
# module proxy with the Collector builder (see ocb.sh), cached by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/otelcol-<version>/otelcol
# Prints the binary's path on stdout. Quiet and quick when the binary is already cached.
set -euo pipefail

NAME=otelcol
VERSION="0.165.0"
CORE_VERSION="0.165.0"       # core "beta" modules (receivers, exporters, processors)
CORE_STABLE_VERSION="1.71.0" # core modules already at 1.x (confmap providers) of that release
CONTRIB_VERSION="0.165.0"    # contrib release that requires exactly the core release above
DESCRIPTION="OpenTelemetry Collector peer for AIRIS interop tests and benchmarks"
# (0.165 names the OTLP exporters otlp_grpc and otlp_http; otlp and otlphttp are deprecated aliases.)
WANT=(otlp batch memory_limiter nop debug otlp_grpc otlp_http file)
components() {
  cat <<COMPONENTS
receivers:
  - gomod: $core/receiver/otlpreceiver v$CORE_VERSION
processors:
  - gomod: $core/processor/batchprocessor v$CORE_VERSION
  - gomod: $core/processor/memorylimiterprocessor v$CORE_VERSION
exporters:
  - gomod: $core/exporter/nopexporter v$CORE_VERSION
  - gomod: $core/exporter/debugexporter v$CORE_VERSION
  - gomod: $core/exporter/otlpexporter v$CORE_VERSION
  - gomod: $core/exporter/otlphttpexporter v$CORE_VERSION
  - gomod: $contrib/exporter/fileexporter v$CONTRIB_VERSION
COMPONENTS
}
source "$(dirname "${BASH_SOURCE[0]}")/ocb.sh"
