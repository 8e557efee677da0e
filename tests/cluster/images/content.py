"""What goes into an image, staged and hashed: the content tag that names it and keys the cache.

A build never sees the work tree: `stage()` copies the Dockerfile and exactly the files its COPY
instructions name (minus what `.dockerignore` excludes, as Docker would) into a fresh context, and
the tag is a hash of that staged context plus the base and tool versions. What is hashed is what
is built, so a second run with nothing changed finds its archive and rebuilds nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from tests.packaging.dockerfile import stages

TAG_LENGTH = 16


def ignore_rules(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """`.dockerignore` as (excludes, regex) rules; later rules win, `!` re-includes."""
    path = context / ".dockerignore"
    rules: list[tuple[bool, re.Pattern[str]]] = []
    if not path.exists():
        return rules
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((not include, re.compile(regex + "(?:/.*)?")))
    return rules


def is_ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a path is excluded when the last rule matching it (or a parent) excludes."""
    excluded = False
    for excludes, regex in rules:
        if regex.fullmatch(rel):
            excluded = excludes
    return excluded


def copy_sources(dockerfile: Path) -> list[str]:
    """Context paths named by COPY/ADD instructions (not those copying from another stage)."""
    sources: list[str] = []
    for stage in stages(dockerfile):
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            words = instruction.value.split()
            if any(word.startswith("--from") for word in words):
                continue
            *named, _dest = [word for word in words if not word.startswith("--")]
            sources += [name.rstrip("/") or "." for name in named]
    return sources


def files_under(root: Path, rel: str) -> Iterable[str]:
    path = root / rel
    if path.is_file():
        yield rel
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: named by a COPY instruction but missing")
    for child in sorted(path.rglob("*")):
        if child.is_file() or child.is_symlink():
            yield child.relative_to(root).as_posix()


def stage(context: Path, dockerfile: Path, target: Path, extra: dict[str, Path] | None = None) -> None:
    """A fresh build context in `target`: the Dockerfile, .dockerignore and the files COPY names.

    `extra` maps context paths to files that live elsewhere (a binary built into the cache)."""
    target.mkdir(parents=True)
    shutil.copy2(dockerfile, target / "Dockerfile")
    if (context / ".dockerignore").exists():
        shutil.copy2(context / ".dockerignore", target / ".dockerignore")
    rules = ignore_rules(context)
    for rel_source in copy_sources(dockerfile):
        if extra and rel_source in extra:
            continue
        for rel in files_under(context, rel_source):
            if is_ignored(rel, rules):
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context / rel, target / rel, follow_symlinks=False)
    for rel, source in (extra or {}).items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / rel)


def tree_manifest(root: Path) -> str:
    """One line per file under `root`: path, executable bit, sha256 of the bytes (or the link target)."""
    return tree_manifest_of(root, sorted(root.rglob("*")))


def tree_manifest_of(root: Path, paths: Iterable[Path]) -> str:
    lines = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            lines.append(f"{rel} link {path.readlink()}")
        elif path.is_file():
            executable = "x" if path.stat().st_mode & 0o111 else "-"
            lines.append(f"{rel} {executable} {hashlib.sha256(path.read_bytes()).hexdigest()}")
    return "\n".join(lines)


def content_tag(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:TAG_LENGTH]
