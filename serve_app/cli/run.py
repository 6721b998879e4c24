"""``serve-app run``: the supervisor (serve_app.startup.supervisor) with the command's options."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from serve_app.startup.supervisor import RunOptions, run_server


def cmd_run(args: argparse.Namespace) -> int:
    # each of RunOptions' fields is the option of its name (early_bridge: set by cli/main.py)
    return run_server(RunOptions(**{f.name: getattr(args, f.name) for f in fields(RunOptions)}))


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="start Ray (or join RAY_ADDRESS) and serve a config")
    run.add_argument("--config", help="Serve config file (default: SERVE_APP_CONFIG)")
    run.add_argument("--host", help="listen address (default: SERVE_APP_HOST, 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default: SERVE_APP_PORT, 8000)")
    run.add_argument(
        "--ready-timeout",
        type=float,
        default=RunOptions.ready_timeout,
        help=f"seconds to wait for /health (default {RunOptions.ready_timeout:g})",
    )
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=RunOptions.drain_timeout,
        help="seconds to let in-flight requests finish on SIGTERM/Ctrl-C "
        f"(default {RunOptions.drain_timeout:g})",
    )
    run.add_argument(
        "--head",
        action="store_true",
        help="start a Ray head that other machines join (`serve-app join`): fixed ports, "
        "listening on SERVE_APP_NODE_IP / FLY_PRIVATE_IP",
    )
    run.set_defaults(func=cmd_run)
