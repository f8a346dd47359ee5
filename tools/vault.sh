#!/usr/bin/env bash
# Builds a real HashiCorp Vault server (v1.21.4) from the Go module proxy and prints the
# binary's path; the delivery tests start it as `vault server -dev` on loopback
# (delivery/vaultkv/vaulttest). Only the build.
#
# The binary is cached under $HOME/.cache/mongobot keyed by version: the first build on a
# machine downloads about 3.7 GB of modules and takes about 20 minutes on two cores; later runs
# take nothing. The build folder's path stays fixed, because it is part of Go's compile cache key.
#
# Why patches: the v1.21.4 module zip lacks Vault's nested modules (api/, sdk/, api/auth/*),
# which its go.mod replaces with ./api, ./sdk. Those replaces are dropped for the published
# api v1.22.0 and sdk v0.21.0 that go.mod already requires, and three call sites where the 1.21
# branch's in-tree sdk differs from the published one are adapted.
#
# Licence: Vault >= 1.15 is BUSL-1.1: built here as a test-only server, never shipped.
set -euo pipefail
version=v1.21.4
out="${XDG_CACHE_HOME:-$HOME/.cache}/mongobot/vault-$version"
bin="$out/vault"
built() { [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "Vault $version"; }
if built; then
  echo "$bin"
  exit 0
fi
mkdir -p "$out"
# go test runs packages in parallel, and each test binary that needs Vault runs this script:
# one builds, the others wait for it (flock) and take its binary.
exec 9>"$out/.lock"
flock 9
if built; then
  echo "$bin"
  exit 0
fi
# Only the module proxy is reachable: ",direct" would hang trying GitHub.
export GOPROXY=https://proxy.golang.org GOFLAGS="-mod=mod -buildvcs=false"
build="$out/build"
mkdir -p "$build"
dir=$(cd "$build" && GOFLAGS= go mod download -json "github.com/hashicorp/vault@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[ -d "$dir" ] || { echo "vault.sh: could not download Vault $version from the module proxy" >&2; exit 1; }
src="$build/src"
rm -rf "$src"
cp -r "$dir" "$src" && chmod -R u+w "$src"
cd "$src"
sed -i '/^replace github.com\/hashicorp\/vault\/\(api\|sdk\)[^ ]* => \.\//d' go.mod
! grep -q '=> \./' go.mod || { echo "vault.sh: go.mod still has local replaces" >&2; exit 1; }
go mod edit -require=github.com/hashicorp/vault/sdk@v0.21.0 -require=github.com/hashicorp/vault/api@v1.22.0
# framework.Backend.ActivationFunc takes (ctx, req, string) in the published sdk v0.21.0.
sed -i 's|^\t\tActivationFunc: iStore.activateDeduplication,|\t\tActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },|' vault/identity_store.go
sed -i 's|b.idStoreBackend.ActivationFunc(ctx, nil); err != nil|b.idStoreBackend.ActivationFunc(ctx, nil, ""); err != nil|' vault/logical_system_activation_flags.go
# keysutil.LockManager.RestorePolicy returns only an error there; the name only fed an event.
sed -i 's|^\trestoredKeyName, err := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)|\trestoredKeyName := keyName\n\terr := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)|' builtin/logical/transit/path_restore.go
grep -q 'ActivationFunc: func(ctx context.Context, req \*logical.Request, _ string)' vault/identity_store.go &&
  grep -q 'ActivationFunc(ctx, nil, "")' vault/logical_system_activation_flags.go &&
  grep -q 'restoredKeyName := keyName' builtin/logical/transit/path_restore.go ||
  { echo "vault.sh: a source patch did not apply" >&2; exit 1; }
echo "vault.sh: building Vault $version (about 20 minutes the first time)" >&2
t0=$SECONDS
nice -n 10 go build -ldflags "-s -w" -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "vault.sh: built in $((SECONDS - t0))s" >&2
echo "$bin"
