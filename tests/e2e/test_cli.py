"""CLI checks against the session's running server (the rest: tests/unit/test_cli.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.e2e
def test_status_lists_deployments_and_replicas(serve_server):
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "serve_app.cli", "status"],
        env={**os.environ, "RAY_ADDRESS": serve_server.ray_address},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("application grocery: RUNNING") for line in lines)
    embeddings = next(line for line in lines if line.strip().startswith("embeddings"))
    assert "HEALTHY" in embeddings
    assert "running=1" in embeddings
