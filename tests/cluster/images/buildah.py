"""buildah with a private, throw-away image store.

Every build runs against its own `vfs` store in a temporary folder (no overlay mounts, nothing shared
with other buildah users on the machine); what outlives it is only the OCI archives pushed out of it.
RUN steps use `--isolation chroot` (root in this VM, no user namespaces needed); buildah mounts
/proc, /sys and /dev inside the build root only while a step runs, and `close()` unmounts anything
left under the folder (a killed build) before deleting it, never crossing into a mount.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType


class ImageBuildError(RuntimeError):
    """A step of an image build failed; the message names the step and its log."""


def mounts_under(folder: Path) -> list[Path]:
    """Mount points at or below `folder`, deepest first (the order to unmount them)."""
    prefix = str(folder.resolve())
    found: list[Path] = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all_under(folder: Path) -> None:
    for point in mounts_under(folder):
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
    left = mounts_under(folder)
    if left:
        raise ImageBuildError(f"could not unmount {', '.join(map(str, left))}; not deleting {folder}")


def remove_tree(folder: Path) -> None:
    """Delete a build folder: unmount leftovers first, and never follow a mount out of it."""
    if not folder.exists():
        return
    unmount_all_under(folder)
    subprocess.run(["rm", "-rf", "--one-file-system", str(folder)], check=True)


def version() -> str:
    out = subprocess.run(["buildah", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Buildah:
    """`buildah` against a private vfs store under `workdir`; use as a context manager."""

    def __init__(self, workdir: Path, log: Path) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="buildah-", dir=workdir))
        self.log = log
        conf = self.folder / "storage.conf"
        conf.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'graphroot = "{self.folder / "root"}"\n'
            f'runroot = "{self.folder / "run"}"\n'
        )
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "BUILDAH_ISOLATION": "chroot"}

    def __enter__(self) -> Buildah:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        remove_tree(self.folder)

    def run(
        self,
        step: str,
        args: Sequence[str],
        extra_env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> str:
        """Run a command (buildah or a tool that calls buildah) with this store; returns its standard
        output, which also goes to the log as it comes (with its standard error)."""
        env = {**self.env, **(extra_env or {})}
        lines: list[str] = []
        with self.log.open("a") as log:
            log.write(f"\n### {step}: {' '.join(args)}\n")
            log.flush()
            with subprocess.Popen(
                list(args), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=log, text=True
            ) as done:
                assert done.stdout is not None
                for line in done.stdout:
                    lines.append(line)
                    log.write(line)
                    log.flush()
        if done.returncode != 0:
            tail = "".join(self.log.read_text().splitlines(keepends=True)[-15:])
            raise ImageBuildError(f"{step} failed (exit {done.returncode}); log: {self.log}\n{tail}")
        return "".join(lines)

    def load(self, archive: Path, *names: str) -> None:
        """Put an OCI archive into the store under each of `names` (how a base gets its FROM name)."""
        image_id = self.run(f"load {archive.name}", ["buildah", "pull", "--quiet", f"oci-archive:{archive}"])
        image_id = image_id.strip().splitlines()[-1]
        for name in names:
            self.run(f"tag {name}", ["buildah", "tag", image_id, name])

    def build(
        self,
        step: str,
        context: Path,
        ref: str,
        build_args: Mapping[str, str],
        dockerfile: str = "Dockerfile",
    ) -> None:
        args = ["buildah", "build", "--isolation", "chroot", "--pull=never", "--layers=false"]
        args += ["-f", str(context / dockerfile), "-t", ref]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        self.run(step, [*args, str(context)])

    def push_archive(self, ref: str, archive: Path) -> None:
        """Export `ref` as an OCI archive whose index names the image `ref` (what `ctr import` reads)."""
        partial = archive.with_name(archive.name + ".partial")
        partial.unlink(missing_ok=True)
        self.run(f"push {ref}", ["buildah", "push", "--quiet", ref, f"oci-archive:{partial}:{ref}"])
        partial.replace(archive)


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ImageBuildError(f"missing {', '.join(missing)}: run `make install-system` (Debian packages)")
