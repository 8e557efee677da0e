"""Routing table from a local file (local runs and tests), re-read when its content changes.

The file is read every `interval` seconds (0.2 s by default; the file is small) and applied when
its bytes differ from the last ones seen, so any way of editing it works: rewrite, rename over,
or touch-free editors. An invalid table is logged and counted; the last good one stays in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("modeldeploy.sidecar.routing")


class RoutingFileWatcher:
    """Polls `path` and hands new contents to `on_change` (which parses and applies them)."""

    def __init__(self, path: Path, on_change: Callable[[bytes, str], None], interval: float) -> None:
        self._path = path
        self._on_change = on_change
        self._interval = interval
        self._last: bytes | None = None
        self._missing_logged = False

    def check(self) -> None:
        """Read the file once; call `on_change` if it changed since the last check."""
        try:
            content = self._path.read_bytes()
        except FileNotFoundError:
            if not self._missing_logged:
                log.warning("routing file %s does not exist (yet); keeping the table in force", self._path)
                self._missing_logged = True
            return
        except OSError as exc:
            log.error("cannot read routing file %s: %s", self._path, exc)
            return
        self._missing_logged = False
        if content == self._last:
            return
        self._last = content
        self._on_change(content, f"file {self._path}")

    async def run(self) -> None:
        # A read of a small local file takes microseconds: done on the loop, no thread needed.
        while True:
            self.check()
            await asyncio.sleep(self._interval)
