#!/usr/bin/env bash
# Build argocd-lua (tests/argocd/golua: Argo CD's Lua engine set-up on gopher-lua) into
# $MODELDEPLOY_CACHE/argocd/bin, with the shared Go caches and a stamp (tests/cluster/go_build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../cluster/go_build.sh"
go_build_env "$(cd "$here/../../.." && pwd)" argocd/bin
want=$(cd "$here" && inputs_hash go.mod go.sum ./*.go build.sh)
if is_built argocd-lua "$want" argocd-lua; then
  echo "argocd-lua: cached build $want in $bin"
  exit 0
fi
lua_version=$(cd "$here" && go list -m -f "{{.Version}}" github.com/yuin/gopher-lua)
echo "argocd-lua: building on gopher-lua $lua_version (seconds)"
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin/argocd-lua.new" .)
mv "$bin/argocd-lua.new" "$bin/argocd-lua"
mark_built argocd-lua "$want"
echo "argocd-lua: built $want in $bin"
