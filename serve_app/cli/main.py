"""``serve-app``: run the server, show its status, manage its database, weights and machines.

Each command is a module with ``add_parser(subparsers)``, which sets ``args.func``; only the
module of the command given is imported, so a command's imports cost the others nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pydantic import ValidationError

from serve_app.cli.errors import CliError
from serve_app.startup import StartupError
from serve_app.startup.bridge.process import BridgeProcess

COMMANDS = {
    "run": "serve_app.cli.run",
    "join": "serve_app.cli.join",
    "status": "serve_app.cli.status",
    "weights": "serve_app.cli.weights",
    "embeddings": "serve_app.cli.embeddings",
    "fly": "serve_app.cli.fly",
    "db": "serve_app.cli.database",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser; with ``only``, that command's alone (its module alone is
    imported)."""
    parser = argparse.ArgumentParser(prog="serve-app", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        if only in (None, name):
            importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    early = None
    if only == "run" and "-h" not in argv and "--help" not in argv:
        # the port answers sooner: the bridge starts before the slower imports (the settings)
        early = BridgeProcess.early(argv[1:])
    try:
        args = build_parser(only).parse_args(argv)
        args.early_bridge = early
        return args.func(args)
    except (CliError, StartupError) as exc:
        print(f"serve-app: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != "Settings":  # serve_app.settings.Settings
            raise
        print("serve-app: invalid settings:", file=sys.stderr)
        for error in exc.errors():
            where = "".join(f"SERVE_APP_{str(part).upper()}: " for part in error["loc"])
            secret = "TOKEN" in where  # never echo a token back
            given = f" (got {error['input']!r})" if error["loc"] and not secret else ""
            print(f"  {where}{error['msg']}{given}", file=sys.stderr)
        return 2
    finally:
        if early is not None:  # `run` is over (or never took it): the bridge goes too
            early.stop()


if __name__ == "__main__":
    sys.exit(main())
