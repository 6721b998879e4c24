"""A real standby worker process (``python -m serve_app.prestart --standby embeddings``, as
Ray's raylet prestarts one: the nil job) running a stand-in for Ray's worker script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from serve_app import prestart

ROOT = Path(__file__).resolve().parents[2]


def start_standby(tmp_path: Path, probe: str, stderr: bool = True) -> subprocess.Popen:
    """Start it, with ``probe`` as the worker script; its output is piped (text)."""
    worker = tmp_path / "default_worker.py"
    worker.write_text(probe)
    return subprocess.Popen(
        [sys.executable, "-m", "serve_app.prestart", prestart.STANDBY, "embeddings", str(worker)],
        cwd=ROOT,
        env={**os.environ, "RAY_JOB_ID": "ffffffff", "SERVE_APP_STANDBY": "serve"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr else None,
        text=True,
    )
