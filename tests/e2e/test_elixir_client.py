"""The Elixir side: the :httpc contract script passes against the live server (the client
module's own checks: tests/unit/test_elixir_client.py). Needs `elixir` (`make test` installs
Debian's package when it can); without it these tests skip, saying so."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers.elixir import CONTRACT, needs_elixir

pytestmark = pytest.mark.e2e


@pytest.mark.e2e
@needs_elixir
def test_contract_script_passes_against_the_live_server(serve_server):
    env = {"BASE_URL": serve_server.url, "TOKEN": serve_server.token, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        ["elixir", str(CONTRACT)], capture_output=True, text=True, timeout=600, env=env
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^(\d+) checks passed$", out.stdout, re.M)
    assert "FAIL" not in out.stdout


@pytest.mark.e2e
@needs_elixir
def test_contract_script_fails_on_a_wrong_token(serve_server):
    """The script can fail: with a wrong token the authenticated checks do."""
    env = {"BASE_URL": serve_server.url, "TOKEN": "wrong", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        ["elixir", str(CONTRACT)], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 1
    assert "FAIL POST /v1/embeddings is 200" in out.stdout
