"""Run the real operator (`modeldeploy-operator`) as a separate process against a test cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.localcluster import ROOT, LocalCluster, free_port

CRD = ROOT / "crds" / "modeldeployment.yaml"


def install_crd(cluster: LocalCluster, timeout: float = 60.0) -> None:
    """Apply the CRD and wait until it is Established.

    `kubectl wait` right after the apply on a just-started control plane has been seen to fail at
    once (exit 1, not a timeout), so the wait is repeated until the deadline and its error shown.
    """
    cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    deadline = time.monotonic() + timeout
    while True:
        done = cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=10s", "crd/modeldeployments.modeldeploy.io",
            check=False,
        )  # fmt: skip
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"CRD not Established after {timeout}s: {done.stderr.strip()}")
        time.sleep(0.5)


class OperatorProcess:
    def __init__(
        self,
        cluster: LocalCluster,
        namespace: str | None,
        log: Path,
        extra_args: tuple[str, ...] = (),
        kubeconfig: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """`namespace` None runs the operator cluster-wide; `kubeconfig` defaults to the admin one."""
        self.cluster = cluster
        self.namespace = namespace
        self.log = log
        self.extra_args = extra_args
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.env = dict(env or {})
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "MODELDEPLOY_SIDECAR_IMAGE": "modeldeploy/modeldeploy:test",
            **self.env,
        }
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modeldeploy.operator.main",
                    *(("--namespace", self.namespace) if self.namespace else ()),
                    "--metrics-port",
                    str(self.metrics_port),
                    *self.extra_args,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reconciles(self) -> float:
        """ModelDeployment reconciles this process has run (its `/metrics`), whatever their result."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "modeldeploy_operator_reconciles"
            for sample in family.samples
            if sample.name == "modeldeploy_operator_reconciles_total"
        )

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running_operator(
    cluster: LocalCluster,
    namespace: str | None,
    log_dir: Path,
    extra_args: tuple[str, ...] = (),
    kubeconfig: Path | None = None,
) -> Iterator[OperatorProcess]:
    # A log of its own per process (two started within the same millisecond once shared one).
    log = log_dir / f"operator-{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}.log"
    op = OperatorProcess(cluster, namespace, log, extra_args, kubeconfig).start()
    try:
        yield op
    finally:
        op.stop()
