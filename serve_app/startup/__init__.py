"""The start-up path: what ``serve-app run`` does from its start until Serve answers, in the
order it does it: ``config`` (the Serve config files as ``run`` reads and adapts them),
``prepare`` (what it settles while the bridge loads: the database, also ``serve-app db``, and
OCR's engine), ``bridge`` (a plain process that answers on the port meanwhile; its parent side is
``bridge.process``, its child ``bridge.server``), ``supervisor`` (that order, and the stop),
``serve_control`` (its steps that talk to Ray and Serve: connect, deploy, wait for ``/health``,
drain, shut down). The Ray node itself is ``serve_app.cluster``."""

from __future__ import annotations


class StartupError(Exception):
    """What keeps the server from starting that the operator can fix: ``serve-app`` prints it
    without a traceback and exits 2."""
