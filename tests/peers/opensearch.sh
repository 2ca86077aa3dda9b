#!/usr/bin/env bash
# Lays out an OpenSearch 2.19.6 home from Maven Central jars (the server with its runtime
# dependencies, plus the transport-netty4 module: the HTTP layer), cached by version:
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/opensearch-2.19.6/home
#   ${AIRIS_CACHE:-$HOME/.cache/airis}/opensearch-2.19.6/home-nori  (the same, plus nori)
# Prints the first home's path on stdout (progress on stderr); instant when already cached.
#
# Maven Central has no OpenSearch distribution archive, only jars, so this writes what the
# tarball would hold: lib/, modules/<name>/ with a plugin-descriptor.properties, config/.
# The analysis-nori plugin is not published as a jar; `home-nori` has in plugins/ a minimal
# analysis-nori plugin compiled here from tests/peers/opensearch/NoriPlugin.java against
# Lucene's own Korean analyzer (lucene-analysis-nori), so tests can start a node with or
# without it. (Two homes rather than symlinks: the node's security manager only lets it
# read jars below its real home path.)
# Start one with tests/opensearch_peer.py (java -cp 'lib/*' org.opensearch.bootstrap.OpenSearch).
set -euo pipefail

VERSION="2.19.6"
LUCENE_VERSION="9.12.3" # the Lucene that opensearch-2.19.6 depends on
CACHE="${AIRIS_CACHE:-$HOME/.cache/airis}"
DEST_DIR="$CACHE/opensearch-$VERSION"
HOME_DIR="$DEST_DIR/home"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ -f "$HOME_DIR/.complete" ]; then
  echo "$HOME_DIR"
  exit 0
fi

mkdir -p "$DEST_DIR"
exec 9>"$DEST_DIR/.lock"
flock 9
if [ -f "$HOME_DIR/.complete" ]; then
  echo "$HOME_DIR"
  exit 0
fi

command -v mvn >/dev/null || { echo "opensearch.sh: mvn not found" >&2; exit 1; }
command -v javac >/dev/null || { echo "opensearch.sh: javac not found (JDK 17)" >&2; exit 1; }

rm -rf "$DEST_DIR"/.build.*
WORK="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/home"
mkdir -p "$STAGE"/{lib,modules,plugins,config}

echo "peers: fetching OpenSearch $VERSION jars from Maven Central (about a minute when cold)" >&2

# fetch GROUP ARTIFACT VERSION DIR: the artifact and its runtime dependencies into DIR
fetch() {
  if ! nice -n 15 mvn -q -B -f "$HERE/opensearch/pom.xml" dependency:copy-dependencies \
    -Ddep.group="$1" -Ddep.artifact="$2" -Ddep.version="$3" \
    -DincludeScope=runtime -DoutputDirectory="$4" >"$WORK/mvn.log" 2>&1; then
    echo "opensearch.sh: resolving $1:$2:$3 failed:" >&2
    tail -n 20 "$WORK/mvn.log" >&2
    exit 1
  fi
}

# drop from a module dir every jar the server already has on its classpath: OpenSearch
# refuses to start when a class is on two classpaths ("jar hell")
dedupe() {
  for jar in "$1"/*.jar; do
    if [ -e "$STAGE/lib/$(basename "$jar")" ]; then rm -f "$jar"; fi
  done
}

descriptor() { # DIR NAME CLASSNAME DESCRIPTION
  cat >"$1/plugin-descriptor.properties" <<EOF
description=$4
version=$VERSION
name=$2
classname=$3
java.version=11
opensearch.version=$VERSION
extended.plugins=
has.native.controller=false
EOF
}

fetch org.opensearch opensearch "$VERSION" "$STAGE/lib"
# the server's pom leaves the logging backend and the plugin class loader to the distribution
fetch org.apache.logging.log4j log4j-core 2.25.4 "$STAGE/lib"
fetch org.opensearch opensearch-plugin-classloader "$VERSION" "$STAGE/lib"

mkdir -p "$STAGE/modules/transport-netty4"
fetch org.opensearch.plugin transport-netty4-client "$VERSION" "$STAGE/modules/transport-netty4"
dedupe "$STAGE/modules/transport-netty4"
descriptor "$STAGE/modules/transport-netty4" transport-netty4 \
  org.opensearch.transport.Netty4Plugin "Netty 4 based transport implementation"
# Netty reflects on JDK internals and opens sockets; the distribution's module ships a
# policy granting that, which is not inside the published jar.
cat >"$STAGE/modules/transport-netty4/plugin-security.policy" <<'EOF'
grant {
  permission java.lang.RuntimePermission "accessDeclaredMembers";
  permission java.lang.reflect.ReflectPermission "suppressAccessChecks";
  permission java.lang.RuntimePermission "accessClassInPackage.sun.misc";
  permission java.lang.RuntimePermission "setContextClassLoader";
  permission java.net.SocketPermission "*", "accept,connect";
  permission java.util.PropertyPermission "*", "read,write";
};
EOF

# analysis-nori: Lucene's Korean analyzer behind a minimal plugin compiled here
NORI="$WORK/analysis-nori"
mkdir -p "$NORI" "$WORK/nori-classes"
fetch org.apache.lucene lucene-analysis-nori "$LUCENE_VERSION" "$NORI"
dedupe "$NORI"
javac -nowarn -d "$WORK/nori-classes" -cp "$STAGE/lib/*:$NORI/*" \
  "$HERE/opensearch/NoriPlugin.java" >"$WORK/javac.log" 2>&1 || {
  echo "opensearch.sh: compiling the nori plugin failed:" >&2
  cat "$WORK/javac.log" >&2
  exit 1
}
jar cf "$NORI/airis-analysis-nori-$VERSION.jar" -C "$WORK/nori-classes" .
descriptor "$NORI" analysis-nori org.airis.nori.NoriPlugin \
  "Korean (nori) analysis: Lucene's KoreanAnalyzer and tokenizer"

# the nori home shares every file with the plain one (hard links, same filesystem)
cp -al "$STAGE" "$WORK/home-nori"
mv "$NORI" "$WORK/home-nori/plugins/analysis-nori"
rm -rf "$HOME_DIR" "$DEST_DIR/home-nori"
mv "$WORK/home-nori" "$DEST_DIR/home-nori"
mv "$STAGE" "$HOME_DIR"
touch "$HOME_DIR/.complete"
echo "peers: OpenSearch $VERSION laid out in $HOME_DIR" >&2
echo "$HOME_DIR"
