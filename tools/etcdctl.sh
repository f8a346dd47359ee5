#!/usr/bin/env bash
# Builds etcdctl (v3.7.3, the etcd the tests embed) from the Go module proxy and prints the
# binary's path; deploy/etcd's tests run the shipped setup.sh with it, as an operator would.
#
# Cached under $HOME/.cache/mongobot keyed by version: the first build takes about a minute on
# two cores; later runs take nothing. etcdctl/v3's go.mod replaces its siblings with ../api
# and the like, so `go install pkg@version` refuses it; a one-file wrapper module works, as
# for etcd in tools/kube-apiserver.sh.
set -euo pipefail
version=v3.7.3
out="${XDG_CACHE_HOME:-$HOME/.cache}/mongobot/etcdctl-$version"
bin="$out/etcdctl"
built() { [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "etcdctl version: ${version#v}"; }
if built; then
  echo "$bin"
  exit 0
fi
mkdir -p "$out"
# go test runs packages in parallel: one builds, the others wait for it (flock).
exec 9>"$out/.lock"
flock 9
if built; then
  echo "$bin"
  exit 0
fi
export CGO_ENABLED=0 GOPROXY=https://proxy.golang.org GOFLAGS=-buildvcs=false
mkdir -p "$out/src" && cd "$out/src"
cat > main.go <<'GO'
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
GO
[ -f go.mod ] || go mod init etcdctlwrap >&2
go get "go.etcd.io/etcd/etcdctl/v3@$version" >&2
go mod tidy >&2
echo "etcdctl.sh: building etcdctl $version" >&2
nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "$bin"
