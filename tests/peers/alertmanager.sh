#!/usr/bin/env bash
# Builds Prometheus Alertmanager (`cmd/alertmanager`) from the Go module proxy and caches it by
# version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/alertmanager-<version>/alertmanager
# Prints the binary's path on stdout; progress goes to stderr. Quiet and quick when cached.
# The build happens in a temp dir beside the cache entry and the binary is renamed into place
# only after it ran, so an interrupted build never leaves a broken cache entry.
set -euo pipefail

ALERTMANAGER_VERSION="0.35.0"

CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
DEST_DIR="$CACHE/alertmanager-$ALERTMANAGER_VERSION"
BIN="$DEST_DIR/alertmanager"

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
  echo "alertmanager.sh: no Go toolchain found (needed to build the Alertmanager peer)" >&2
  exit 1
fi

# Leftovers of a build that was killed outright (no trap ran); the lock says none is running.
rm -rf "$DEST_DIR"/.build.*
WORK="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/build.log"

echo "peers: building alertmanager $ALERTMANAGER_VERSION (a few minutes on 2 cores when cold)" >&2
start=$(date +%s)

fail() {
  cp "$LOG" "$DEST_DIR/failed-build.log"
  echo "alertmanager.sh: $1 failed (full log: $DEST_DIR/failed-build.log); last lines:" >&2
  tail -n 40 "$LOG" >&2
  exit 1
}

# The module on the proxy lacks the built web UI (ui/app/dist, produced by npm at release time)
# that ui/web.go embeds, so `go install pkg@version` fails. The tests need only the v2 API: the
# module source is copied out of the module cache, given a placeholder UI, and built as its own
# main module (its go.sum pins every dependency). Built without cgo, like its releases.
export CGO_ENABLED=0
GOFLAGS_BUILD="$("$GO" env GOFLAGS) -mod=mod"
MOD="github.com/prometheus/alertmanager@v$ALERTMANAGER_VERSION"
SRC_DIR="$(cd "$WORK" && GOFLAGS="$GOFLAGS_BUILD" "$GO" mod download -json "$MOD" 2>>"$LOG" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" || fail "downloading Alertmanager"
[ -n "$SRC_DIR" ] || fail "locating Alertmanager's module source"
cp -r "$SRC_DIR" "$WORK/src"
chmod -R u+w "$WORK/src"
for ui in elm mantine; do
  mkdir -p "$WORK/src/ui/app/dist/$ui"
  echo '<!doctype html><title>Alertmanager (UI not built)</title>' >"$WORK/src/ui/app/dist/$ui/index.html"
done
(
  cd "$WORK/src"
  GOFLAGS="$GOFLAGS_BUILD" nice -n 15 "$GO" build -trimpath -o "$WORK/bin/alertmanager" \
    ./cmd/alertmanager
) >>"$LOG" 2>&1 || fail "building Alertmanager"

# Only a binary that starts goes into the cache.
"$WORK/bin/alertmanager" --version >"$WORK/version.txt" 2>>"$LOG" ||
  fail "running the built Alertmanager"

rm -f "$DEST_DIR/failed-build.log"
mv -f "$WORK/bin/alertmanager" "$BIN"
echo "peers: built $BIN in $(($(date +%s) - start))s" >&2
echo "$BIN"
