"""The start-up path: what ``serve-app run`` does until Serve answers, and the stop (its modules:
docs/architecture.md). The Ray node itself is ``serve_app.cluster``."""

from __future__ import annotations


class StartupError(Exception):
    """What keeps the server from starting that the operator can fix (printed, exit 2)."""
