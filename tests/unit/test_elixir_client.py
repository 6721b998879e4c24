"""The Elixir side: the Req client module parses and has one function per route (the :httpc
contract script against the live server: tests/e2e/test_elixir_client.py). Parsing needs
`elixir` (`make test` installs Debian's package when it can); without it that test skips,
saying so."""

from __future__ import annotations

import re
import subprocess

from tests.helpers.elixir import CLIENT, needs_elixir


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
