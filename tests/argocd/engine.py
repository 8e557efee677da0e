"""Run the Argo CD health check and resource actions the way Argo CD runs argocd-cm customizations.

`argocd-lua` (tests/argocd/golua, built by its build.sh into $MODELDEPLOY_CACHE/argocd/bin) reads
the chart's argocd-cm patch with Argo CD's key rules and runs the scripts on gopher-lua (the Lua VM
Argo CD embeds, at the version Argo CD pins) set up as Argo CD's util/lua sets it up: only base,
table and package opened, `os` (time, date) only through require("os"), a 1 s timeout, Argo CD's
JSON conversion of the object and of the result, and for actions the merge patch the Argo CD API
server sends. Why not the argo-cd module itself: docs/argocd.md.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.localcluster import ROOT

LUA_DIR = ROOT / "charts" / "modeldeploy" / "argocd"
CM_PATCH = LUA_DIR / "argocd-cm-patch.yaml"
BUILD = Path(__file__).with_name("golua") / "build.sh"


def cache_dir() -> Path:
    return Path(os.environ.get("MODELDEPLOY_CACHE") or ROOT / ".cache")


def build() -> Path:
    """The argocd-lua binary, built (or found up to date) by golua/build.sh."""
    out = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False, timeout=1800)
    assert out.returncode == 0, f"tests/argocd/golua/build.sh failed:\n{out.stdout}\n{out.stderr}"
    return cache_dir() / "argocd" / "bin" / "argocd-lua"


class ArgoCDLuaError(Exception):
    """argocd-lua refused the input or a script failed; the message is Argo CD's error."""


@dataclass(frozen=True)
class ActionResult:
    operation: str
    """"patch" (the action changes the object itself)."""
    object: dict[str, Any]
    """The object the script returned, after Argo CD's clean-up of empty maps."""
    merge_patch: dict[str, Any]
    """What the Argo CD API server sends to the API server (a JSON merge patch)."""


@dataclass(frozen=True)
class ArgoCDLua:
    binary: Path
    cm_patch: Path = CM_PATCH

    def _run(self, obj: dict[str, Any], *command: str) -> Any:
        out = subprocess.run(
            [str(self.binary), str(self.cm_patch), *command],
            input=json.dumps(obj),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if out.returncode != 0:
            raise ArgoCDLuaError(out.stderr.strip())
        return json.loads(out.stdout)

    def health(self, obj: dict[str, Any]) -> dict[str, str]:
        """{"status": ..., "message": ...} as Argo CD's application controller computes it."""
        result: dict[str, str] = self._run(obj, "health")
        return result

    def discovery(self, obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Action name -> Argo CD's ResourceAction (disabled, iconClass, ...) as the UI gets them."""
        return {action.pop("name"): action for action in self._run(obj, "discovery")}

    def action(self, name: str, obj: dict[str, Any]) -> ActionResult:
        result = self._run(obj, "action", name)
        return ActionResult(result["operation"], result["object"], result["mergePatch"])
