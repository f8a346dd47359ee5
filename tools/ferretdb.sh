#!/usr/bin/env bash
# Builds FerretDB from the Go module proxy (as its own build does: a version file first) and prints the
# binary's path. The binary is cached under $HOME/.cache/mongobot keyed by version, so only the
# first run on a machine pays for the build (about two minutes).
set -euo pipefail
version=${FERRETDB_VERSION:-v1.24.2}
out="${XDG_CACHE_HOME:-$HOME/.cache}/mongobot/ferretdb-$version"
bin="$out/ferretdb"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
mkdir -p "$out"
# go test runs several test binaries at once, each of which may run this script: one builds,
# the others wait for it (flock) and take its binary.
exec 9>"$out/.lock"
flock 9
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
# Build outside any module so the project's go.mod is not consulted.
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -n "$dir" ] || { echo "ferretdb.sh: could not download FerretDB $version from the module proxy" >&2; exit 1; }
src="$work/ferretdb"
cp -r "$dir" "$src" && chmod -R u+w "$src"
echo "$version" > "$src/build/version/version.txt"
(cd "$src" && go build -buildvcs=false -o "$bin.tmp" ./cmd/ferretdb) >&2
mv "$bin.tmp" "$bin"
echo "$bin"
