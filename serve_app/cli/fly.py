"""``serve-app fly ...``: the app's Fly Machines through the Machines REST API (FLY_API_TOKEN)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serve_app.cli.errors import CliError
from serve_app.fly import autoscale
from serve_app.fly.api import FlyApiError, FlyTimeout, MachinesClient
from serve_app.fly.ops import FlyOps, OpsError, app_name, format_table
from serve_app.settings import get_settings, secret_value

Command = Callable[[argparse.Namespace], int]


@contextmanager
def fly_ops(args: argparse.Namespace) -> Iterator[FlyOps]:
    """The app's machines (Machines REST API, FLY_API_TOKEN) for one command; the API's and
    the operations' errors become the command's."""
    settings = get_settings()
    token = secret_value(settings.fly_api_token)
    if not token:
        raise CliError("FLY_API_TOKEN is not set (`fly tokens create deploy` makes one)")
    try:
        app = app_name(args.app, settings.fly_app_name, Path(args.fly_toml))
        with MachinesClient(settings.fly_api_url, token, app, log=print) as client:
            yield FlyOps(client, group=args.group, wait_timeout_s=args.wait_timeout)
    except (OpsError, FlyApiError, FlyTimeout, ValueError) as exc:
        raise CliError(str(exc)) from None


def cmd_machines(args: argparse.Namespace) -> int:
    with fly_ops(args) as ops:
        listed = ops.machines(all_groups=True)
        print(format_table(listed) if listed else f"no machines in {ops.client.app}")
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    with fly_ops(args) as ops:
        pool = ops.scale(args.count, args.region, args.fallback_region)
    print(f"{len(pool)} {args.group} machine(s) in {args.region or 'all regions'}")
    return 0


def counted(verb: str, act: Callable[[FlyOps, argparse.Namespace], int]) -> Command:
    """A command that acts on machines and says how many it ``verb``."""

    def command(args: argparse.Namespace) -> int:
        with fly_ops(args) as ops:
            print(f"{verb} {act(ops, args)} machine(s)")
        return 0

    return command


cmd_start = counted("started", lambda ops, args: ops.start_many(args.ids))
cmd_stop = counted("stopped", lambda ops, args: ops.stop_many(args.ids))
cmd_warm = counted("started", lambda ops, args: ops.warm(args.count))


def cmd_autoscale(args: argparse.Namespace) -> int:
    given = {
        "min_machines": args.min,
        "max_machines": args.max,
        "target_inflight": args.target_inflight,
        "down_ratio": args.down_ratio,
        "down_after_s": args.down_after,
        "cooldown_s": args.cooldown,
    }  # the rest: the policy's own defaults (one declaration, autoscale.Policy)
    with fly_ops(args) as ops:
        policy = autoscale.Policy(**{k: v for k, v in given.items() if v is not None})
        try:
            autoscale.run(
                ops,
                policy,
                interval_s=args.interval,
                port=args.metrics_port or get_settings().port,
                metrics_urls=args.metrics_url,
                dry_run=args.dry_run,
                rounds=args.rounds,
            )
        except KeyboardInterrupt:
            print("autoscaler stopped")
    return 0


def fly_group_options(defaults: bool) -> argparse.ArgumentParser:
    """The options of every `serve-app fly` command, before the subcommand or after it as in
    flyctl (`fly machines list -a X`); after it, one overrides only when given (SUPPRESS)."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-a",
        "--app",
        default=default(None),
        help="Fly app (default: FLY_APP_NAME, else fly.toml's app)",
    )
    options.add_argument(
        "--fly-toml", default=default("fly/fly.toml"), help="fly.toml to read the app from"
    )
    options.add_argument(
        "--group",
        default=default("app"),
        help="process group to act on: app (heads) or worker",
    )
    options.add_argument(
        "--wait-timeout",
        type=float,
        default=default(180),
        help="seconds to wait for each state change",
    )
    return options


def add_parser(sub: Any) -> None:
    fly = sub.add_parser(
        "fly",
        parents=[fly_group_options(defaults=True)],
        help="the app's Fly Machines (Machines REST API, FLY_API_TOKEN)",
    )
    after = fly_group_options(defaults=False)
    fly_sub = fly.add_subparsers(dest="fly_command", required=True)
    fly_sub.add_parser(
        "machines", parents=[after], help="id, state, region, size and role of every machine"
    ).set_defaults(func=cmd_machines)
    scale = fly_sub.add_parser(
        "scale", parents=[after], help="create (clone) or remove machines until --count exist"
    )
    scale.set_defaults(func=cmd_scale)
    scale.add_argument("--count", type=int, required=True)
    scale.add_argument("--region", help="count and create machines in this region only")
    scale.add_argument(
        "--fallback-region",
        action="append",
        default=[],
        help="on insufficient_capacity, try this region next (repeatable)",
    )
    for name, what, func in (
        ("start", "stopped", cmd_start),
        ("stop", "started", cmd_stop),
    ):
        cmd = fly_sub.add_parser(
            name, parents=[after], help=f"{name} machines (default: every {what} one)"
        )
        cmd.set_defaults(func=func)
        cmd.add_argument("ids", nargs="*", help="machine ids")
    warm = fly_sub.add_parser(
        "warm", parents=[after], help="start stopped machines ahead of expected load"
    )
    warm.set_defaults(func=cmd_warm)
    warm.add_argument("count", type=int, help="machines to have started")
    auto = fly_sub.add_parser(
        "autoscale",
        parents=[after],
        help="start/stop machines from the servers' /metrics (a control loop)",
    )
    auto.set_defaults(func=cmd_autoscale)
    # defaults: autoscale.Policy's
    auto.add_argument(
        "--min",
        type=int,
        help="machines always started (default 0, as fly.toml's min_machines_running: at idle "
        "Fly's proxy stops the last one and wakes it on the next request)",
    )
    auto.add_argument("--max", type=int, help="machines started at most (default 4)")
    auto.add_argument(
        "--target-inflight",
        type=float,
        help="requests in flight per machine (default 64; fly.toml's soft_limit is a good start)",
    )
    auto.add_argument("--down-ratio", type=float, help="default 0.5")
    auto.add_argument("--down-after", type=float, help="seconds of low load (default 300)")
    auto.add_argument("--cooldown", type=float, help="seconds after a change (default 120)")
    auto.add_argument("--interval", type=float, default=15, help="seconds between rounds")
    auto.add_argument("--rounds", type=int, help="stop after this many rounds (default: never)")
    auto.add_argument("--metrics-port", type=int, help="server port (default: SERVE_APP_PORT)")
    auto.add_argument(
        "--metrics-url",
        action="append",
        help="scrape these URLs instead of each started machine over 6PN (repeatable)",
    )
    auto.add_argument("--dry-run", action="store_true", help="print decisions; change nothing")
