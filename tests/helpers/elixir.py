"""The Elixir client and its contract script, and the skip when `elixir` is missing (`make test`
installs Debian's package when it can); without it the Elixir tests skip, saying so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "elixir" / "grocery_planner_ai.ex"
CONTRACT = ROOT / "clients" / "elixir" / "contract_test.exs"

needs_elixir = pytest.mark.skipif(
    shutil.which("elixir") is None,
    reason="elixir is not installed (make test installs Debian's elixir; it could not here)",
)
