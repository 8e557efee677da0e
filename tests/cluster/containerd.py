"""containerd (Debian's, with its CRI plugin) for the real node: own config, root, state and socket.

- state (socket, shim sockets, container bundles and rootfs mounts) lives under the run folder;
- root (image content and snapshots) lives in `$MODELDEPLOY_CACHE/cluster/node/containerd`, so an
  image imported once is there for the next session (only one real node runs at a time);
- `restrict_oom_score_adj = true`: this VM lacks CAP_SYS_RESOURCE, runc cannot lower a container's
  oom_score_adj below containerd's own, and every sandbox failed without it;
- `SystemdCgroup = false`: no systemd here, the kubelet uses the cgroupfs driver too;
- the sandbox image is our own pause image (no registry is reachable), imported before the kubelet.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.cluster.cni import CNI_BIN_DIR
from tests.cluster.node_images import PAUSE_IMAGE, ImageArchive
from tests.cluster.oci_image import archive_manifest_digests
from tests.cluster.processes import ClusterError, Component, wait_until

CRI = 'plugins."io.containerd.grpc.v1.cri"'


def config_toml(root: Path, state: Path, socket: Path, cni_conf_dir: Path) -> str:
    return f"""\
version = 2
root = "{root}"
state = "{state}"
# plugins that would otherwise touch host-wide paths or are useless here
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[{CRI}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{CRI}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{CRI}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{CRI}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{CRI}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf_dir}"
    max_conf_num = 1
"""


class Containerd:
    def __init__(self, run_dir: Path, root: Path, log_dir: Path) -> None:
        self.root = root
        self.state = run_dir / "state"
        self.socket = self.state / "containerd.sock"
        self.config = run_dir / "config.toml"
        self.cni_conf_dir = run_dir / "net.d"
        self.component = Component(
            "containerd", ["containerd", "--config", str(self.config)], log_dir / "containerd.log"
        )

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_toml(self.root, self.state, self.socket, self.cni_conf_dir))

    def start(self, deadline: float) -> None:
        self.write_config()
        self.component.start()
        wait_until(
            lambda: self.ctr("version", check=False).returncode == 0,
            deadline,
            self.component,
            "did not answer on its socket",
        )

    def ctr(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and out.returncode != 0:
            raise self.component.failure(f"`ctr {' '.join(args)}` failed: {out.stderr.strip()}")
        return out

    def image_digests(self) -> dict[str, str]:
        """Image name -> manifest digest of the images in the CRI's namespace."""
        out = self.ctr("images", "list")
        images = {}
        for line in out.stdout.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 3:
                images[cols[0]] = cols[2]
        return images

    def import_images(self, images: list[ImageArchive]) -> list[str]:
        """Import OCI/docker archives into the node (CRI namespace, unpacked for overlayfs), skipping
        those whose manifest is already there under the same name. Returns the refs imported."""
        present = self.image_digests()
        imported = []
        for image in images:
            if not image.archive.exists():
                raise ClusterError(f"image {image.name}: archive {image.archive} does not exist")
            if present.get(image.ref) in archive_manifest_digests(image.archive):
                continue
            started = time.monotonic()
            self.ctr("images", "import", "--snapshotter", "overlayfs", str(image.archive))
            if image.ref not in self.image_digests():
                raise self.component.failure(
                    f"importing {image.archive} did not create image {image.ref} "
                    "(the archive's index names another image)"
                )
            imported.append(f"{image.ref} ({time.monotonic() - started:.1f}s)")
        return imported
