"""`serve-app db migrate|start|stop` on a real embedded PostgreSQL in a temporary data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app import settings as settings_module
from serve_app.cli import main
from serve_app.cluster import free_port
from serve_app.store.embedded import EmbeddedPostgres, pgdata_dir


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("SERVE_APP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield tmp_path
    settings_module.get_settings.cache_clear()
    EmbeddedPostgres(pgdata_dir(tmp_path)).stop()


def test_migrate_start_stop(data_dir: Path, capsys):
    server = EmbeddedPostgres(pgdata_dir(data_dir))
    assert main(["db", "migrate"]) == 0
    out = capsys.readouterr().out
    assert "applying migration 0001_documents.sql" in out
    assert "pgvector 0.8" in out
    assert not server.running(), "migrate leaves a stopped embedded server stopped"
    assert main(["db", "migrate"]) == 0
    assert "schema up to date" in capsys.readouterr().out
    assert main(["db", "start"]) == 0
    assert "embedded PostgreSQL running: postgresql://" in capsys.readouterr().out
    assert server.running()
    assert main(["db", "migrate"]) == 0
    assert server.running(), "migrate leaves a running server running"
    assert main(["db", "stop"]) == 0
    assert not server.running()


def test_unreachable_database_url_is_a_clear_error(data_dir: Path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u@127.0.0.1:{free_port()}/db")
    settings_module.get_settings.cache_clear()
    assert main(["db", "migrate"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach DATABASE_URL" in err
    assert main(["db", "stop"]) == 2
    assert "not ours to stop" in capsys.readouterr().err
