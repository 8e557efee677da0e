"""Start, watch and stop the local cluster's processes; every failure names its component and log.

One `Component` per process (etcd, kube-apiserver, containerd, kubelet, ...): it owns a log file
under the run folder's `logs/`, runs in its own session (so a signal reaches its children too), and
a failure message always says which component failed and where its log is.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HARNESS_PORTS = range(20000, 30000)
"""Ports `free_port` hands out: below the kernel's ephemeral range (net.ipv4.ip_local_port_range,
32768-60999 by default) and NodePorts (30000-32767), above Kubernetes' own (10250-10259). A port
picked by bind(0) is an ephemeral one, so between the harness picking it and the process it is for
binding it, any bind(0) or outgoing connection on the machine could take it: BentoML's own zmq
endpoint took a model server's port so (`Address already in use`, a revision that never started)."""
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port nothing is bound to and this process has not handed out before."""
    with _handed_out_lock:
        for port in random.sample(HARNESS_PORTS, len(HARNESS_PORTS)):
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise ClusterError(f"no free port left in {HARNESS_PORTS.start}-{HARNESS_PORTS.stop - 1}")


class ClusterError(RuntimeError):
    """The local cluster could not be built, started, reached or cleaned up."""


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env,
            )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ClusterError(f"{self.name} was never started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ClusterError(
                f"{self.name} exited with {self.proc.returncode} (log: {self.log}); "
                f"last log lines:\n{log_tail(self.log)}"
            )

    def failure(self, what: str) -> ClusterError:
        """An error for `what` went wrong in this component, naming its log."""
        return ClusterError(f"{self.name}: {what} (log: {self.log}); last log lines:\n{log_tail(self.log)}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the component's process group; SIGKILL after `grace` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wait_until(
    predicate: Callable[[], bool],
    deadline: float,
    component: Component,
    what: str,
    watch: Sequence[Component] = (),
    interval: float = 0.2,
) -> None:
    """Poll `predicate` until the deadline; fail early, naming the component, if one of `watch` exits."""
    while time.monotonic() < deadline:
        for c in (component, *watch):
            c.check_alive()
        if predicate():
            return
        time.sleep(interval)
    raise component.failure(f"{what} before the deadline")


def stop_pid_group(pid: int, grace: float = 10.0) -> None:
    """Stop a process group by the pid of its leader (a component started by an earlier process)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
