"""Addressing fields of nested JSON documents by path, for tests that mutate documents field by field."""

from __future__ import annotations

from typing import Any

Path = tuple[str | int, ...]


def paths(doc: Any, prefix: Path = ()) -> list[Path]:
    """Every field and list item of `doc`, parents before children."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    out: list[Path] = []
    for key, value in items:
        out += [(*prefix, key), *paths(value, (*prefix, key))]
    return out


def _child(parent: Any, key: str | int) -> tuple[bool, Any]:
    """(True, value) when `parent` has `key` (a dict key or a list index), else (False, None)."""
    if isinstance(parent, dict) and key in parent:
        return True, parent[key]
    if isinstance(parent, list) and isinstance(key, int) and 0 <= key < len(parent):
        return True, parent[key]
    return False, None


def slot(doc: Any, path: Path) -> tuple[Any, str | int] | None:
    """(container, key) holding the value at `path`, or None when an earlier change removed it."""
    parent: Any = doc
    for key in path[:-1]:
        found, parent = _child(parent, key)
        if not found:
            return None
    return (parent, path[-1]) if _child(parent, path[-1])[0] else None
