"""Thin kopf handlers. Importing this package registers them; the operator's state travels in
kopf's memo (`context.OperatorContext`), built at start-up from the settings `main()` puts there."""

from __future__ import annotations

from modeldeploy.operator.handlers import modeldeployment as _modeldeployment  # noqa: F401 - registers
