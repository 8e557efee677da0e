#!/usr/bin/env bash
# Build Prometheus with Kubernetes service discovery (Debian's package is built without
# kubernetes_sd_configs) into $MODELDEPLOY_CACHE/cluster/bin/prometheus, for the real-node e2e
# tests. Its own module (go.mod here) and its own stamp: a second run is a no-op. Only the HTTP
# API is used, so the web UI assets are not built in.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cache=${MODELDEPLOY_CACHE:-$root/.cache}
bin=$cache/cluster/bin
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-mod=readonly
mkdir -p "$bin"
want=$( (cd "$here" && cat go.mod go.sum build.sh; go version) | sha256sum | cut -c1-16)
if [[ -x $bin/prometheus && "$(cat "$bin/.stamp-prometheus" 2>/dev/null)" == "$want" ]]; then
  echo "prometheus: cached build $want in $bin"
  exit 0
fi
echo "prometheus: building Prometheus $(cd "$here" && go list -m -f '{{.Version}}' github.com/prometheus/prometheus)"
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin/prometheus.new" github.com/prometheus/prometheus/cmd/prometheus)
mv "$bin/prometheus.new" "$bin/prometheus"
echo "$want" > "$bin/.stamp-prometheus"
