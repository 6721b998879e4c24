"""Logging and error reporting of the replicas; Sentry only with ``SENTRY_DSN`` set."""

from __future__ import annotations

import logging
import time

from serve_app import __version__
from serve_app.settings import Settings, secret_value

SERVE_LOGGER = "ray.serve"  # Ray Serve's logger: its handlers add the request context


def get_logger(name: str) -> logging.Logger:
    """A child of Serve's logger: in a replica, JSON lines with the request's context."""
    return logging.getLogger(f"{SERVE_LOGGER}.{name}")


class Every:
    """At most one True per ``interval_s`` (for log lines that could come thousands a
    second, such as load shedding)."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._last = -float("inf")
        self.suppressed = 0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            return True
        self.suppressed += 1
        return False


def init_sentry(settings: Settings, component: str) -> bool:
    """Report errors to Sentry when SENTRY_DSN is set; True when it is on."""
    dsn = secret_value(settings.sentry_dsn)
    if not dsn:
        return False
    try:
        import sentry_sdk
    except ImportError:
        get_logger("serve_app").warning(
            "SENTRY_DSN is set but sentry-sdk is not installed (pip install '.[sentry]')"
        )
        return False
    sentry_sdk.init(
        dsn=dsn,
        release=f"grocery-planner-ai@{__version__}",
        environment=settings.sentry_environment,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # the users' own receipts and documents (send_default_pii=False is deprecated)
        data_collection={"user_info": False, "http_bodies": []},
    )
    sentry_sdk.set_tag("component", component)
    return True
