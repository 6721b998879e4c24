"""The session's Ray head is the slim one ``serve-app run`` starts (serve_app.cluster.slim_head):
Serve answers, and the processes it does not use are not there."""

from __future__ import annotations

import os

import psutil
import pytest

pytestmark = pytest.mark.e2e

ABSENT = {
    "dashboard head": "ray/dashboard/dashboard.py",
    "autoscaler monitor": "autoscaler/_private/monitor.py",
    "Ray Client server": "ray.util.client.server",
}


def _session_commands(sid: int) -> list[str]:
    commands = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getsid(proc.info["pid"]) == sid:
                commands.append(" ".join(proc.info["cmdline"] or []))
        except (ProcessLookupError, PermissionError):
            continue
    return commands


def test_slim_head_runs_serve_without_the_processes_it_does_not_use(serve_server):
    import httpx

    commands = _session_commands(serve_server.head_sid)
    # The listing sees the head's daemons (else an empty list would pass the check below).
    assert any("/raylet/raylet " in c for c in commands), commands
    assert any("gcs_server" in c for c in commands), commands
    present = {name: c for name, marker in ABSENT.items() for c in commands if marker in c}
    assert not present, present
    health = httpx.get(f"{serve_server.url}/health", timeout=30)
    assert health.status_code == 200
