#!/usr/bin/env bash
# Builds a real kube-apiserver (v1.37.2) and the etcd (v3.7.3) it stores in, from the Go module
# proxy, and prints the folder holding both binaries; the delivery tests start them on loopback.
# Only the build: delivery/kubesecret/kubetest starts them for the tests (server.go has the
# flags: static token auth, RBAC, a self-signed serving certificate, loopback addresses).
#
# Cached under $HOME/.cache/mongobot keyed by version: the first build takes about 10 minutes
# on two cores (2.4 GB peak); later runs take nothing.
set -euo pipefail
k8s=v1.37.2 staging=v0.37.2 etcd=v3.7.3
out="${XDG_CACHE_HOME:-$HOME/.cache}/mongobot/kube-$k8s"
bin="$out/bin"
mkdir -p "$bin"
# go test runs several test binaries at once, each of which may run this script: one builds,
# the others wait for it (flock) and find the binaries built.
exec 9>"$out/.lock"
flock 9
export CGO_ENABLED=0 GOPROXY=https://proxy.golang.org GOFLAGS=-buildvcs=false
if ! [ -x "$bin/etcd" ]; then
  # server/v3's go.mod has ../api-style replaces, so `go install pkg@version` refuses it;
  # a one-file wrapper module works.
  mkdir -p "$out/etcd" && cd "$out/etcd"
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  [ -f go.mod ] || go mod init etcdwrap >&2
  go get "go.etcd.io/etcd/server/v3@$etcd" >&2
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" . >&2
  mv "$bin/etcd.tmp" "$bin/etcd"
fi
if ! [ -x "$bin/kube-apiserver" ]; then
  go mod download -json "k8s.io/kubernetes@$k8s" >/dev/null
  src="$out/src"
  rm -rf "$src"
  cp -r "$(go env GOMODCACHE)/k8s.io/kubernetes@$k8s" "$src" && chmod -R u+w "$src"
  cd "$src"
  rm -f go.work go.work.sum               # it uses ./staging/..., which the module zip lacks
  sed -i '/^replace (/,/^)/d' go.mod      # the "k8s.io/x => ./staging/src/k8s.io/x" replaces
  sed -i -E "s#^(\s+k8s\.io/[a-z0-9-]+) v0\.0\.0\$#\1 $staging#" go.mod
  ldf="-s -w -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1"
  ldf="$ldf -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
  echo "kube-apiserver.sh: building kube-apiserver $k8s (about 10 minutes the first time)" >&2
  GOFLAGS="-mod=mod -buildvcs=false" go list -deps ./cmd/kube-apiserver >/dev/null
  GOFLAGS="-mod=mod -buildvcs=false" nice -n 10 go build -trimpath -ldflags "$ldf" -o "$bin/kube-apiserver.tmp" ./cmd/kube-apiserver >&2
  mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
fi
echo "$bin"
