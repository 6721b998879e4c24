"""The Fly Machines API stand-in (tests/helpers/fly_standin.py) and the CLI pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serve_app.settings import get_settings
from tests.helpers.fly_standin import APP, FLY_TOKEN, MachinesStandIn


@pytest.fixture
def fly_api(monkeypatch) -> Iterator[MachinesStandIn]:
    standin = MachinesStandIn(APP, FLY_TOKEN)
    url = standin.start()
    monkeypatch.setenv("SERVE_APP_FLY_API_URL", url)
    monkeypatch.setenv("FLY_API_TOKEN", FLY_TOKEN)
    monkeypatch.setenv("FLY_APP_NAME", APP)
    get_settings.cache_clear()
    try:
        yield standin
    finally:
        standin.stop()
        get_settings.cache_clear()
