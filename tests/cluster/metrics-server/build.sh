#!/usr/bin/env bash
# Build metrics-server (the resource metrics API for HorizontalPodAutoscalers) into
# $MODELDEPLOY_CACHE/cluster/bin/metrics-server, for the real-node autoscaling e2e test. Its own
# module (go.mod here) and its own stamp (tests/cluster/go_build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../go_build.sh"
go_build_env "$(cd "$here/../../.." && pwd)" cluster/bin
want=$(cd "$here" && inputs_hash go.mod go.sum build.sh)
if is_built metrics-server "$want" metrics-server; then
  echo "metrics-server: cached build $want in $bin"
  exit 0
fi
echo "metrics-server: building metrics-server $(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/metrics-server)"
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin/metrics-server.new" sigs.k8s.io/metrics-server/cmd/metrics-server)
mv "$bin/metrics-server.new" "$bin/metrics-server"
mark_built metrics-server "$want"
