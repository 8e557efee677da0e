#!/usr/bin/env bash
# Build the local control plane and node components (tests/cluster/controlplane: API server,
# controller-manager, scheduler, kubelet, kube-proxy, kubectl, etcd), KWOK (tests/cluster/kwok)
# and the Helm client (tests/cluster/helm, for the chart tests) into $MODELDEPLOY_CACHE/cluster/bin.
# Go's module and build caches live in the same git-ignored folder, and a stamp of the inputs'
# hash makes a second run a no-op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/go_build.sh"
go_build_env "$(cd "$here/../.." && pwd)" cluster/bin

# Helm and CoreDNS have their own stamps: a Helm bump never relinks the control plane, and the
# other way round.
helm_want=$(cd "$here" && inputs_hash helm/go.mod helm/go.sum build.sh)
if is_built helm "$helm_want" helm; then
  echo "helm: cached build $helm_want in $bin"
else
  echo "helm: building the Helm client"
  helm_version=$(cd "$here/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
  # As Helm's own release build: the default Kubernetes version (helm template, helm lint) is
  # the one of the client-go it is built with.
  k8s_minor=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
  helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  (cd "$here/helm" && go build -trimpath -ldflags "$helm_ldflags" -o "$bin/helm.new" helm.sh/helm/v3/cmd/helm)
  mv "$bin/helm.new" "$bin/helm"
  mark_built helm "$helm_want"
fi

# CoreDNS (the cluster DNS for the real node) is its own module.
coredns_want=$(cd "$here" && inputs_hash coredns/go.mod coredns/go.sum coredns/*.go build.sh)
if is_built coredns "$coredns_want" coredns; then
  echo "coredns: cached build $coredns_want in $bin"
else
  echo "coredns: building CoreDNS"
  (cd "$here/coredns" && go build -trimpath -ldflags "-s -w" -o "$bin/coredns.new" .)
  mv "$bin/coredns.new" "$bin/coredns"
  mark_built coredns "$coredns_want"
fi

want=$(cd "$here" && inputs_hash controlplane/go.mod controlplane/go.sum controlplane/*.go kwok/go.mod kwok/go.sum build.sh)
if is_built controlplane "$want" controlplane kwok kwok-stages.yaml; then
  echo "control plane: cached build $want in $bin"
  exit 0
fi

kube_version=$(cat "$here/controlplane/KUBE_VERSION")
minor=$(echo "$kube_version" | cut -d. -f2)
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X '$pkg.gitVersion=$kube_version' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor'"
  ldflags+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=1970-01-01T00:00:00Z'"
done
echo "control plane: building Kubernetes $kube_version (first build takes a while)"
(cd "$here/controlplane" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/controlplane.new" .)
echo "control plane: building KWOK"
(cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$bin/kwok.new" sigs.k8s.io/kwok/cmd/kwok)
# KWOK's controller needs Stage configs (what happens to nodes and pods); take the "fast"
# node/pod stages and the lease heartbeat from the KWOK module itself.
kwok_dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
             pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  cat "$kwok_dir/kustomize/stage/$stage.yaml"
  echo "---"
done > "$bin/kwok-stages.yaml"
mv "$bin/controlplane.new" "$bin/controlplane"
mv "$bin/kwok.new" "$bin/kwok"
for name in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd; do
  ln -sf controlplane "$bin/$name"
done
mark_built controlplane "$want"
echo "control plane: built $want in $bin"
