"""Start, watch and stop the local cluster's processes; every failure names its component and log.

One `Component` per process (etcd, kube-apiserver, containerd, kubelet, ...): it owns a log file
under the run folder's `logs/`, runs in its own session (so a signal reaches its children too), and
a failure message always says which component failed and where its log is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
