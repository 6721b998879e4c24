"""The start-up path: what ``serve-app run`` does until Serve answers, and the stop (its modules:
docs/architecture.md). The Ray node itself is ``serve_app.cluster``."""

from __future__ import annotations

import signal
import threading


class StartupError(Exception):
    """What keeps the server from starting that the operator can fix (printed, exit 2)."""


def stop_on_signals(stop: threading.Event, message: str) -> None:
    """SIGINT and SIGTERM set ``stop`` and print ``message`` (``{}``: the signal's name)."""

    def on_signal(signum: int, _frame: object) -> None:
        print(message.format(signal.Signals(signum).name), flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
