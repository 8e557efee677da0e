# modeldeploy — developer and CI entry points.
# Everything a fresh machine needs is installed by `make install` (called by test/demo).

SHELL        := /bin/bash
PYTHON       ?= python3.11
VENV         := .venv
PY           := $(VENV)/bin/python
CACHE        := $(or $(MODELDEPLOY_CACHE),.cache)
CLUSTER_BIN  := $(CACHE)/cluster/bin
KUBE_RELEASE := $(shell cat tests/cluster/controlplane/KUBE_VERSION 2>/dev/null | sed 's/^v//')
APT_PACKAGES := prometheus nginx-light wrk openssl chromium buildah debootstrap
# the real node of the local cluster (tests/cluster/node.py): runtime, CNI plugins, kube-proxy's
# iptables, the pause image's compiler, the test image's busybox
APT_PACKAGES += containerd runc containernetworking-plugins iptables nftables conntrack iproute2 \
                gcc libc6-dev busybox-static
NODE         ?= real
PYTEST       := $(PY) -m pytest
CARGO        ?= $(or $(shell command -v cargo 2>/dev/null),$(wildcard $(HOME)/.cargo/bin/cargo),cargo)
SIDECAR_DIR  := sidecar
# Absolute, because cargo runs inside sidecar/.
SIDECAR_TARGET := $(abspath $(CACHE))/sidecar/target
SIDECAR_BIN  := $(SIDECAR_TARGET)/release/modeldeploy-sidecar

.PHONY: help install install-system install-python cluster-build argocd-lua-build sidecar-build test test-images test-sidecar test-unit \
        test-serving test-api test-e2e lint contract contract-check kube-schema crds crds-check chart chart-check bench demo \
        cluster-up cluster-down node-import cluster-gomod kind-up kind-down clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

install: install-system install-python cluster-build argocd-lua-build sidecar-build ## install everything a fresh machine needs

install-system: ## Debian packages (Prometheus, nginx for the benchmark baseline, Chromium for the dashboard test)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install-python: $(PY) ## the modeldeploy package (editable) with test tools and the iris example's BentoML, in .venv
	$(PY) -m pip install -q -e '.[test,iris]'

cluster-build: ## build (or reuse) the local cluster: kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl, etcd, CoreDNS, KWOK; Prometheus with Kubernetes discovery; metrics-server
	bash tests/cluster/build.sh
	bash tests/cluster/prometheus/build.sh
	bash tests/cluster/metrics-server/build.sh

argocd-lua-build: ## build (or reuse) argocd-lua: Argo CD's own Lua engine, for the health check and actions tests
	bash tests/argocd/golua/build.sh

sidecar-build: ## build the Rust sidecar (release) into $(CACHE)/sidecar/target; needs a Rust toolchain (rustup)
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install a Rust toolchain (https://rustup.rs)"; exit 1; }
	cd $(SIDECAR_DIR) && CARGO_TARGET_DIR=$(SIDECAR_TARGET) $(CARGO) build --release --locked
	@echo "sidecar binary: $(SIDECAR_BIN)"

.PHONY: images
images: install-system install-python ## container images (modeldeploy, iris, sidecar) as OCI archives in $(CACHE)/images, by content hash
	$(PY) -m tests.cluster.images.build

cluster-gomod: ## regenerate tests/cluster/controlplane/go.mod for KUBE_RELEASE (e.g. make cluster-gomod KUBE_RELEASE=1.34.4)
	$(PYTHON) tests/cluster/gen_gomod.py $(KUBE_RELEASE)
	cd tests/cluster/controlplane && GOMODCACHE=$(abspath $(CACHE))/go/mod GOFLAGS=-mod=mod go mod tidy

test: install ## lint, then every test layer (unit, serving, cluster/api, e2e) — the command CI runs
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-sidecar
	$(MAKE) --no-print-directory images  # the e2e tests run them on the real node (cached by content hash)
	$(PYTEST) tests -m "not images" --durations=40

test-images: images ## build the container images and run each in a private containerd (these image tests are not in `make test`; the e2e tests run the images on the real node)
	$(PYTEST) tests/cluster/images -m images

test-sidecar: ## cargo unit + property tests of the Rust sidecar (proptest runs a bounded number of cases)
	cd $(SIDECAR_DIR) && CARGO_TARGET_DIR=$(SIDECAR_TARGET) $(CARGO) test --locked

test-unit: install-python sidecar-build ## fast unit tests only (seconds; the planner checks its sidecar env against the binary)
	$(PYTEST) tests/unit

test-serving: install ## sidecar + BentoML + Prometheus integration tests
	$(PYTEST) tests/serving

test-api: install ## tests on the real local API server
	$(PYTEST) tests/api

test-e2e: install images ## end-to-end rollouts (the real node runs the images)
	$(PYTEST) tests/e2e

lint: install-python ## ruff + mypy + the import layers (lint-imports, contracts in pyproject.toml), cargo clippy + fmt
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy contract operator tests bench demo
	$(VENV)/bin/lint-imports
	cd $(SIDECAR_DIR) && CARGO_TARGET_DIR=$(SIDECAR_TARGET) $(CARGO) clippy --locked --all-targets -- -D warnings
	cd $(SIDECAR_DIR) && $(CARGO) fmt --check

contract: install-python ## regenerate contract/routing-table.schema.json from the routing table's pydantic model
	$(PY) -m modeldeploy.contract.schemagen contract/routing-table.schema.json

contract-check: install-python ## fail if contract/routing-table.schema.json differs from what `make contract` would write
	$(PY) -m modeldeploy.contract.schemagen --check contract/routing-table.schema.json

kube-schema: install-python ## regenerate spec.template's schema from the pinned k8s.io/kubernetes module (Go module cache)
	$(PY) -m modeldeploy.operator.api.kubeschema

crds: install-python ## regenerate crds/ from the pydantic API types
	$(PY) -m modeldeploy.operator.api.crdgen crds/modeldeployment.yaml

crds-check: install-python ## fail if crds/ differs from what `make crds` would write
	$(PY) -m modeldeploy.operator.api.crdgen --check crds/modeldeployment.yaml

chart: crds ## regenerate the Helm chart's generated files (RBAC rules from rbac.py, the CRD copy)
	$(PY) -m modeldeploy.operator.chartgen charts/modeldeploy

chart-check: install-python ## fail if the chart's generated files differ from what `make chart` would write
	$(PY) -m modeldeploy.operator.chartgen --check charts/modeldeploy

bench: install images ## benchmarks; writes docs/benchmarks.md (the rollback benchmark runs the images on the real node)
	$(PY) -m bench.run

demo: install images ## the local demo on the real node (operator from the chart, real Pods): canary promoted, then a bad revision rolled back
	$(PY) -m demo.run

cluster-up: cluster-build ## start the local cluster with a real node (NODE=kwok: a fake one); prints the KUBECONFIG line
	$(PY) -m tests.cluster.localcluster up --node $(NODE)

cluster-down: ## stop the local cluster started by cluster-up (removes the node's Pods, network and mounts)
	$(PY) -m tests.cluster.localcluster down

node-import: ## import your image archive into the running real node: make node-import IMAGE=path/to/image.tar
	@test -n "$(IMAGE)" || { echo "usage: make node-import IMAGE=path/to/image.tar (OCI or docker archive)"; exit 2; }
	$(PY) -m tests.cluster.localcluster import $(IMAGE)

kind-up: ## for users with Docker: a kind cluster with the CRD installed (not used by CI)
	kind create cluster --name modeldeploy
	kubectl apply --server-side -f crds/

kind-down: ## delete the kind cluster
	kind delete cluster --name modeldeploy

clean: ## remove build outputs (keeps the Go caches in .cache/go)
	rm -rf $(CLUSTER_BIN) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
