"""`kubectl modeldeploy` (installed as `kubectl-modeldeploy`, so kubectl finds it on PATH).

    kubectl modeldeploy status NAME [--watch]     live view: steps, weights, verdicts, progress
    kubectl modeldeploy promote NAME [--full]     skip the current step (or every step)
    kubectl modeldeploy abort|retry|pause|resume NAME
    kubectl modeldeploy history NAME
    kubectl modeldeploy undo NAME [--to-revision REV|N]
    kubectl modeldeploy dashboard [--port P] [--enable-actions]   live web view of every rollout

Actions are requests: the plugin writes the annotation ``modeldeploy.io/action: <action>@<id>``
and waits for the operator's acknowledgement in ``status.lastAction`` (Applied, Ignored, Rejected).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from modeldeploy.operator.api import ModelDeploymentStatus, parse_duration, revision_hash
from modeldeploy.operator.cli.action_requests import request
from modeldeploy.operator.cli.history import UndoError, render_history, undo_target
from modeldeploy.operator.cli.kube import CliError, ModelDeployments
from modeldeploy.operator.cli.view import parse, render_status
from modeldeploy.operator.planner.actions import ABORT, PAUSE, PROMOTE, PROMOTE_FULL, RESUME, RETRY

ACTION_HELP = {
    PROMOTE: "skip the current step (leaves a pause, ends a shadow/canary step now)",
    ABORT: "roll the rollout back now: traffic to stable, the new revision scaled down",
    RETRY: "roll out again the revision that was rolled back",
    PAUSE: "hold the rollout at its step (traffic stays, analysis goes on, the clock stops)",
    RESUME: "continue after pause, or after a pause for inconclusive analysis",
}
FINAL_PHASES = {"Succeeded": 0, "RolledBack": 1, "Failed": 1, "Degraded": 1}
EXIT_NO_ACK = 3
EXIT_TIMEOUT = 4
CLEAR = "\x1b[H\x1b[2J"


def _connection_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument(
        "-n", "--namespace", default=default, help="namespace (default: the context's, else default)"
    )


def parser() -> argparse.ArgumentParser:
    # The options work before and after COMMAND; after it they must not reset what came before.
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, argparse.SUPPRESS)

    root = argparse.ArgumentParser(
        prog="kubectl modeldeploy",
        description="Follow and steer ModelDeployment rollouts (shadow, canary, SLO analysis, rollback).",
    )
    _connection_options(root, None)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser(
        "status", aliases=["get"], parents=[common], help="show a rollout: steps, traffic, verdicts, progress"
    )
    status.add_argument("name", metavar="NAME")
    status.add_argument("-w", "--watch", action="store_true", help="redraw live until the rollout settles")
    status.add_argument("--interval", type=float, default=1.0, help="redraw period in seconds with --watch")
    status.add_argument(
        "--timeout", type=float, default=0, help="with --watch: give up after this many seconds (0: never)"
    )
    status.add_argument("-o", "--output", choices=["text", "json"], default="text", help="output format")

    for action, text in ACTION_HELP.items():
        sub = commands.add_parser(action, parents=[common], help=text, description=text)
        sub.add_argument("name", metavar="NAME")
        if action == PROMOTE:
            sub.add_argument("--full", action="store_true", help="skip every remaining step and analysis")
        sub.add_argument(
            "--wait", type=float, default=30.0, help="seconds to wait for the operator's acknowledgement"
        )

    history = commands.add_parser("history", parents=[common], help="finished rollouts of a ModelDeployment")
    history.add_argument("name", metavar="NAME")

    undo = commands.add_parser(
        "undo",
        parents=[common],
        help="go back to an earlier promoted revision (sets spec.model.image; a new rollout follows)",
    )
    undo.add_argument("name", metavar="NAME")
    undo.add_argument(
        "--to-revision",
        dest="to",
        metavar="REV",
        help="revision hash (or prefix) or history number (default: the previous promoted image)",
    )
    dashboard = commands.add_parser(
        "dashboard",
        parents=[common],
        help="a local web page showing every ModelDeployment live (read-only unless --enable-actions)",
    )
    dashboard.add_argument("--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    dashboard.add_argument(
        "--enable-actions",
        action="store_true",
        help="show promote/abort/pause/resume/retry buttons; they act with your kubeconfig's rights",
    )
    dashboard.add_argument(
        "--prometheus-url",
        help="Prometheus for the charts (default: each ModelDeployment's spec.prometheus.url)",
    )
    dashboard.add_argument("--range", default="15m", help="time range of the charts (default: 15m)")
    dashboard.add_argument(
        "--rate-window", default="1m", help="PromQL rate window of the charts (default: 1m)"
    )
    dashboard.add_argument(
        "--wait", type=float, default=30.0, help="seconds an action waits for the operator's acknowledgement"
    )
    return root


def cmd_status(
    mds: ModelDeployments, args: argparse.Namespace, out: TextIO, sleep: Callable[[float], None]
) -> int:
    if args.output == "json" and not args.watch:
        out.write(json.dumps(mds.get(args.name).get("status") or {}, indent=2) + "\n")
        return 0
    if not args.watch:
        out.write(render_status(mds.get(args.name)) + "\n")
        return 0
    tty = out.isatty()
    started = time.monotonic()
    while True:
        obj = mds.get(args.name)
        text = render_status(obj)
        out.write((CLEAR + text + "\n") if tty else (text + "\n\n"))
        out.flush()
        parsed = parse(obj)
        settled = (
            parsed.status.observed_generation == parsed.generation and parsed.status.canary_revision is None
        )
        if settled and parsed.status.phase in FINAL_PHASES:
            return FINAL_PHASES[parsed.status.phase]
        if args.timeout and time.monotonic() - started > args.timeout:
            out.write(f"timed out after {args.timeout:g}s; phase {parsed.status.phase}\n")
            return EXIT_TIMEOUT
        sleep(args.interval)


def cmd_action(mds: ModelDeployments, args: argparse.Namespace, out: TextIO) -> int:
    action = PROMOTE_FULL if args.command == PROMOTE and args.full else args.command
    ack = request(mds, args.name, action, args.wait)
    if ack.result is None:
        out.write(
            f'{action} requested on modeldeployment "{args.name}" ({ack.value}); the operator has not '
            f"acknowledged it within {args.wait:g}s — is it running and watching namespace {mds.namespace}?\n"
        )
        return EXIT_NO_ACK
    out.write(f'modeldeployment "{args.name}" {action}: {ack.result} — {ack.message}\n')
    return 0 if ack.result == "Applied" else 1


def _status_and_image(mds: ModelDeployments, name: str) -> tuple[ModelDeploymentStatus, str]:
    obj = mds.get(name)
    image = str(((obj.get("spec") or {}).get("model") or {}).get("image") or "")
    return parse(obj).status, image


def cmd_history(mds: ModelDeployments, args: argparse.Namespace, out: TextIO) -> int:
    status, image = _status_and_image(mds, args.name)
    out.write(render_history(status, image, datetime.now(UTC)) + "\n")
    return 0


def cmd_undo(mds: ModelDeployments, args: argparse.Namespace, out: TextIO) -> int:
    status, image = _status_and_image(mds, args.name)
    try:
        target = undo_target(status, image, args.to)
    except UndoError as exc:
        raise CliError(f"undo {args.name}: {exc}") from None
    mds.patch(args.name, {"spec": {"model": {"image": target.entry.image}}})
    out.write(
        f'modeldeployment "{args.name}": spec.model.image {image} -> {target.entry.image} '
        f"(history #{target.number}, revision {target.entry.revision})\n"
    )
    parsed = parse(mds.get(args.name))
    if parsed.spec is not None:
        revision = revision_hash(parsed.spec)
        if revision != target.entry.revision:
            out.write(
                f"note: the new revision is {revision}, not {target.entry.revision}: only the image comes "
                "from history; other pod-template fields (env, args, resources, ...) keep their values\n"
            )
        elif revision == status.stable_revision:
            out.write(f"that is the stable revision: the rollout of {status.canary_revision} is cancelled\n")
        else:
            out.write("the operator rolls it out through the steps, as any new revision\n")
    return 0


def cmd_dashboard(mds: ModelDeployments, args: argparse.Namespace, out: TextIO) -> int:
    from modeldeploy.operator.cli.dashboard.server import DashboardOptions, serve

    try:
        range_seconds = parse_duration(args.range).total_seconds()
        window = f"{max(1, round(parse_duration(args.rate_window).total_seconds()))}s"
    except ValueError as exc:
        raise CliError(f"dashboard: {exc}") from None
    if not 0 <= args.port <= 65535:
        raise CliError(f"dashboard: --port must be 0-65535, not {args.port}")
    options = DashboardOptions(
        address=args.address,
        port=args.port,
        enable_actions=args.enable_actions,
        prometheus_url=args.prometheus_url,
        range_seconds=range_seconds,
        rate_window=window,
        action_wait_seconds=args.wait,
    )

    def announce(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    try:
        serve(mds, options, announce)
    except OSError as exc:
        raise CliError(
            f"dashboard: cannot listen on {args.address}:{args.port}: {exc.strerror or exc}"
        ) from None
    return 0


def main(
    argv: list[str] | None = None, out: TextIO = sys.stdout, sleep: Callable[[float], None] = time.sleep
) -> int:
    args = parser().parse_args(argv)
    try:
        mds = ModelDeployments(args.kubeconfig, args.context, args.namespace)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command in ("status", "get"):
            return cmd_status(mds, args, out, sleep)
        if args.command == "history":
            return cmd_history(mds, args, out)
        if args.command == "undo":
            return cmd_undo(mds, args, out)
        if args.command == "dashboard":
            return cmd_dashboard(mds, args, out)
        return cmd_action(mds, args, out)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        mds.close()


if __name__ == "__main__":
    sys.exit(main())
