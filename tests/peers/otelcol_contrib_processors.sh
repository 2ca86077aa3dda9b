#!/usr/bin/env bash
# Builds the OpenTelemetry Collector with contrib's probabilisticsamplerprocessor and
# redactionprocessor (and the OTLP receiver and file exporter around them) from the Go module
# proxy with the Collector builder (ocb), and caches the binary by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/otelcol-contrib-processors-<version>/otelcol
# (A binary of its own: the main peer's cached build stays as it is.)
# Prints the binary's path on stdout. Quiet and quick when the binary is already cached.
# The build happens in a temp dir beside the cache entry and the binary is renamed into place
# only after it ran, so an interrupted build never leaves a broken cache entry.
set -euo pipefail

OTELCOL_VERSION="0.165.0" # core "beta" modules (receivers, exporters, processors)
CORE_STABLE_VERSION="1.71.0" # core modules already at 1.x (confmap providers) of that release
CONTRIB_VERSION="0.165.0" # contrib release that requires exactly the core release above

CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
DEST_DIR="$CACHE/otelcol-contrib-processors-$OTELCOL_VERSION"
BIN="$DEST_DIR/otelcol"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$DEST_DIR"
# Two callers at once (make test, a test that builds on demand) must not both build.
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
  echo "otelcol_contrib_processors.sh: no Go toolchain found (needed to build this Collector peer)" >&2
  exit 1
fi

# Leftovers of a build that was killed outright (no trap ran); the lock says none is running.
rm -rf "$DEST_DIR"/.build.*
# Same filesystem as the destination, so the final rename is atomic.
WORK="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/build.log"

echo "peers: building otelcol with probabilistic_sampler and redaction $OTELCOL_VERSION (a few minutes when cold)" >&2
start=$(date +%s)

# The machine's default GOPROXY is used as configured; the Collector is built without cgo,
# like its official releases. -mod=mod lets `go build` add the go.sum entries it needs.
export CGO_ENABLED=0
GOFLAGS_BUILD="$("$GO" env GOFLAGS) -mod=mod"

fail() {
  # The work dir goes away on exit; keep its log beside the cache entry for a post-mortem.
  cp "$LOG" "$DEST_DIR/failed-build.log"
  echo "otelcol_contrib_processors.sh: $1 failed (full log: $DEST_DIR/failed-build.log); last lines:" >&2
  tail -n 40 "$LOG" >&2
  exit 1
}

# The builder must match the core release it generates code for.
GOBIN="$WORK/bin" nice -n 15 "$GO" install \
  "go.opentelemetry.io/collector/cmd/builder@v$OTELCOL_VERSION" >>"$LOG" 2>&1 ||
  fail "installing the Collector builder"

core=go.opentelemetry.io/collector
contrib=github.com/open-telemetry/opentelemetry-collector-contrib
cat >"$WORK/manifest.yaml" <<EOF
dist:
  module: example.invalid/airis/otelcol-contrib-processors
  name: otelcol
  description: OpenTelemetry Collector with probabilistic_sampler and redaction, for AIRIS known-answer tests
  version: $OTELCOL_VERSION
  output_path: $WORK/dist
  go: $GO
receivers:
  - gomod: $core/receiver/otlpreceiver v$OTELCOL_VERSION
processors:
  - gomod: $contrib/processor/probabilisticsamplerprocessor v$CONTRIB_VERSION
  - gomod: $contrib/processor/redactionprocessor v$CONTRIB_VERSION
exporters:
  - gomod: $contrib/exporter/fileexporter v$CONTRIB_VERSION
providers:
  - gomod: $core/confmap/provider/envprovider v$CORE_STABLE_VERSION
  - gomod: $core/confmap/provider/fileprovider v$CORE_STABLE_VERSION
  - gomod: $core/confmap/provider/yamlprovider v$CORE_STABLE_VERSION
EOF

# The builder's "get modules" step runs `go mod tidy`, which also loads the tests of every
# dependency, and fileexporter's tests import a contrib module version that the proxy does not
# serve. So the builder generates the sources, `go get` pins the manifest's modules (resolving
# only what the binary imports), and the builder compiles with its usual flags.
# (The builder makes an unused temp dir on every run: TMPDIR keeps it inside the work dir.)
mkdir -p "$WORK/tmp"
build_step() {
  TMPDIR="$WORK/tmp" GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$WORK/bin/builder" --skip-get-modules "$@" \
    --config "$WORK/manifest.yaml" >>"$LOG" 2>&1
}
build_step --skip-compilation || fail "generating the Collector's sources"
mapfile -t pins < <(sed -n 's/^ *- gomod: \(.*\) \(v.*\)$/\1@\2/p' "$WORK/manifest.yaml")
(
  cd "$WORK/dist"
  "$GO" mod init example.invalid/airis/otelcol-contrib-processors
  GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$GO" get "${pins[@]}" \
    "go.opentelemetry.io/collector/otelcol@v$OTELCOL_VERSION"
) >>"$LOG" 2>&1 || fail "resolving the Collector's modules"
build_step --skip-generate || fail "compiling the Collector"

# Only a binary that starts and knows its components goes into the cache.
"$WORK/dist/otelcol" components >"$WORK/components.txt" 2>>"$LOG" ||
  fail "running the built Collector"
for want in otlp probabilistic_sampler redaction file; do
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
