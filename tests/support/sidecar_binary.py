"""Where the tests find the Rust sidecar binary (`make sidecar-build`)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIDECAR_BIN_ENV = "MODELDEPLOY_SIDECAR_BIN"


class SidecarBinaryMissing(RuntimeError):
    """The sidecar binary is not built: an error, never a skip."""


def sidecar_binary() -> Path:
    """$MODELDEPLOY_SIDECAR_BIN, else the release build in $MODELDEPLOY_CACHE (default .cache, as
    in the Makefile)."""
    explicit = os.environ.get(SIDECAR_BIN_ENV)
    if explicit:
        path = Path(explicit)
    else:
        cache = Path(os.environ.get("MODELDEPLOY_CACHE") or ".cache")
        path = (cache if cache.is_absolute() else ROOT / cache) / "sidecar/target/release/modeldeploy-sidecar"
    if not os.access(path, os.X_OK):
        hint = f"run `make sidecar-build` (or set {SIDECAR_BIN_ENV})"
        raise SidecarBinaryMissing(f"sidecar binary {path} not found: {hint}")
    return path
