"""The ``serve-app`` command line (``serve_app.cli.main``; one module per command)."""

from serve_app.cli.main import main

__all__ = ["main"]
