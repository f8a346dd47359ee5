#!/bin/sh
# The release build: a static binary with the version stamped in. The Dockerfile's build stage
# runs exactly this, and so does CI (which has no Docker engine), so what CI checks is what
# the image contains.
# usage: tools/build.sh OUTPUT [VERSION]   (OUTPUT is the binary, conventionally named mongobot;
# VERSION defaults to git describe)
set -eu
out=${1:?usage: tools/build.sh OUTPUT [VERSION]}
mkdir -p "$(dirname "$out")"
version=${2:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/bot
