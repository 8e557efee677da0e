#!/usr/bin/env bash
# Build argocd-lua (tests/argocd/golua: Argo CD's Lua engine set-up on gopher-lua) into
# $MODELDEPLOY_CACHE/argocd/bin. Go's module and build caches are the shared ones of
# tests/cluster/build.sh; a stamp of the inputs' hash makes a second run a no-op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cache=${MODELDEPLOY_CACHE:-$root/.cache}
bin=$cache/argocd/bin
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-mod=readonly
mkdir -p "$bin"

want=$( (cd "$here" && cat go.mod go.sum ./*.go build.sh; go version) | sha256sum | cut -c1-16)
if [[ -x $bin/argocd-lua && "$(cat "$bin/.stamp-argocd-lua" 2>/dev/null)" == "$want" ]]; then
  echo "argocd-lua: cached build $want in $bin"
  exit 0
fi
lua_version=$(cd "$here" && go list -m -f "{{.Version}}" github.com/yuin/gopher-lua)
echo "argocd-lua: building on gopher-lua $lua_version (seconds)"
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin/argocd-lua.new" .)
mv "$bin/argocd-lua.new" "$bin/argocd-lua"
echo "$want" > "$bin/.stamp-argocd-lua"
echo "argocd-lua: built $want in $bin"
