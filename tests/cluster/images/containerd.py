"""A private containerd for smoke-running built images with `ctr` (not the node's containerd).

Its config, root, state and sockets live in one temporary folder. The CRI plugin gets
`restrict_oom_score_adj = true`: this VM lacks CAP_SYS_RESOURCE, so runc cannot lower a
container's oom_score_adj (docs/packaging.md). `stop()` kills and deletes every task and
container, stops containerd, and leaves no mount under the folder.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.cluster.images.buildah import mounts_under, remove_tree

NAMESPACE = "k8s.io"  # where the kubelet looks for images


class ContainerdError(RuntimeError):
    """containerd or ctr failed; the message names the command and the log."""


class Containerd:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "containerd.sock"
        self.log = folder / "containerd.log"
        config = folder / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{folder / "root"}"\n'
            f'state = "{folder / "state"}"\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
            '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n'
        )
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while self.ctr_run_ok(["version"]) is False:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise ContainerdError(f"containerd did not start; log: {self.log}")
            time.sleep(0.2)

    def ctr_run_ok(self, args: Sequence[str]) -> bool:
        done = subprocess.run(self.ctr_args(args), capture_output=True, check=False)
        return done.returncode == 0

    def ctr_args(self, args: Sequence[str]) -> list[str]:
        return ["ctr", "--address", str(self.socket), "-n", NAMESPACE, *args]

    def ctr(self, args: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ctr; raises with its output unless it exits 0."""
        done = subprocess.run(
            self.ctr_args(args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise ContainerdError(
                f"ctr {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}"
                f"; containerd log: {self.log}"
            )
        return done

    def import_archive(self, archive: Path) -> list[str]:
        """`ctr images import` as the node does; returns the image names now in the namespace."""
        self.ctr(["images", "import", str(archive)])
        listed = self.ctr(["images", "list", "--quiet"]).stdout
        return listed.split()

    def remove_all_containers(self) -> None:
        for task in self.ctr(["tasks", "list", "--quiet"]).stdout.split():
            subprocess.run(self.ctr_args(["tasks", "kill", "--signal", "SIGKILL", task]), capture_output=True)
            for _ in range(50):
                if (
                    subprocess.run(self.ctr_args(["tasks", "delete", task]), capture_output=True).returncode
                    == 0
                ):
                    break
                time.sleep(0.1)
        for container in self.ctr(["containers", "list", "--quiet"]).stdout.split():
            self.ctr(["containers", "delete", container])

    def stop(self) -> list[Path]:
        """Stop everything; returns the mounts that were left under the folder (then removed)."""
        with contextlib.suppress(ContainerdError):
            self.remove_all_containers()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        left = mounts_under(self.folder)
        remove_tree(self.folder)
        return left


@contextlib.contextmanager
def running(parent: Path | None = None) -> Iterator[Containerd]:
    folder = Path(tempfile.mkdtemp(prefix="containerd-", dir=parent))
    containerd = Containerd(folder)
    try:
        yield containerd
    finally:
        left = containerd.stop()
    if left:
        raise ContainerdError(f"mounts were left behind (now removed): {', '.join(map(str, left))}")
