"""The content tag: staged contexts hold exactly what the Dockerfile copies, as Docker would send it."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.images import content
from tests.cluster.localcluster import ROOT


def test_dockerignore_rules_follow_dockers_matching(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("# comment\n**/__pycache__/\n*.egg-info/\n.venv/\n*\n!keep/me\n")
    rules = content.ignore_rules(tmp_path)
    assert content.is_ignored("pkg/sub/__pycache__/m.pyc", rules)
    assert content.is_ignored("x.egg-info/PKG-INFO", rules)
    assert content.is_ignored("anything", rules)
    assert not content.is_ignored("keep/me", rules), "a later ! rule re-includes"
    only_root = content.ignore_rules(tmp_path)[1:3]
    assert not content.is_ignored("pkg/x.egg-info/PKG-INFO", only_root), "a pattern without ** is rooted"


def test_the_operator_context_is_what_copy_names_minus_ignored_files(tmp_path: Path) -> None:
    assert content.copy_sources(ROOT / "Dockerfile")[:3] == ["pyproject.toml", "setup.py", "README.md"]
    context = tmp_path / "ctx"
    content.stage(ROOT, ROOT / "Dockerfile", context)
    staged = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert {"Dockerfile", ".dockerignore", "pyproject.toml", "setup.py", "README.md"} <= staged
    assert any(p.startswith("operator/modeldeploy/") for p in staged)
    assert not [p for p in staged if "__pycache__" in p or p.startswith(("tests/", "docs/", ".venv/"))]


def test_the_tag_changes_with_any_copied_byte_and_only_then(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "f").write_text("one")
    first = content.content_tag("x", content.tree_manifest(tree))
    assert content.content_tag("x", content.tree_manifest(tree)) == first
    (tree / "a" / "f").chmod(0o755)
    executable = content.content_tag("x", content.tree_manifest(tree))
    assert executable != first
    (tree / "a" / "f").write_text("two")
    assert content.content_tag("x", content.tree_manifest(tree)) not in (first, executable)
    assert len(first) == content.TAG_LENGTH
