"""`serve-app db migrate|start|stop` on a real embedded PostgreSQL in a temporary data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from serve_app import settings as settings_module
from serve_app.cli.main import main
from serve_app.net import free_port
from serve_app.store.embedded import EmbeddedPostgres, pgdata_dir, socket_uri


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    # the test session's ONNX exports (made once), not one per temporary data dir
    exports = settings_module.Settings().embeddings_onnx_path().resolve()
    monkeypatch.setenv("SERVE_APP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SERVE_APP_EMBEDDINGS_ONNX_DIR", str(exports))
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


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A random sentence-transformers model of 16 dimensions (all-MiniLM-L6-v2 has 384)."""
    from tests.helpers.st_models import make_model

    return make_model("distilbert-max-dense", tmp_path_factory.mktemp("models"))


def stored(data_dir: Path, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(socket_uri(pgdata_dir(data_dir)))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def use_model(monkeypatch, model_dir: Path | None) -> None:
    if model_dir is None:
        monkeypatch.delenv("SERVE_APP_EMBEDDINGS_MODEL_DIR", raising=False)
    else:
        monkeypatch.setenv("SERVE_APP_EMBEDDINGS_MODEL_DIR", str(model_dir))
    settings_module.get_settings.cache_clear()


def test_the_store_follows_the_models_dimension(data_dir: Path, small_model, monkeypatch, capsys):
    """A new database gets the served model's dimension; one made for another model is
    refused naming both dimensions and the way out, and `db reindex` embeds every stored
    text again with the model served now."""
    from serve_app.embeddings.runtime import EmbeddingRuntime
    from serve_app.store.db import Document, Store
    from serve_app.store.schema import IndexParams

    kind = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
    kind += " WHERE attrelid = 'documents'::regclass AND attname = 'embedding'"
    assert main(["db", "start"]) == 0  # all-MiniLM-L6-v2: 384 dimensions
    assert stored(data_dir, kind) == "vector(384)"
    minilm = EmbeddingRuntime()
    texts = {"1": "oat milk 1 l", "2": "rye bread", "3": "free-range eggs"}
    store = Store(
        lambda: socket_uri(pgdata_dir(data_dir)),
        kind="embedded",
        index=IndexParams(),
        dimensions=384,
    )

    async def upsert() -> None:
        docs = [Document(i, text, {}) for i, text in texts.items()]
        await store.upsert("pantry", docs, minilm.embed(list(texts.values())).vectors)
        await store.close()

    asyncio.run(upsert())
    capsys.readouterr()
    use_model(monkeypatch, small_model)  # another model: 16 dimensions
    assert main(["db", "migrate"]) == 2
    err = capsys.readouterr().err
    assert "holds 384-dimensional vectors (3 documents)" in err, err
    assert "the embedding model served now gives 16" in err and "serve-app db reindex" in err
    assert main(["db", "reindex"]) == 0
    out = capsys.readouterr().out
    assert "re-indexed 3 documents (384 -> 16 dimensions)" in out, out
    assert stored(data_dir, kind) == "vector(16)"
    assert main(["db", "migrate"]) == 0
    # every text has the new model's vector: the nearest to a text's own vector is itself
    small = EmbeddingRuntime(small_model)
    small_store = Store(
        lambda: socket_uri(pgdata_dir(data_dir)),
        kind="embedded",
        index=IndexParams(),
        dimensions=16,
    )

    async def search() -> list[str]:
        try:
            found = []
            for text in texts.values():
                vector = small.embed([text]).vectors[0]
                hits = await small_store.search("pantry", vector, 1, exact=True)
                found.append(hits[0].text)
            return found
        finally:
            await small_store.close()

    assert asyncio.run(search()) == list(texts.values())
    assert stored(data_dir, "SELECT count(*) FROM documents") == 3
    assert main(["db", "stop"]) == 0


def test_a_new_database_gets_the_models_dimension(data_dir: Path, small_model, monkeypatch):
    use_model(monkeypatch, small_model)
    assert main(["db", "migrate"]) == 0
    assert main(["db", "start"]) == 0
    kind = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
    kind += " WHERE attrelid = 'documents'::regclass AND attname = 'embedding'"
    assert stored(data_dir, kind) == "vector(16)"
    assert main(["db", "stop"]) == 0
