#!/usr/bin/env bash
# Builds an OpenTelemetry Collector holding contrib's tail_sampling processor (with the OTLP
# receiver and the file exporter) from the Go module proxy (see ocb.sh), cached by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/otelcol-tailsampling-<version>/otelcol
# tests/test_processor_tail_sampling_interop.py runs it beside our tail_sampling on the same
# traces. Prints the binary's path on stdout; quiet and instant when it is cached.
set -euo pipefail

# contrib's tailsamplingprocessor 0.165 cannot be built from the module proxy here (its OTTL
# dependency pkg/ottl/contexts/xprofile@v0.165.0 is refused: "not available"); 0.140.1 is the
# newest release whose dependencies resolve. Its policies decide alone as 0.165's do (they
# differ in how inverted decisions combine with other policies, not tested against it).
NAME=otelcol-tailsampling
VERSION="0.140.1"            # contrib release
CORE_VERSION="0.140.0"       # core "beta" modules it requires
CORE_STABLE_VERSION="1.46.0" # core 1.x modules of that release
CONTRIB_VERSION="$VERSION"
DESCRIPTION="OpenTelemetry Collector with tail_sampling, for AIRIS interop tests"
WANT=(otlp tail_sampling file)
components() {
  cat <<COMPONENTS
receivers:
  - gomod: $core/receiver/otlpreceiver v$CORE_VERSION
processors:
  - gomod: $contrib/processor/tailsamplingprocessor v$CONTRIB_VERSION
exporters:
  - gomod: $contrib/exporter/fileexporter v$CONTRIB_VERSION
COMPONENTS
}
source "$(dirname "${BASH_SOURCE[0]}")/ocb.sh"
