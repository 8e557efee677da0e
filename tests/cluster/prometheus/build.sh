#!/usr/bin/env bash
# Build Prometheus with Kubernetes service discovery (Debian's package is built without
# kubernetes_sd_configs) into $MODELDEPLOY_CACHE/cluster/bin/prometheus, for the real-node e2e
# tests. Its own module (go.mod here) and its own stamp. Only the HTTP API is used, so the web UI
# assets are not built in.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../go_build.sh"
go_build_env "$(cd "$here/../../.." && pwd)" cluster/bin
want=$(cd "$here" && inputs_hash go.mod go.sum build.sh)
if is_built prometheus "$want" prometheus; then
  echo "prometheus: cached build $want in $bin"
  exit 0
fi
echo "prometheus: building Prometheus $(cd "$here" && go list -m -f '{{.Version}}' github.com/prometheus/prometheus)"
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin/prometheus.new" github.com/prometheus/prometheus/cmd/prometheus)
mv "$bin/prometheus.new" "$bin/prometheus"
mark_built prometheus "$want"
