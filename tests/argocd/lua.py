"""Run the Argo CD Lua scripts with a real Lua interpreter (Debian's lua5.1 and lua5.4) on
ModelDeployment objects; the object reaches Lua as a table literal generated here."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.cluster.localcluster import ROOT

HARNESS = Path(__file__).with_name("harness.lua")
LUA_DIR = ROOT / "charts" / "modeldeploy" / "argocd"
HEALTH = LUA_DIR / "health.lua"
DISCOVERY = LUA_DIR / "actions" / "discovery.lua"
INTERPRETERS = ("lua5.1", "lua5.4")
"""Argo CD runs gopher-lua (Lua 5.1); 5.4 is what a person most likely has."""


def action_script(name: str) -> Path:
    return LUA_DIR / "actions" / name / "action.lua"


def lua_string(text: str) -> str:
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def to_lua(value: Any) -> str:
    """A Lua expression for a JSON value (JSON null inside an object: the key is left out)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a JSON number: {value}")
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(item) for item in value) + "}"
    if isinstance(value, dict):
        items = [f"[{lua_string(str(k))}] = {to_lua(v)}" for k, v in value.items() if v is not None]
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def interpreter(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make install` installs the Debian packages lua5.1 and lua5.4"
    return path


def run(script: Path, obj: dict[str, Any], lua: str = "lua5.4") -> Any:
    """The script's return value (decoded from the JSON the harness prints)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write("return " + to_lua(obj) + "\n")
        object_file = Path(handle.name)
    try:
        out = subprocess.run(
            [interpreter(lua), str(HARNESS), str(script), str(object_file)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    finally:
        object_file.unlink()
    assert out.returncode == 0, f"{lua} {script.name} failed:\n{out.stderr}"
    return json.loads(out.stdout)


def empty_to_none(value: Any) -> Any:
    """Lua cannot tell {} from []: compare JSON with empty containers (and nulls) removed."""
    if isinstance(value, dict):
        cleaned = {k: empty_to_none(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None} or None
    if isinstance(value, list):
        return [empty_to_none(v) for v in value] or None
    return value
