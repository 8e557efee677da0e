"""pytest fixtures for tests that run the real operator against the local cluster (a plugin,
registered in tests/conftest.py): a namespace with the CRD installed where KWOK's model Pods
turn Ready at once, and the operator process watching it with analysis overridden to pass."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.cluster.localcluster import LocalCluster
from tests.support.operator_process import OperatorProcess, install_crd, running_operator
from tests.support.readiness import model_pods_ready


@pytest.fixture(scope="module")
def namespace(cluster: LocalCluster, k8s: ApiClient) -> Iterator[str]:
    """A fresh namespace per test module (the CRD installed); no serving processes run here:
    model Pods are made Ready as soon as KWOK runs them."""
    install_crd(cluster)
    ns = f"op-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(k8s).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    with model_pods_ready(k8s, ns):
        yield ns
    client.CoreV1Api(k8s).delete_namespace(ns)


@pytest.fixture
def operator(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The real operator process watching `namespace`, every analysis overridden to pass."""
    with running_operator(cluster, namespace, tmp_path, ("--analysis-override", "pass")) as op:
        yield op
