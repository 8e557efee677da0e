"""`modeldeploy-sidecar`: start the serving sidecar (see `modeldeploy-sidecar --help`).

Exit codes: 0 after a graceful drain, 2 for invalid configuration (each problem on its own line),
1 when the sidecar cannot start (port in use, no Kubernetes credentials).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from prometheus_client import disable_created_metrics

from modeldeploy.serving.routing_configmap import WatchSetupError
from modeldeploy.serving.server import Sidecar
from modeldeploy.serving.settings import SettingsError, SidecarSettings, load_settings

log = logging.getLogger("modeldeploy.sidecar")


async def run(settings: SidecarSettings) -> None:
    # No `*_created` series: they double the scrape size and nothing here reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    sidecar = Sidecar(settings)
    await sidecar.start()
    await sidecar.run_until_stopped()


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        print(f"modeldeploy-sidecar: {exc}", file=sys.stderr)
        return 2
    # Libraries stay at WARNING (the Kubernetes client logs response bodies at DEBUG).
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("modeldeploy").setLevel(settings.log_level)
    try:
        with _event_loop_runner() as runner:
            runner.run(run(settings))
    except WatchSetupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
