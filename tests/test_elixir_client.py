"""The Elixir side: the Req client module parses and has one function per route, and the
:httpc contract script passes against the live server. Both need `elixir` (`make test`
installs Debian's package when it can); without it they skip, saying so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "elixir" / "grocery_planner_ai.ex"
CONTRACT = ROOT / "clients" / "elixir" / "contract_test.exs"

needs_elixir = pytest.mark.skipif(
    shutil.which("elixir") is None,
    reason="elixir is not installed (make test installs Debian's elixir; it could not here)",
)


def test_client_has_one_function_per_route():
    source = CLIENT.read_text()
    routes = {
        "health": '"/health"',
        "embeddings": '"/v1/embeddings"',
        "upsert_documents": '"/v1/documents"',
        "delete_document": '"/v1/documents/',
        "search": '"/v1/search"',
        "ocr": '"/v1/ocr',
        "parse_receipt": '"/v1/receipts/parse"',
        "plan": '"/v1/plans"',
    }
    for function, path in routes.items():
        assert re.search(rf"\n  def {function}\(client", source), function
        assert path in source, path
    assert '"x-request-id"' in source and "{:bearer, token}" in source
    assert "when status in [429, 503]" in source  # retried after Retry-After


@needs_elixir
def test_client_module_is_valid_elixir():
    code = f'Code.string_to_quoted!(File.read!("{CLIENT}")); IO.puts("ok")'
    out = subprocess.run(["elixir", "-e", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


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
