"""`make images`: the modeldeploy, iris and sidecar images as OCI archives, cached by content.

    python -m tests.cluster.images.build [--sidecar-binary PATH]

Each image is named `localhost/modeldeploy/<name>:<content tag>` and exported to
`$MODELDEPLOY_CACHE/images/<name>-<tag>.tar`; `refs.json` there maps each name to its ref and
archive, which the node imports with `ctr -n k8s.io images import`. When every archive for the
current inputs exists, nothing is built (buildah is not even started).

operator  the top-level Dockerfile, FROM the debootstrapped python base (--build-arg PYTHON_IMAGE)
iris      `bentoml build serving/examples/iris` + `bentoml containerize --backend buildah`; the
          Dockerfile BentoML renders says FROM python:3.11-slim, which names the same local base
sidecar   sidecar/Dockerfile over the Rust release binary built by `make` (skipped, with a message,
          while that binary does not exist), FROM the distroless-like cc base (--build-arg BASE_IMAGE)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.images import bases, buildah, content
from tests.cluster.localcluster import CACHE, ROOT

IMAGES = CACHE / "images"
REFS = IMAGES / "refs.json"
SIDECAR_BINARY = Path(
    os.environ.get(
        "MODELDEPLOY_SIDECAR_BIN", CACHE / "sidecar" / "target" / "release" / "modeldeploy-sidecar"
    )
)
IRIS = ROOT / "serving" / "examples" / "iris"
SIDECAR_DIR = ROOT / "sidecar"
REPOSITORY = "localhost/modeldeploy"
# The public names our Dockerfiles start FROM; in the throw-away store they name the local bases.
BENTOML_BASE = "docker.io/library/python:3.11-slim"


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    archive: Path
    context: Path | None  # the staged build context (None for iris: BentoML stages its own)
    cached: bool = False

    @property
    def ref(self) -> str:
        return f"{REPOSITORY}/{self.name}:{self.tag}"

    def entry(self) -> dict[str, str]:
        return {"ref": self.ref, "archive": str(self.archive)}


def tools() -> str:
    bentoml_version = subprocess.run(
        [str(bentoml_cli()), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"{buildah.version()}\n{bentoml_version}\n"


def bentoml_cli() -> Path:
    return Path(sys.executable).with_name("bentoml")


def iris_manifest() -> str:
    files = [p for p in sorted(IRIS.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    return content.tree_manifest_of(IRIS, files)


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """One build at a time per cache folder (helpers and CI may share it)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def plan(work: Path, out: Path, base_tag: str, sidecar_binary: Path | None, names: set[str]) -> list[Image]:
    """The images to have, each with its content tag; stages the contexts buildah will build."""
    toolset = tools()
    planned: list[Image] = []

    def image(name: str, *parts: str, context: Path | None) -> Image:
        tag = content.content_tag(name, base_tag, toolset, *parts)
        archive = out / f"{name}-{tag}.tar"
        return Image(name, tag, archive, context, cached=archive.exists())

    if "operator" in names:
        context = work / "operator"
        content.stage(ROOT, ROOT / "Dockerfile", context)
        planned.append(image("operator", content.tree_manifest(context), context=context))
    if "iris" in names:
        planned.append(image("iris", iris_manifest(), context=None))
    if "sidecar" in names:
        if sidecar_binary is None or not sidecar_binary.is_file():
            print(
                f"sidecar image: skipped: no release binary at {sidecar_binary} "
                "(build it with `make sidecar-build`, or pass --sidecar-binary)",
                file=sys.stderr,
            )
        else:
            context = work / "sidecar"
            binary = {"target/release/modeldeploy-sidecar": sidecar_binary}
            content.stage(SIDECAR_DIR, SIDECAR_DIR / "Dockerfile", context, extra=binary)
            planned.append(image("sidecar", content.tree_manifest(context), context=context))
    return planned


def build_iris(store: buildah.Buildah, work: Path, image: Image) -> None:
    """The way users build a model image: `bentoml build`, then `bentoml containerize` with buildah."""
    env = {"BENTOML_HOME": str(work / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    out = store.run("bentoml build", [str(bentoml_cli()), "build", str(IRIS), "--output", "tag"], env)
    bento = out.strip().splitlines()[-1].removeprefix("__tag__:")
    # BentoML 1.4 copies the Bento into a temporary context and refuses a dockerfile_template there
    # unless the working directory contains it and no part of its path starts with a dot (the cache
    # is under ~/.cache): give it a temporary folder of its own and work from there.
    scratch = Path(tempfile.mkdtemp(prefix="modeldeploy-containerize-", dir="/var/tmp"))
    try:
        store.run(
            "bentoml containerize",
            [str(bentoml_cli()), "containerize", bento, "--backend", "buildah", "--image-tag", image.ref,
             "--opt", "isolation=chroot", "--opt", "pull-never"],
            {**env, "TMPDIR": str(scratch)},
            cwd=scratch,
        )  # fmt: skip
    finally:
        buildah.remove_tree(scratch)


def planned(
    work: Path, out: Path, sidecar_binary: Path | None, names: Collection[str]
) -> tuple[str, list[Image]]:
    """The bases' tag and the images `names` as the working tree's sources would build them now."""
    base_tag = content.content_tag(bases.recipe_text(), buildah.version())
    return base_tag, plan(work, out, base_tag, sidecar_binary, set(names))


def build(
    out: Path = IMAGES,
    bases_dir: Path | None = None,
    sidecar_binary: Path | None = SIDECAR_BINARY,
    names: frozenset[str] = frozenset({"operator", "iris", "sidecar"}),
    refs: Path | None = REFS,
) -> list[Image]:
    """Have every image in `names` as an OCI archive in `out`; build only what is missing."""
    buildah.require_tools("buildah", "debootstrap")
    bases_dir = bases_dir or out / "bases"
    with locked(out):
        work = Path(tempfile.mkdtemp(prefix="work-", dir=out))
        try:
            base_tag, images = planned(work, out, sidecar_binary, names)
            missing = [image for image in images if not image.cached]
            if missing:
                log = out / "build.log"
                log.write_text("")
                with buildah.Buildah(work, log) as store:
                    found = bases.build_bases(store, work, bases_dir, base_tag)
                    if {"operator", "iris"} & {image.name for image in missing}:
                        store.load(found.python, found.python_ref, BENTOML_BASE)
                    if "sidecar" in {image.name for image in missing}:
                        store.load(found.cc, found.cc_ref)
                    for image in missing:
                        started = time.monotonic()
                        if image.name == "iris":
                            build_iris(store, work, image)
                        elif image.name == "operator" and image.context:
                            store.build(
                                "build operator", image.context, image.ref, {"PYTHON_IMAGE": found.python_ref}
                            )
                        elif image.name == "sidecar" and image.context:
                            store.build(
                                "build sidecar", image.context, image.ref, {"BASE_IMAGE": found.cc_ref}
                            )
                        store.push_archive(image.ref, image.archive)
                        print(
                            f"{image.name}: built {image.ref} in {time.monotonic() - started:.0f}s",
                            file=sys.stderr,
                        )
            prune(out, images)
            prune_bases(bases_dir, base_tag)
            if refs is not None:
                write_refs(refs, images)
            return images
        finally:
            buildah.remove_tree(work)


def stale(out: Path = IMAGES, sidecar_binary: Path | None = SIDECAR_BINARY, refs: Path = REFS) -> list[str]:
    """The images whose ref in `refs` is not the one the working tree's sources would build now
    (so a test would run an image of other sources): "<name> (built <old>, sources now <new>)"."""
    listed = json.loads(refs.read_text()) if refs.exists() else {}
    with locked(out):
        work = Path(tempfile.mkdtemp(prefix="check-", dir=out))
        try:
            _, wanted = planned(work, out, sidecar_binary, {"operator", "iris", "sidecar"})
        finally:
            buildah.remove_tree(work)
    found = {name: str(entry.get("ref", "")) for name, entry in listed.items() if isinstance(entry, dict)}
    return [
        f"{image.name} (built {found.get(image.name) or 'never'}, sources now {image.ref})"
        for image in wanted
        if found.get(image.name) != image.ref
    ]


def prune(out: Path, images: list[Image]) -> None:
    """Drop archives of older content of the images just built (the cache holds one of each)."""
    keep = {image.archive for image in images}
    for image in images:
        for old in out.glob(f"{image.name}-*.tar"):
            if old not in keep:
                old.unlink()


def prune_bases(bases_dir: Path, base_tag: str) -> None:
    for old in bases_dir.glob("*.tar"):
        if not old.stem.endswith(base_tag):
            old.unlink()


def write_refs(path: Path, images: list[Image]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({image.name: image.entry() for image in images}, indent=2) + "\n")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sidecar-binary", type=Path, default=SIDECAR_BINARY, help="the Rust release binary")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        images = build(sidecar_binary=args.sidecar_binary)
    except buildah.ImageBuildError as error:
        print(f"make images: {error}", file=sys.stderr)
        return 1
    for image in images:
        size = image.archive.stat().st_size / 2**20
        state = "cached" if image.cached else "built"
        print(f"{image.name:9} {state:7} {size:7.1f} MiB  {image.ref}")
    print(f"refs: {REFS} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
