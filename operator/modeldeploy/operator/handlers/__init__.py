"""Thin kopf handlers. Importing this package registers them; `configure` passes settings in."""

from __future__ import annotations

from modeldeploy.operator.handlers import modeldeployment as _modeldeployment  # noqa: F401 - registers
from modeldeploy.operator.handlers.config import configure

__all__ = ["configure"]
