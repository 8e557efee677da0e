"""The real node's own images, built here without a registry or a base image.

- `pause`: the pod sandbox image containerd's CRI starts for every Pod (tests/cluster/pause/pause.c,
  compiled with `gcc -static`), one file in the image.
- `testbox`: Debian's statically linked busybox (package busybox-static) as /bin/busybox with a link
  per applet (sh, httpd, wget, nslookup, sleep, ...) for the node's own tests and for people trying it.

Both are written as OCI archives into `$MODELDEPLOY_CACHE/cluster/node-images/`, named by the hash of
their inputs, so a second run builds nothing. Images built from the project's Dockerfiles (the images
helper's `$MODELDEPLOY_CACHE/images/refs.json`) are listed by `project_image_archives()`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.oci_image import ImageFile, write_oci_archive
from tests.cluster.processes import ClusterError

HERE = Path(__file__).resolve().parent
PAUSE_SOURCE = HERE / "pause" / "pause.c"
BUSYBOX = Path("/bin/busybox")
PAUSE_IMAGE = "localhost/modeldeploy/pause:1"
TESTBOX_IMAGE = "localhost/modeldeploy/testbox:1"


@dataclass(frozen=True)
class ImageArchive:
    name: str
    ref: str
    archive: Path


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _prune(out_dir: Path, prefix: str, keep: Path) -> None:
    """Remove the archives an older version of an image's inputs left in the cache."""
    for old in out_dir.glob(f"{prefix}*.tar"):
        if old != keep:
            old.unlink()


def pause_archive(cache: Path) -> ImageArchive:
    out_dir = cache / "cluster" / "node-images"
    key = _digest(PAUSE_SOURCE.read_bytes(), PAUSE_IMAGE.encode())
    archive = out_dir / f"pause-{key}.tar"
    if not archive.exists():
        binary = out_dir / f"pause-{key}.bin"
        out_dir.mkdir(parents=True, exist_ok=True)
        cc = subprocess.run(
            ["gcc", "-static", "-Os", "-s", "-Wall", "-Werror", "-o", str(binary), str(PAUSE_SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if cc.returncode != 0:
            raise ClusterError(f"pause image: gcc -static failed:\n{cc.stderr}")
        write_oci_archive(archive, PAUSE_IMAGE, [ImageFile("/pause", source=binary)], entrypoint=["/pause"])
        binary.unlink()
        _prune(out_dir, "pause-", archive)
    return ImageArchive("pause", PAUSE_IMAGE, archive)


def testbox_archive(cache: Path) -> ImageArchive:
    if not BUSYBOX.exists():
        raise ClusterError(f"{BUSYBOX} is missing: `make install` installs Debian's busybox-static")
    out_dir = cache / "cluster" / "node-images"
    key = _digest(BUSYBOX.read_bytes(), TESTBOX_IMAGE.encode(), b"applet links")
    archive = out_dir / f"testbox-{key}.tar"
    if not archive.exists():
        applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
        links = [
            ImageFile(f"/bin/{a}", symlink_to="busybox") for a in sorted(set(applets.split()) - {"busybox"})
        ]
        files = [ImageFile("/bin/busybox", source=BUSYBOX), *links]
        write_oci_archive(archive, TESTBOX_IMAGE, files, entrypoint=[], cmd=["/bin/sh"])
        _prune(out_dir, "testbox-", archive)
    return ImageArchive("testbox", TESTBOX_IMAGE, archive)


def project_image_archives(cache: Path) -> list[ImageArchive]:
    """The images built from the project's Dockerfiles (`make images`), if any were built.

    `$MODELDEPLOY_CACHE/images/refs.json` maps a short name to {"ref": ..., "archive": ...}.
    """
    refs = cache / "images" / "refs.json"
    if not refs.exists():
        return []
    try:
        listed = json.loads(refs.read_text())
        images = [ImageArchive(name, str(v["ref"]), Path(v["archive"])) for name, v in listed.items()]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClusterError(f"{refs}: not a map of name -> {{ref, archive}}: {exc}") from exc
    missing = [str(i.archive) for i in images if not i.archive.exists()]
    if missing:
        raise ClusterError(f"{refs} lists archives that do not exist: {', '.join(missing)}")
    return images
