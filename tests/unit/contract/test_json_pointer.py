"""JSON pointers with the `*` wildcard (drift feature paths) and instance-path formatting."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.contract.json_pointer import PointerError, parse_pointer, select, to_pattern, to_pointer

DOC: dict[str, Any] = {
    "features": [[5.1, 3.5], [6.2, 2.9], [7.0]],
    "meta": {"a": {"x": 1}, "b": {"x": 2}, "c": {}},
    "a/b": {"m~n": 3},
    "": 4,
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", [DOC]),
        ("/features/0/0", [5.1]),
        ("/features/*/0", [5.1, 6.2, 7.0]),
        ("/features/*/1", [3.5, 2.9]),  # the short row has no item 1: nothing selected for it
        ("/features/*/*", [5.1, 3.5, 6.2, 2.9, 7.0]),
        ("/meta/*/x", [1, 2]),
        ("/a~1b/m~0n", [3]),
        ("/", [4]),
        ("/features/3/0", []),
        ("/features/01/0", []),  # leading zeros are not array indices (RFC 6901)
        ("/features/-1/0", []),
        ("/missing/*", []),
        ("/features/0/0/deeper", []),
    ],
)
def test_select(pointer: str, expected: list[Any]) -> None:
    assert list(select(DOC, parse_pointer(pointer))) == expected


@pytest.mark.parametrize("bad", ["features/0", "/a~2b", "/a~"])
def test_bad_pointers_are_rejected_with_the_reason(bad: str) -> None:
    with pytest.raises(PointerError, match=r"JSON pointer|starts with"):
        parse_pointer(bad)


def test_instance_paths_to_pointer_and_pattern() -> None:
    assert to_pointer([]) == "/"
    assert to_pointer(["features", 0, 2]) == "/features/0/2"
    assert to_pointer(["a/b", "m~n"]) == "/a~1b/m~0n"
    assert to_pattern(["features", 17, 2]) == "/features/*/*"
    assert to_pattern(["rows", 3, "age"]) == "/rows/*/age"
