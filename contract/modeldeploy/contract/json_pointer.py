"""JSON pointers (RFC 6901) with a `*` wildcard segment, and the pointer of an instance path.

`/features/*/0` selects the first item of every row of `features`: a `*` segment stands for every
item of an array or every value of an object. Other segments follow RFC 6901 (`~1` is `/`, `~0`
is `~`; an array index is a decimal number without leading zeros). Missing members select nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

WILDCARD = "*"


class PointerError(ValueError):
    """A string that is not a JSON pointer."""


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The unescaped segments of `pointer` ("" is the whole document, otherwise it starts with /)."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise PointerError(f"a JSON pointer starts with '/', got {pointer!r}")
    segments = pointer[1:].split("/")
    for segment in segments:
        rest = segment.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PointerError(f"JSON pointer {pointer!r}: '~' must be followed by 0 or 1 in {segment!r}")
    return tuple(s.replace("~1", "/").replace("~0", "~") for s in segments)


def _array_index(segment: str, length: int) -> int | None:
    if not segment.isdigit() or (len(segment) > 1 and segment[0] == "0"):
        return None
    index = int(segment)
    return index if index < length else None


def select(document: Any, segments: Sequence[str]) -> Iterator[Any]:
    """Every value the (parsed) pointer selects in `document`, in document order."""
    if not segments:
        yield document
        return
    head, rest = segments[0], segments[1:]
    if isinstance(document, dict):
        if head == WILDCARD:
            for value in document.values():
                yield from select(value, rest)
        elif head in document:
            yield from select(document[head], rest)
    elif isinstance(document, list):
        if head == WILDCARD:
            for item in document:
                yield from select(item, rest)
        else:
            index = _array_index(head, len(document))
            if index is not None:
                yield from select(document[index], rest)


def escape_segment(segment: str | int) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")


def to_pointer(path: Iterable[str | int]) -> str:
    """The JSON pointer of an instance path (e.g. jsonschema's `absolute_path`); "/" for the root."""
    text = "".join("/" + escape_segment(part) for part in path)
    return text or "/"


def to_pattern(path: Iterable[str | int]) -> str:
    """Like `to_pointer`, with every array index replaced by `*` (bounded metric label values)."""
    return to_pointer(WILDCARD if isinstance(part, int) else part for part in path)
