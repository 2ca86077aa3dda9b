#!/usr/bin/env bash
# Builds Prometheus Alertmanager (`cmd/alertmanager`) from the Go module proxy and caches it by
# version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/alertmanager-<version>/alertmanager
# Prints the binary's path on stdout; progress goes to stderr. Quiet and quick when cached.
set -euo pipefail

ALERTMANAGER_VERSION="0.35.0"

source "$(dirname "${BASH_SOURCE[0]}")/go_peer.sh"
CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
peer_begin alertmanager.sh "$CACHE/alertmanager-$ALERTMANAGER_VERSION" \
  "$CACHE/alertmanager-$ALERTMANAGER_VERSION/alertmanager" "alertmanager $ALERTMANAGER_VERSION"

# The module on the proxy lacks the built web UI (ui/app/dist, produced by npm at release time)
# that ui/web.go embeds, so `go install pkg@version` fails. The tests need only the v2 API: the
# module source is copied out of the module cache, given a placeholder UI, and built as its own
# main module (its go.sum pins every dependency).
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

"$WORK/bin/alertmanager" --version >"$WORK/version.txt" 2>>"$LOG" ||
  fail "running the built Alertmanager"
peer_finish "$WORK/bin/alertmanager"
