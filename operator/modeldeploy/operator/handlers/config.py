"""Process-wide operator settings, set once by main() before kopf starts."""

from __future__ import annotations

from modeldeploy.operator.settings import OperatorSettings

_settings: OperatorSettings | None = None


def configure(settings: OperatorSettings) -> None:
    global _settings
    _settings = settings


def current() -> OperatorSettings:
    if _settings is None:
        return OperatorSettings()
    return _settings
