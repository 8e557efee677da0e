"""The built images, imported into a real containerd and run with `ctr` as the node will run them:
read-only root filesystem, the image's own numeric user, a writable /tmp where the pod has one.

The session fixture runs the same build as `make images` (a no-op when its archives are cached).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.operator.planner.children import MODEL_BENTOML_HOME
from tests.cluster.images import build
from tests.cluster.images.containerd import Containerd, ContainerdError, running
from tests.cluster.localcluster import free_port

pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(3600)]

TMPFS = "type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777"
# Stands in for the Rust sidecar until it lands: dynamically linked against glibc and libgcc_s
# like any x86_64-unknown-linux-gnu release binary, so it proves the base carries their runtime.
PROBE_RS = r"""
use std::{env, fs};
fn main() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let ids = |key: &str| status.lines().find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)).unwrap_or("?").to_string();
    let write = fs::write("/home/nonroot/probe", b"x").err().and_then(|e| e.raw_os_error()).unwrap_or(0);
    let ca = fs::metadata("/etc/ssl/certs/ca-certificates.crt").map(|m| m.len() > 0).unwrap_or(false);
    let args: Vec<String> = env::args().skip(1).collect();
    println!("probe uid={} gid={} home_write_errno={} ca_bundle={} args={}",
             ids("Uid:"), ids("Gid:"), write, ca, args.join(","));
}
"""
EROFS = 30


@pytest.fixture(scope="session")
def images() -> dict[str, build.Image]:
    return {image.name: image for image in build.build()}


@pytest.fixture
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    with running(tmp_path_factory.mktemp("ctrd")) as daemon:
        yield daemon
        daemon.remove_all_containers()


def container_id(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


def test_refs_json_lists_every_built_image_by_content_tag(images: dict[str, build.Image]) -> None:
    refs = json.loads(build.REFS.read_text())
    assert {"operator", "iris"} <= set(refs)
    assert set(refs) == set(images)
    for name, entry in refs.items():
        image = images[name]
        assert entry == {"ref": f"localhost/modeldeploy/{name}:{image.tag}", "archive": str(image.archive)}
        assert Path(entry["archive"]).is_absolute() and Path(entry["archive"]).stat().st_size > 0


def test_a_second_build_rebuilds_nothing(images: dict[str, build.Image]) -> None:
    stamps = {name: image.archive.stat().st_mtime_ns for name, image in images.items()}
    again = {image.name: image for image in build.build()}
    assert {name: image.cached for name, image in again.items()} == dict.fromkeys(images, True)
    assert {name: image.ref for name, image in again.items()} == {n: i.ref for n, i in images.items()}
    assert {name: image.archive.stat().st_mtime_ns for name, image in again.items()} == stamps


def test_operator_image_runs_as_65532_on_a_read_only_root(
    images: dict[str, build.Image], containerd: Containerd
) -> None:
    image = images["operator"]
    assert image.ref in containerd.import_archive(image.archive)
    script = "id -u; id -g; modeldeploy-operator --help; touch /opt/x 2>&1 || true"
    out = containerd.ctr(
        ["run", "--rm", "--read-only", image.ref, container_id("operator"), "sh", "-c", script]
    ).stdout
    uid, gid, *rest = out.splitlines()
    assert (uid, gid) == ("65532", "65532")
    assert "usage: modeldeploy-operator" in out.lower()
    assert "Read-only file system" in rest[-1]


def test_iris_image_serves_classify_with_its_env_switches(
    images: dict[str, build.Image], containerd: Containerd, tmp_path: Path
) -> None:
    image = images["iris"]
    assert image.ref in containerd.import_archive(image.archive)
    port = free_port()
    log = tmp_path / "iris.log"
    env = {
        "PORT": str(port),
        "BENTOML_HOME": MODEL_BENTOML_HOME,
        "IRIS_VARIANT": "b",
        "IRIS_LATENCY_MS": "25",
    }
    name = container_id("iris")
    containerd.ctr(
        ["run", "--detach", "--net-host", "--read-only", "--mount", TMPFS, "--log-uri", f"file://{log}",
         *(f"--env={key}={value}" for key, value in env.items()), image.ref, name],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"iris never ready on {base}; container log:\n{log.read_text()}"
        time.sleep(1)

    def post(path: str, body: object) -> object:
        request = urllib.request.Request(
            f"{base}{path}", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    assert post("/classify", {"features": rows}) == ["setosa", "virginica"]
    assert post("/faults", {}) == {"variant": "b", "latency_ms": 25.0, "fail_rate": 0.0}
    spec = json.loads(containerd.ctr(["containers", "info", name]).stdout)["Spec"]
    assert spec["process"]["user"]["uid"] == 1034, "BentoML's user, by the numeric USER the template adds"


def test_sidecar_dockerfile_gives_a_nonroot_distroless_image(tmp_path: Path, containerd: Containerd) -> None:
    rustc = shutil.which("rustc") or str(Path.home() / ".cargo" / "bin" / "rustc")
    source = tmp_path / "probe.rs"
    source.write_text(PROBE_RS)
    binary = tmp_path / "modeldeploy-sidecar"
    subprocess.run(
        [rustc, "-O", "-o", str(binary), str(source)], check=True, capture_output=True, timeout=300
    )
    [image] = build.build(
        out=tmp_path / "images", bases_dir=build.IMAGES / "bases", sidecar_binary=binary,
        names=frozenset({"sidecar"}), refs=None,
    )  # fmt: skip
    assert image.archive.stat().st_size < 40 * 2**20, "a distroless-sized image"
    assert image.ref in containerd.import_archive(image.archive)
    out = containerd.ctr(["run", "--rm", "--read-only", image.ref, container_id("sidecar")]).stdout
    assert out.strip() == f"probe uid=65532 gid=65532 home_write_errno={EROFS} ca_bundle=true args="
    # No shell in the image: a command other than the binary cannot run.
    with pytest.raises(ContainerdError, match="sh"):
        containerd.ctr(["run", "--rm", image.ref, container_id("sidecar-sh"), "sh", "-c", "true"])
