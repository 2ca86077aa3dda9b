#!/usr/bin/env bash
# Builds Jaeger (the v2 all-in-one binary, `cmd/jaeger`) from the Go module proxy and caches it
# by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/jaeger-<version>/jaeger
# Prints the binary's path on stdout; progress goes to stderr. Quiet and quick when cached.
# The build happens in a temp dir beside the cache entry and the binary is renamed into place
# only after it ran, so an interrupted build never leaves a broken cache entry.
set -euo pipefail

JAEGER_VERSION="1.76.0"

CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
DEST_DIR="$CACHE/jaeger-$JAEGER_VERSION"
BIN="$DEST_DIR/jaeger"

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
  echo "jaeger.sh: no Go toolchain found (needed to build the Jaeger peer)" >&2
  exit 1
fi

# Leftovers of a build that was killed outright (no trap ran); the lock says none is running.
rm -rf "$DEST_DIR"/.build.*
WORK="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/build.log"

echo "peers: building jaeger $JAEGER_VERSION (several minutes on 2 cores when cold)" >&2
start=$(date +%s)

fail() {
  cp "$LOG" "$DEST_DIR/failed-build.log"
  echo "jaeger.sh: $1 failed (full log: $DEST_DIR/failed-build.log); last lines:" >&2
  tail -n 40 "$LOG" >&2
  exit 1
}

# `go install ...@version` refuses modules whose go.mod has replace directives, and Jaeger's
# has one (sarama). So a throwaway main module requires Jaeger at the pinned version, repeats
# that replace, and builds the command. Built without cgo, like Jaeger's releases.
export CGO_ENABLED=0
GOFLAGS_BUILD="$("$GO" env GOFLAGS) -mod=mod"
(
  cd "$WORK"
  "$GO" mod init example.invalid/airis/jaeger
  "$GO" mod edit -replace github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
  GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$GO" get \
    "github.com/jaegertracing/jaeger@v$JAEGER_VERSION"
) >>"$LOG" 2>&1 || fail "resolving Jaeger's modules"
(
  cd "$WORK"
  GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$GO" build -trimpath -o "$WORK/jaeger" \
    github.com/jaegertracing/jaeger/cmd/jaeger
) >>"$LOG" 2>&1 || fail "compiling Jaeger"

# Only a binary that starts goes into the cache.
"$WORK/jaeger" --help >"$WORK/help.txt" 2>>"$LOG" || fail "running the built Jaeger"

rm -f "$DEST_DIR/failed-build.log"
mv -f "$WORK/jaeger" "$BIN"
echo "peers: built $BIN in $(($(date +%s) - start))s" >&2
echo "$BIN"
