#!/usr/bin/env bash
# Builds the OpenTelemetry Collector with contrib's probabilisticsamplerprocessor and
# redactionprocessor (and the OTLP receiver and file exporter around them) from the Go module
# proxy with the Collector builder (see ocb.sh), cached by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/otelcol-contrib-processors-<version>/otelcol
# (A binary of its own: the main peer's cached build stays as it is.)
set -euo pipefail

NAME=otelcol-contrib-processors
VERSION="0.165.0"
CORE_VERSION="0.165.0"
CORE_STABLE_VERSION="1.71.0"
CONTRIB_VERSION="0.165.0"
DESCRIPTION="OpenTelemetry Collector with probabilistic_sampler and redaction, for AIRIS known-answer tests"
WANT=(otlp probabilistic_sampler redaction file)
components() {
  cat <<COMPONENTS
receivers:
  - gomod: $core/receiver/otlpreceiver v$CORE_VERSION
processors:
  - gomod: $contrib/processor/probabilisticsamplerprocessor v$CONTRIB_VERSION
  - gomod: $contrib/processor/redactionprocessor v$CONTRIB_VERSION
exporters:
  - gomod: $contrib/exporter/fileexporter v$CONTRIB_VERSION
COMPONENTS
}
source "$(dirname "${BASH_SOURCE[0]}")/ocb.sh"
