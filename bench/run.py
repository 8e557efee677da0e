"""`make bench`: run the benchmarks and merge their sections into docs/benchmarks.md.

Each benchmark is a module in `bench/` with `TITLE: str` and `run(workdir: Path) -> str`, which
returns the markdown body of its section (tables and notes). This runner adds the machine, the
date and the machine's load average during the run to each section and replaces that section in
the document between its markers, leaving the other sections as they are, so benchmarks can be
run alone:

    python -m bench.run                  # all benchmarks
    python -m bench.run --only sidecar   # one section
    python -m bench.run scale soak       # the same, sections named positionally
    python -m bench.run --only scale --keep /tmp/b   # keep logs and audit logs in /tmp/b

To add a benchmark: write `bench/<name>.py` with TITLE and run(), add it to BENCHMARKS.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, cast

from bench.machine import LoadSampler, machine

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "benchmarks.md"

BENCHMARKS: dict[str, str] = {
    "sidecar": "bench.sidecar",
    "guardrails": "bench.guardrails",
    "rollback": "bench.rollback",
    "soak": "bench.soak",
    "scale": "bench.scale",
}
"""Section key -> module. Sections appear in the document in this order."""

HEADER = """# Benchmarks

Written by `make bench` (`python -m bench.run`); each section is replaced when its benchmark runs
again and says on which machine and when it was measured. Numbers from a shared 2-core machine are
noisy: compare the ratios within one section (measured in one run) rather than absolute values.
"""


class Benchmark(Protocol):
    TITLE: str

    def run(self, workdir: Path) -> str: ...


def marker(key: str, end: bool = False) -> str:
    return f"<!-- bench:{key}:{'end' if end else 'start'} -->"


def merge(document: str, key: str, section: str) -> str:
    """Replace section `key` in `document` (or add it in BENCHMARKS order)."""
    block = f"{marker(key)}\n{section.strip()}\n{marker(key, end=True)}"
    pattern = re.compile(re.escape(marker(key)) + r".*?" + re.escape(marker(key, end=True)), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document)
    if not document.strip():
        document = HEADER
    order = list(BENCHMARKS)
    later = order[order.index(key) + 1 :] if key in order else []
    for other in later:
        position = document.find(marker(other))
        if position >= 0:
            return document[:position] + block + "\n\n" + document[position:]
    return document.rstrip() + "\n\n" + block + "\n"


def run_one(key: str, workdir: Path) -> str:
    module = cast(Benchmark, importlib.import_module(BENCHMARKS[key]))
    started = time.monotonic()
    print(f"bench: {key} ...", flush=True)
    with LoadSampler() as load:
        body = module.run(workdir)
    took = time.monotonic() - started
    print(f"bench: {key} done in {took:.0f} s", flush=True)
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"## {module.TITLE}\n\nMeasured {when} on {machine()} (run took {took:.0f} s; "
        f"{load.describe()}).\n\n{body.strip()}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sections", nargs="*", metavar="SECTION", help=f"run only these sections ({', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these sections")
    parser.add_argument("--out", type=Path, default=DOCUMENT, help=f"document to update (default {DOCUMENT})")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="work in DIR and keep it (logs, audit logs: what a failed run leaves to read); default a "
        "temporary folder, removed at the end",
    )
    args = parser.parse_args(argv)
    unknown = [key for key in args.sections if key not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    keys = [*args.sections, *(args.only or [])] or list(BENCHMARKS)
    out: Path = args.out
    document = out.read_text() if out.exists() else HEADER
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="modeldeploy-bench-"))
        for key in keys:
            section = run_one(key, Path(tmp) / key)
            document = merge(document, key, section)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(document)  # after each section: a later failure keeps earlier results
    print(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
