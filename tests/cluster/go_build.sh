# Sourced (not run) by the Go build scripts: tests/cluster/build.sh, tests/cluster/prometheus/build.sh
# and tests/argocd/golua/build.sh. One home for what they share: Go's module and build caches under
# $MODELDEPLOY_CACHE (git-ignored), and "built already?" by a stamp of the inputs' hash, so a
# second run is a no-op and a change to any input (or to Go, or to this file) rebuilds.
#
#   go_build_env ROOT SUBDIR        sets $cache and $bin (= $cache/SUBDIR), exports the Go caches
#   inputs_hash FILE...             16 hex digits over FILE..., this file and `go version`
#   is_built NAME HASH BINARY...    true when every BINARY is in $bin and NAME's stamp says HASH
#   mark_built NAME HASH            records NAME's stamp after a successful build
go_build_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/go_build.sh

go_build_env() {
  cache=${MODELDEPLOY_CACHE:-$1/.cache}
  bin=$cache/$2
  export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-mod=readonly
  mkdir -p "$bin"
}

inputs_hash() {
  cat "$@" "$go_build_lib" <(go version) | sha256sum | cut -c1-16
}

is_built() {
  local name=$1 want=$2 binary
  shift 2
  for binary in "$@"; do
    [[ -e $bin/$binary ]] || return 1
  done
  [[ "$(cat "$bin/.built-$name" 2>/dev/null)" == "$want" ]]
}

mark_built() {
  echo "$2" > "$bin/.built-$1"
}
