"""The command line every generator of a committed file shares: write it, or `--check` it is current."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(
    render: Callable[[], str], *, description: str, example: str, make_target: str, argv: list[str] | None
) -> int:
    """Write `render()` to the output path given on the command line, or with `--check` exit 1 when
    the file differs from it (naming the make target that regenerates it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("output", type=Path, help=f"file to write, e.g. {example}")
    parser.add_argument("--check", action="store_true", help="only check the file is current (exit 1 if not)")
    args = parser.parse_args(argv)
    return settle(args.output, render(), check=args.check, make_target=make_target)


def settle(output: Path, text: str, *, check: bool, make_target: str) -> int:
    """Write `text` to `output`, or with `check` exit code 1 when the file differs from it (naming the
    make target that regenerates it)."""
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is stale: run `make {make_target}`", file=sys.stderr)
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return 0
