# Builds an OpenTelemetry Collector distribution with the Collector builder (ocb) from the Go
# module proxy (sourced by otelcol*.sh, after they set):
#   NAME          cache entry ${AIRIS_CACHE:-$HOME/.cache/airis}/NAME-VERSION/otelcol, and module
#   VERSION       the distribution's version (the contrib release it is built from)
#   CORE_VERSION, CORE_STABLE_VERSION, CONTRIB_VERSION  the modules' versions
#   DESCRIPTION   for the manifest
#   WANT          component names the built binary must list
#   components()  prints the manifest's receivers/processors/exporters ($core, $contrib set)
# Prints the binary's path on stdout; quiet and instant when it is cached.

source "$(dirname "${BASH_SOURCE[0]}")/go_peer.sh"
CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
peer_begin "$(basename "$0")" "$CACHE/$NAME-$VERSION" "$CACHE/$NAME-$VERSION/otelcol" \
  "$NAME $VERSION"

# the builder must match the core release it generates code for
GOBIN="$WORK/bin" nice -n 15 "$GO" install \
  "go.opentelemetry.io/collector/cmd/builder@v$CORE_VERSION" >>"$LOG" 2>&1 ||
  fail "installing the Collector builder"

core=go.opentelemetry.io/collector
contrib=github.com/open-telemetry/opentelemetry-collector-contrib
{
  cat <<MANIFEST
dist:
  module: example.invalid/airis/$NAME
  name: otelcol
  description: $DESCRIPTION
  version: $VERSION
  output_path: $WORK/dist
  go: $GO
MANIFEST
  components
  cat <<MANIFEST
providers:
  - gomod: $core/confmap/provider/envprovider v$CORE_STABLE_VERSION
  - gomod: $core/confmap/provider/fileprovider v$CORE_STABLE_VERSION
  - gomod: $core/confmap/provider/yamlprovider v$CORE_STABLE_VERSION
MANIFEST
} >"$WORK/manifest.yaml"

# The builder's "get modules" step runs `go mod tidy`, which also loads the tests of every
# dependency, and fileexporter's tests import a contrib module version that the proxy does not
# serve. So the builder generates the sources, `go get` pins the manifest's modules (resolving
# only what the binary imports), and the builder compiles with its usual flags.
# (The builder makes an unused temp dir on every run: TMPDIR keeps it inside the work dir.)
mkdir -p "$WORK/tmp"
build_step() {
  TMPDIR="$WORK/tmp" GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$WORK/bin/builder" \
    --skip-get-modules "$@" --config "$WORK/manifest.yaml" >>"$LOG" 2>&1
}
build_step --skip-compilation || fail "generating the Collector's sources"
mapfile -t pins < <(sed -n 's/^ *- gomod: \(.*\) \(v.*\)$/\1@\2/p' "$WORK/manifest.yaml")
(
  cd "$WORK/dist"
  "$GO" mod init "example.invalid/airis/$NAME"
  GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$GO" get "${pins[@]}" \
    "go.opentelemetry.io/collector/otelcol@v$CORE_VERSION"
) >>"$LOG" 2>&1 || fail "resolving the Collector's modules"
build_step --skip-generate || fail "compiling the Collector"

"$WORK/dist/otelcol" components >"$WORK/components.txt" 2>>"$LOG" ||
  fail "running the built Collector"
for want in "${WANT[@]}"; do
  if ! grep -q "name: $want\$" "$WORK/components.txt"; then
    cat "$WORK/components.txt" >>"$LOG"
    fail "checking component '$want'"
  fi
done
cp "$WORK/manifest.yaml" "$DEST_DIR/manifest.yaml"
peer_finish "$WORK/dist/otelcol"
