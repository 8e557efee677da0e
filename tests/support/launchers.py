"""How the e2e harness runs a modeldeploy Pod's containers on loopback (see podrunner.py).

- `model`: any image runs the iris example BentoML service; the container's env (IRIS_* fault
  switches from `spec.model.env`) decides whether it is a good or a bad revision.
- `sidecar`: the real Rust sidecar binary (`make sidecar-build`, found as the conformance suite
  finds it) with the container's env, ports and the upstream rewritten to loopback, the routing
  ConfigMap watched through the test kubeconfig, and canary/shadow traffic sent through the
  ServiceProxy (the cluster's Service networking).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.cluster.localcluster import ROOT
from tests.support.podrunner import Launch, Launcher, PodPorts, container_env
from tests.support.sidecar_binary import sidecar_binary

IRIS_DIR = ROOT / "serving" / "examples" / "iris"


def model_launcher(bentoml_home: Path) -> Launcher:
    """Any model image runs the iris example; the Pod's env (IRIS_*) picks good or bad behaviour."""

    def launch(container: dict[str, Any], ports: PodPorts) -> Launch:
        argv = [
            sys.executable, "-m", "bentoml", "serve", "service:Iris",
            "--working-dir", str(IRIS_DIR), "--host", "127.0.0.1", "--port", str(ports.model),
        ]  # fmt: skip
        env = {
            "BENTOML_DO_NOT_TRACK": "true",
            "IRIS_ACCESS_LOG": "0",
            **container_env(container),
            # The pod's BENTOML_HOME is on its private /tmp emptyDir; on this host it is the test's.
            "BENTOML_HOME": str(bentoml_home),
        }
        return Launch(argv=argv, env=env)

    return launch


def sidecar_launcher(kubeconfig: Path, service_proxy_port: int) -> Launcher:
    binary = str(sidecar_binary())  # missing binary: an error when the environment starts

    def launch(container: dict[str, Any], ports: PodPorts) -> Launch:
        env = container_env(container)
        env.update(
            {
                "MODELDEPLOY_UPSTREAM": f"http://127.0.0.1:{ports.model}",
                "MODELDEPLOY_LISTEN_HOST": "127.0.0.1",
                "MODELDEPLOY_PORT": str(ports.traffic),
                "MODELDEPLOY_METRICS_PORT": str(ports.metrics),
                "MODELDEPLOY_KUBECONFIG": str(kubeconfig),
                "MODELDEPLOY_HTTP_PROXY": f"http://127.0.0.1:{service_proxy_port}",
            }
        )
        return Launch(argv=[binary], env=env)

    return launch
