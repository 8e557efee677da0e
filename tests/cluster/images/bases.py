"""Debian bookworm base images made by debootstrap, standing in for the public bases we cannot pull.

One `debootstrap --variant=minbase bookworm` run gives two bases:

python  for `python:3.11-slim-bookworm` (the top-level Dockerfile's PYTHON_IMAGE) and `python:3.11-slim`
        (the FROM of the Dockerfile BentoML renders): python3.11 with venv and pip, `python` on PATH,
        and pip allowed to install into the system (no EXTERNALLY-MANAGED marker, as in the python image).
cc      for `gcr.io/distroless/cc-debian12:nonroot` (sidecar/Dockerfile): glibc, libgcc, the CA bundle,
        /etc/passwd with root and nonroot (65532), /tmp; no shell, no package manager.

This machine reaches PyPI through a TLS-intercepting egress proxy whose CA it trusts
(/usr/local/share/ca-certificates). The bases trust the same local CAs, and pip and uv are told to
use the system store (/etc/pip.conf, /etc/uv/uv.toml), so RUN steps that fetch from PyPI work here;
without local CAs the bases carry none of this. These images are for the local node only.

Both are kept small: no apt lists or caches, no docs, man pages or locales, and later package
installs skip docs too (a dpkg path-exclude, as Debian's own slim images do). This file is the base
recipe: its bytes are part of every image's content hash, so editing it rebuilds everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.images.buildah import Buildah, ImageBuildError, remove_tree, unmount_all_under

MIRROR = os.environ.get("MODELDEPLOY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PYTHON_PACKAGES = ("python3.11", "python3.11-venv", "python3-pip", "python-is-python3", "ca-certificates")
CC_PACKAGES = ("libc6", "libgcc-s1")  # what a Rust binary for x86_64-unknown-linux-gnu links against
STRIP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/linda",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "var/log",
    "dev",
    "run",
    "tmp",
)
DPKG_EXCLUDES = """\
# Like Debian's slim images: packages installed later leave out docs, man pages and locales.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""
APT_SOURCES = f"""\
deb {MIRROR} {SUITE} main
deb {MIRROR} {SUITE}-updates main
deb {MIRROR}-security {SUITE}-security main
"""
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
PIP_CONF = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
UV_TOML = "native-tls = true\n"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NONROOT = 65532


@dataclass(frozen=True)
class Bases:
    """OCI archives of the two bases, and the names images are built against."""

    python: Path
    cc: Path
    python_ref: str
    cc_ref: str


def recipe_text() -> str:
    """What identifies a base: this recipe, the mirror and the tools that run it."""
    debootstrap = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "debootstrap"], capture_output=True, text=True, check=False
    ).stdout
    cas = "".join(f"{ca.name}\n{ca.read_text()}" for ca in local_cas())
    return f"{Path(__file__).read_text()}\nmirror={MIRROR}\ndebootstrap={debootstrap}\n{cas}"


def local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def trust_local_cas(rootfs: Path) -> None:
    """The CAs this machine adds to its trust store, added to the base's (kept by later ca-certificates
    upgrades, which rebuild the bundle from /usr/local/share/ca-certificates)."""
    cas = local_cas()
    if not cas:
        return
    target = rootfs / LOCAL_CAS.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for ca in cas:
        shutil.copy2(ca, target / ca.name)
    subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True)
    (rootfs / "etc/pip.conf").write_text(PIP_CONF)
    (rootfs / "etc/uv").mkdir(exist_ok=True)
    (rootfs / "etc/uv/uv.toml").write_text(UV_TOML)


def debootstrap(rootfs: Path, log: Path) -> None:
    args = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PYTHON_PACKAGES)}",
        SUITE,
        str(rootfs),
        MIRROR,
    ]
    with log.open("a") as out:
        out.write(f"\n### debootstrap: {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False)
    # debootstrap mounts /proc and /sys in the target while it configures packages; a failed run can
    # leave them behind.
    unmount_all_under(rootfs)
    if done.returncode != 0:
        raise ImageBuildError(
            f"debootstrap of {SUITE} from {MIRROR} failed (exit {done.returncode}); log: {log}"
        )


def slim(rootfs: Path) -> None:
    """Drop what an image does not need and what debootstrap copied from this host."""
    for rel in STRIP:
        folder = rootfs / rel
        if folder.is_dir() and not folder.is_symlink():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc/resolv.conf").write_text("")  # the runtime mounts its own; never this host's
    (rootfs / "etc/hostname").unlink(missing_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/modeldeploy-slim").write_text(DPKG_EXCLUDES)
    (rootfs / "etc/apt/sources.list").write_text(APT_SOURCES)
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)


def package_files(rootfs: Path, package: str) -> list[str]:
    out = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs / 'var/lib/dpkg'}", "-L", package],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line.lstrip("/") for line in out.stdout.splitlines() if line.strip() not in ("", "/.")]


def cc_rootfs(rootfs: Path, target: Path) -> None:
    """A distroless-like tree: the C runtime's files copied out of the Debian tree, and a few /etc files."""
    target.mkdir()
    for link in ("bin", "sbin", "lib", "lib64"):  # merged /usr, as in the Debian tree
        if (rootfs / link).is_symlink():
            (target / link).symlink_to(os.readlink(rootfs / link))
            (target / link).resolve().mkdir(parents=True, exist_ok=True)
    wanted = [rel for pkg in CC_PACKAGES for rel in package_files(rootfs, pkg)]
    wanted += ["etc/ssl/certs/ca-certificates.crt", "usr/lib/os-release", "etc/os-release"]
    for rel in wanted:
        source = rootfs / rel
        if rel.startswith(("usr/share/doc/", "usr/share/lintian/")) and not rel.endswith("/copyright"):
            continue
        if "/gconv/" in rel:
            continue  # iconv charset modules (8 MB): nothing a Rust binary loads
        if not source.is_symlink() and (source.is_dir() or not source.exists()):
            continue
        dest = target / rel
        if dest.is_symlink() or dest.exists():
            continue  # a merged-/usr link made above, or listed twice (/lib/... and /usr/lib/...)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest, follow_symlinks=False)
    etc = target / "etc"
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nnonroot:x:{NONROOT}:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    for folder, mode in (("tmp", 0o1777), ("root", 0o700), ("home/nonroot", 0o700)):
        (target / folder).mkdir(parents=True, exist_ok=True)
        (target / folder).chmod(mode)
    os.chown(target / "home/nonroot", NONROOT, NONROOT)


def tar_tree(tree: Path, archive: Path) -> None:
    with tarfile.open(archive, "w") as tar:
        for child in sorted(tree.iterdir()):
            tar.add(child, arcname=child.name)


def commit_tree(buildah: Buildah, tree: Path, ref: str, config: list[str]) -> None:
    archive = tree.with_suffix(".tar")
    tar_tree(tree, archive)
    container = buildah.run(f"from scratch for {ref}", ["buildah", "from", "scratch"]).strip()
    buildah.run(f"add {tree.name}", ["buildah", "add", container, str(archive), "/"])
    buildah.run(f"config {ref}", ["buildah", "config", *config, container])
    buildah.run(f"commit {ref}", ["buildah", "commit", "--rm", "--quiet", container, ref])
    archive.unlink()


def build_bases(buildah: Buildah, workdir: Path, out: Path, tag: str) -> Bases:
    """Make both bases (debootstrap once) and push them as OCI archives into `out`."""
    python_ref = f"localhost/modeldeploy-base/python:3.11-{SUITE}-{tag}"
    cc_ref = f"localhost/modeldeploy-base/cc:{SUITE}-{tag}"
    bases = Bases(out / f"python-{tag}.tar", out / f"cc-{tag}.tar", python_ref, cc_ref)
    if bases.python.exists() and bases.cc.exists():
        return bases
    tree = workdir / f"base-{tag}"
    remove_tree(tree)
    tree.mkdir(parents=True)
    try:
        rootfs = tree / "rootfs"
        debootstrap(rootfs, buildah.log)
        trust_local_cas(rootfs)
        cc_rootfs(rootfs, tree / "cc")  # before slim(): it copies the copyright files
        slim(rootfs)
        label = f"org.opencontainers.image.description=modeldeploy local base: debootstrap {SUITE}"
        common = ["--env", f"PATH={PATH}", "--label", label]
        commit_tree(buildah, rootfs, python_ref, [*common, "--env", "LANG=C.UTF-8", "--cmd", '["python3"]'])
        commit_tree(
            buildah, tree / "cc", cc_ref,
            [*common, "--env", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
             "--user", f"{NONROOT}:{NONROOT}", "--workingdir", "/home/nonroot"],
        )  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        buildah.push_archive(python_ref, bases.python)
        buildah.push_archive(cc_ref, bases.cc)
    finally:
        remove_tree(tree)
    return bases
