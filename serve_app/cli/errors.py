"""The error a ``serve-app`` command raises for what the operator can fix."""

from __future__ import annotations


class CliError(Exception):
    """A problem the operator can fix; printed without a traceback (exit status 2)."""
