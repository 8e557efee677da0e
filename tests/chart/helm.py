"""Run the Helm client built by `make install` (tests/cluster/build.sh) on the modeldeploy chart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.localcluster import BIN, CACHE, ROOT

HELM = BIN / "helm"
CHART = ROOT / "charts" / "modeldeploy"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
"""The chart's test values files (the chart-testing convention: ci/*-values.yaml)."""

_HOME = CACHE / "helm-home"
"""Helm's cache/config/data dirs for the tests (git-ignored, never the user's ~/.config/helm)."""


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm with private cache/config dirs; a missing binary fails the test (never skips)."""
    if not os.access(HELM, os.X_OK):
        raise AssertionError(f"{HELM} is missing: run `make install` (tests/cluster/build.sh builds Helm)")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(_HOME / "cache"),
        "HELM_CONFIG_HOME": str(_HOME / "config"),
        "HELM_DATA_HOME": str(_HOME / "data"),
    }
    env.pop("KUBECONFIG", None)
    argv = [str(HELM), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, input=input, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def template_text(
    values: Path | None = None, release: str = "r1", namespace: str = "mdsys", sets: tuple[str, ...] = ()
) -> str:
    args = ["template", release, str(CHART), "--namespace", namespace]
    if values is not None:
        args += ["--values", str(values)]
    for item in sets:
        args += ["--set", item]
    return helm(*args).stdout


def render(
    values: Path | None = None, release: str = "r1", namespace: str = "mdsys", sets: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The rendered manifests (templates only; CRDs come from crds/)."""
    docs = yaml.safe_load_all(template_text(values, release, namespace, sets))
    return [doc for doc in docs if doc]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", []) if "valueFrom" not in e}
