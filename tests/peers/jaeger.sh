#!/usr/bin/env bash
# Builds Jaeger (the v2 all-in-one binary, `cmd/jaeger`) from the Go module proxy and caches it
# by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/jaeger-<version>/jaeger
# Prints the binary's path on stdout; progress goes to stderr. Quiet and quick when cached.
set -euo pipefail

JAEGER_VERSION="1.76.0"

source "$(dirname "${BASH_SOURCE[0]}")/go_peer.sh"
CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
peer_begin jaeger.sh "$CACHE/jaeger-$JAEGER_VERSION" "$CACHE/jaeger-$JAEGER_VERSION/jaeger" \
  "jaeger $JAEGER_VERSION"

# `go install ...@version` refuses modules whose go.mod has replace directives, and Jaeger's
# has one (sarama). So a throwaway main module requires Jaeger at the pinned version, repeats
# that replace, and builds the command.
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

"$WORK/jaeger" --help >"$WORK/help.txt" 2>>"$LOG" || fail "running the built Jaeger"
peer_finish "$WORK/jaeger"
