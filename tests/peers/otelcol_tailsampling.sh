#!/usr/bin/env bash
# Builds an OpenTelemetry Collector holding contrib's tail_sampling processor (with the OTLP
# receiver and the file exporter) from the Go module proxy, cached by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/otelcol-tailsampling-<version>/otelcol
# tests/test_processor_tail_sampling_interop.py runs it beside our tail_sampling on the same
# traces. Prints the binary's path on stdout; quiet and instant when it is cached.
set -euo pipefail

# contrib's tailsamplingprocessor 0.165 cannot be built from the module proxy here (its OTTL
# dependency pkg/ottl/contexts/xprofile@v0.165.0 is refused: "not available"); 0.140.1 is the
# newest release whose dependencies resolve. Its policies decide alone as 0.165's do (they
# differ in how inverted decisions combine with other policies, not tested against it).
VERSION="0.140.1"            # contrib release
CORE_VERSION="0.140.0"       # core "beta" modules it requires
CORE_STABLE_VERSION="1.46.0" # core 1.x modules of that release

CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
DEST_DIR="$CACHE/otelcol-tailsampling-$VERSION"
BIN="$DEST_DIR/otelcol"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$DEST_DIR"
# one build at a time (make test and a test building on demand)
exec 9>"$DEST_DIR/.lock"
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

GO="$(command -v go || true)"
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
fi
if [ -z "$GO" ]; then
  echo "otelcol_tailsampling.sh: no Go toolchain found" >&2
  exit 1
fi

rm -rf "$DEST_DIR"/.build.*
# beside the destination, so the final rename is atomic and a killed build leaves no binary
WORK="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/build.log"
echo "peers: building otelcol $VERSION with tail_sampling (a few minutes when cold)" >&2
start=$(date +%s)

export CGO_ENABLED=0
GOFLAGS_BUILD="$("$GO" env GOFLAGS) -mod=mod"

fail() {
  cp "$LOG" "$DEST_DIR/failed-build.log"
  echo "otelcol_tailsampling.sh: $1 failed (log: $DEST_DIR/failed-build.log); last lines:" >&2
  tail -n 40 "$LOG" >&2
  exit 1
}

GOBIN="$WORK/bin" nice -n 15 "$GO" install \
  "go.opentelemetry.io/collector/cmd/builder@v$CORE_VERSION" >>"$LOG" 2>&1 ||
  fail "installing the Collector builder"

core=go.opentelemetry.io/collector
contrib=github.com/open-telemetry/opentelemetry-collector-contrib
cat >"$WORK/manifest.yaml" <<EOF
dist:
  module: example.invalid/airis/otelcol-tailsampling
  name: otelcol
  description: OpenTelemetry Collector with tail_sampling, for AIRIS interop tests
  version: $VERSION
  output_path: $WORK/dist
  go: $GO
receivers:
  - gomod: $core/receiver/otlpreceiver v$CORE_VERSION
processors:
  - gomod: $contrib/processor/tailsamplingprocessor v$VERSION
exporters:
  - gomod: $contrib/exporter/fileexporter v$VERSION
providers:
  - gomod: $core/confmap/provider/fileprovider v$CORE_STABLE_VERSION
  - gomod: $core/confmap/provider/envprovider v$CORE_STABLE_VERSION
  - gomod: $core/confmap/provider/yamlprovider v$CORE_STABLE_VERSION
EOF

# Generate, pin only the modules the binary imports (`go mod tidy` would also resolve the
# dependencies' tests), then compile with the builder's flags.
mkdir -p "$WORK/tmp"
build_step() {
  TMPDIR="$WORK/tmp" GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$WORK/bin/builder" \
    --skip-get-modules "$@" --config "$WORK/manifest.yaml" >>"$LOG" 2>&1
}
build_step --skip-compilation || fail "generating the Collector's sources"
mapfile -t pins < <(sed -n 's/^ *- gomod: \(.*\) \(v.*\)$/\1@\2/p' "$WORK/manifest.yaml")
(
  cd "$WORK/dist"
  "$GO" mod init example.invalid/airis/otelcol-tailsampling
  GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$GO" get "${pins[@]}" \
    "go.opentelemetry.io/collector/otelcol@v$CORE_VERSION"
) >>"$LOG" 2>&1 || fail "resolving the Collector's modules"
build_step --skip-generate || fail "compiling the Collector"

"$WORK/dist/otelcol" components >"$WORK/components.txt" 2>>"$LOG" ||
  fail "running the built Collector"
for want in otlp tail_sampling file; do
  if ! grep -q "name: $want\$" "$WORK/components.txt"; then
    cat "$WORK/components.txt" >>"$LOG"
    fail "checking component '$want'"
  fi
done

cp "$WORK/manifest.yaml" "$DEST_DIR/manifest.yaml"
rm -f "$DEST_DIR/failed-build.log"
mv -f "$WORK/dist/otelcol" "$BIN"
echo "peers: built $BIN in $(($(date +%s) - start))s" >&2
echo "$BIN"
