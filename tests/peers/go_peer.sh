# Shared by the scripts that build a peer from the Go module proxy (sourced, not run).
#
# peer_begin SCRIPT DEST_DIR BIN WHAT: prints BIN and exits when it is already cached; otherwise
# takes the cache entry's build lock (make test and a test building on demand must not both
# build), and sets GO, WORK (a temp dir beside the cache entry, removed on exit, so the final
# rename is atomic and an interrupted build never leaves a broken entry), LOG and GOFLAGS_BUILD.
# `fail STEP` keeps the log beside the entry and exits; `peer_finish FILE` moves the built
# binary into place and prints its path. Peers are built without cgo, like their releases, with
# the machine's GOPROXY as configured; -mod=mod lets `go build` add the go.sum entries it needs.

peer_begin() {
  PEER_SCRIPT=$1
  DEST_DIR=$2
  BIN=$3
  if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
  fi
  mkdir -p "$DEST_DIR"
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
    echo "$PEER_SCRIPT: no Go toolchain found (needed to build $4)" >&2
    exit 1
  fi
  # leftovers of a build that was killed outright (no trap ran); the lock says none is running
  rm -rf "$DEST_DIR"/.build.*
  WORK="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  LOG="$WORK/build.log"
  echo "peers: building $4 (a few minutes on 2 cores when cold)" >&2
  PEER_START=$(date +%s)
  export CGO_ENABLED=0
  GOFLAGS_BUILD="$("$GO" env GOFLAGS) -mod=mod"
}

fail() {
  # the work dir goes away on exit; keep its log beside the cache entry for a post-mortem
  cp "$LOG" "$DEST_DIR/failed-build.log"
  echo "$PEER_SCRIPT: $1 failed (full log: $DEST_DIR/failed-build.log); last lines:" >&2
  tail -n 40 "$LOG" >&2
  exit 1
}

# only a binary that already ran goes into the cache: callers run it before this
peer_finish() {
  rm -f "$DEST_DIR/failed-build.log"
  mv -f "$1" "$BIN"
  echo "peers: built $BIN in $(($(date +%s) - PEER_START))s" >&2
  echo "$BIN"
}
