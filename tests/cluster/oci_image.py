"""Write a single-layer OCI image archive (an `oci-archive`, the format `ctr images import` reads).

Used for the node's own tiny images (the pause image, a busybox test image), which hold one or two
static binaries and need no base image: the archive is written byte-for-byte reproducibly (fixed
mtimes and owners, no compression), so its content hash doubles as the cache key.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class ImageFile:
    """One entry of the image's only layer: a regular file copied from `source`, or a symlink."""

    path: str
    source: Path | None = None
    symlink_to: str | None = None
    mode: int = 0o755


def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def layer_tar(files: list[ImageFile]) -> bytes:
    dirs: set[str] = set()
    for f in files:
        parts = f.path.strip("/").split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info(d + "/", tarfile.DIRTYPE, 0o755), None) for d in sorted(dirs)
    ]
    for f in sorted(files, key=lambda f: f.path):
        name = f.path.strip("/")
        if f.symlink_to is not None:
            entries.append((_info(name, tarfile.SYMTYPE, 0o777, linkname=f.symlink_to), None))
        elif f.source is not None:
            data = f.source.read_bytes()
            entries.append((_info(name, tarfile.REGTYPE, f.mode, size=len(data)), data))
        else:
            raise ValueError(f"image file {f.path}: neither a source nor a symlink target")
    return _tar_bytes(entries)


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def write_oci_archive(
    path: Path, ref: str, files: list[ImageFile], entrypoint: list[str], cmd: list[str] | None = None
) -> str:
    """Write the archive to `path` (atomically) and return the manifest digest."""
    layer_digest, layer = _blob(layer_tar(files))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd or [], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "tests/cluster/oci_image.py", "created": "1970-01-01T00:00:00Z"}],
    }
    config_digest, config_bytes = _blob(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": len(layer)}],
    }
    manifest_digest, manifest_bytes = _blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                # containerd names the imported image after this annotation
                "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, data in [
        ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
        ("index.json", json.dumps(index, sort_keys=True).encode()),
        *[
            (f"blobs/sha256/{d.split(':', 1)[1]}", b)
            for d, b in [
                (layer_digest, layer),
                (config_digest, config_bytes),
                (manifest_digest, manifest_bytes),
            ]
        ],
    ]:
        entries.append((_info(name, tarfile.REGTYPE, 0o644, size=len(data)), data))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(
        _tar_bytes(
            [
                (_info("blobs/", tarfile.DIRTYPE, 0o755), None),
                (_info("blobs/sha256/", tarfile.DIRTYPE, 0o755), None),
                *entries,
            ]
        )
    )
    tmp.replace(path)
    return manifest_digest


def archive_manifest_digests(path: Path) -> list[str]:
    """The manifest digests an OCI or docker archive's index names (to skip re-importing)."""
    with tarfile.open(path) as tar:
        try:
            member = tar.extractfile("index.json")
        except KeyError:
            return []
        if member is None:
            return []
        index = json.load(member)
    return [str(m["digest"]) for m in index.get("manifests", [])]
