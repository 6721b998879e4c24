"""The store on a real embedded PostgreSQL with pgvector (its own data directory per module).

Vectors here are random unit vectors: these tests are about storage, search mechanics and
durability; meaning is tested end to end in test_routes.py with the real embedding model.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from serve_app.store.db import Document, Store
from serve_app.store.embedded import EmbeddedPostgres, socket_uri
from serve_app.store.schema import (
    IndexParams,
    StoreUnavailable,
    _version,
    check_pgvector,
    migrate,
    migrations,
)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("store") / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unit_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_store(postgres: EmbeddedPostgres, **kwargs) -> Store:
    return Store(
        lambda: socket_uri(postgres.pgdata),
        kind="embedded",
        index=IndexParams(),
        dimensions=384,
        **kwargs,
    )


def run(coro):
    return asyncio.run(coro)


async def _with_store(postgres: EmbeddedPostgres, work):
    store = make_store(postgres)
    try:
        return await work(store)
    finally:
        await store.close()


def test_migrations_are_versioned_and_idempotent(postgres: EmbeddedPostgres):
    async def work() -> None:
        conn = await asyncpg.connect(socket_uri(postgres.pgdata))
        try:
            await migrate(conn, IndexParams(), 384)
            assert await migrate(conn, IndexParams(), 384) == []  # nothing left to apply
            rows = await conn.fetch("SELECT version FROM schema_migrations")
            versions = [r["version"] for r in rows]
            assert versions == [v for v, _, _ in migrations()]
            assert _version(await check_pgvector(conn)) >= (0, 8, 0)
            # Changing the HNSW parameters rebuilds the index under a new name.
            await migrate(conn, IndexParams(m=8, ef_construction=32), 384)
            sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
            names = {r["indexname"] for r in await conn.fetch(sql)}
            assert "documents_embedding_hnsw_m8_efc32" in names
            assert "documents_embedding_hnsw_m16_efc128" not in names
            await migrate(conn, IndexParams(), 384)
        finally:
            await conn.close()

    run(work())


def test_missing_extension_is_named(postgres: EmbeddedPostgres):
    async def work() -> None:
        admin = await asyncpg.connect(socket_uri(postgres.pgdata))
        try:
            await admin.execute("DROP DATABASE IF EXISTS noext")
            await admin.execute("CREATE DATABASE noext")
        finally:
            await admin.close()
        conn = await asyncpg.connect(socket_uri(postgres.pgdata).replace("/postgres?", "/noext?"))
        try:
            with pytest.raises(StoreUnavailable, match="not created in this database"):
                await check_pgvector(conn)
        finally:
            await conn.close()

    run(work())
    assert _version("0.7.4") < (0, 8, 0) <= _version("0.8.6")


def test_upsert_search_delete_round_trip(postgres: EmbeddedPostgres):
    vectors = unit_vectors(50, seed=1)
    docs = [
        Document(f"d{i}", f"text {i}", {"group": i % 10, "tags": ["x", f"t{i}"]}) for i in range(50)
    ]

    async def work(store: Store) -> None:
        assert await store.upsert("rt", docs, vectors) == 50
        hits = await store.search("rt", vectors[7], k=5)
        assert hits[0].id == "d7" and hits[0].text == "text 7"
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].metadata == {"group": 7, "tags": ["x", "t7"]}
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        exact = await store.search("rt", vectors[7], k=5, exact=True)
        assert [h.id for h in exact] == [h.id for h in hits]
        # Metadata filter: JSON containment.
        filtered = await store.search("rt", vectors[7], k=10, where={"group": 3})
        assert {h.id for h in filtered} == {f"d{i}" for i in range(3, 50, 10)}
        tagged = await store.search("rt", vectors[0], k=3, where={"tags": ["t9"]})
        assert [h.id for h in tagged] == ["d9"]
        # Delete.
        assert await store.delete("rt", "d7")
        assert not await store.delete("rt", "d7")
        assert all(h.id != "d7" for h in await store.search("rt", vectors[7], k=5))
        assert await store.search("never-used", vectors[7], k=5) == []

    run(_with_store(postgres, work))


def test_upsert_replaces_and_is_idempotent(postgres: EmbeddedPostgres):
    old, new = unit_vectors(2, seed=2)

    async def work(store: Store) -> None:
        await store.upsert("idem", [Document("a", "before", {"v": 1})], old[None])
        await store.upsert("idem", [Document("a", "after", {"v": 2})], new[None])
        await store.upsert("idem", [Document("a", "after", {"v": 2})], new[None])
        hits = await store.search("idem", new, k=10)
        assert [(h.id, h.text, h.metadata) for h in hits] == [("a", "after", {"v": 2})]
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)

    run(_with_store(postgres, work))


def test_a_failing_batch_stores_nothing(postgres: EmbeddedPostgres):
    vectors = unit_vectors(3, seed=3)
    bad = [Document("ok1", "one", {}), Document("ok2", "two", {}), Document("bad", "x\x00y", {})]

    async def work(store: Store) -> None:
        with pytest.raises(asyncpg.PostgresError):  # NUL is not valid in PostgreSQL text
            await store.upsert("atomic", bad, vectors)
        assert await store.search("atomic", vectors[0], k=10) == []

    run(_with_store(postgres, work))


def test_namespaces_are_isolated(postgres: EmbeddedPostgres):
    v = unit_vectors(1, seed=4)

    async def work(store: Store) -> None:
        await store.upsert("ns-a", [Document("same", "in a", {})], v)
        await store.upsert("ns-b", [Document("same", "in b", {})], v)
        assert [h.text for h in await store.search("ns-a", v[0], k=10)] == ["in a"]
        assert [h.text for h in await store.search("ns-b", v[0], k=10)] == ["in b"]
        await store.delete("ns-a", "same")
        assert [h.text for h in await store.search("ns-b", v[0], k=10)] == ["in b"]

    run(_with_store(postgres, work))


def test_filtered_search_fills_k_from_a_selective_filter(postgres: EmbeddedPostgres):
    """Iterative index scans: a filter matching 5% of rows still returns k results."""
    vectors = unit_vectors(2000, seed=5)
    docs = [Document(f"f{i}", f"t{i}", {"rare": i % 20 == 0}) for i in range(2000)]

    async def work(store: Store) -> None:
        await store.upsert("filtered", docs, vectors)
        hits = await store.search("filtered", vectors[1], k=50, where={"rare": True})
        assert len(hits) == 50
        assert all(h.metadata["rare"] is True for h in hits)

    run(_with_store(postgres, work))


def test_down_database_is_unavailable_then_recovers(postgres: EmbeddedPostgres):
    """Stop and restart: the same Store reports unavailable, then works again, data intact."""
    v = unit_vectors(1, seed=6)

    async def work() -> None:
        store = make_store(postgres)
        try:
            await store.upsert("restart", [Document("kept", "kept", {})], v)
            postgres.stop()
            assert (await store.status())["status"] == "unavailable"
            with pytest.raises(StoreUnavailable):
                await store.search("restart", v[0], k=1)
            postgres.ensure_running()
            assert (await store.status())["status"] == "ready"
            assert [h.id for h in await store.search("restart", v[0], k=1)] == ["kept"]
        finally:
            await store.close()

    run(work())


def test_acknowledged_upsert_survives_sigkill_and_the_supervisor_restarts(
    postgres: EmbeddedPostgres,
):
    v = unit_vectors(1, seed=7)

    async def upsert_then_kill() -> None:
        await _with_store(
            postgres, lambda s: s.upsert("durable", [Document("acked", "acked", {})], v)
        )
        # The upsert was acknowledged (committed); now kill PostgreSQL without warning.
        os.kill(postgres.pid(), signal.SIGKILL)

    run(upsert_then_kill())
    postgres.supervise(interval_s=0.5)
    try:
        # PostgreSQL restarted by the supervisor may need a few tries (a SIGKILLed postmaster
        # leaves backends behind for a moment): wait until the store answers again.
        deadline = time.monotonic() + 90
        hits, last = None, None
        while time.monotonic() < deadline:
            try:
                hits = run(_with_store(postgres, lambda s: s.search("durable", v[0], k=1)))
                break
            except StoreUnavailable as exc:
                last = exc
                time.sleep(0.5)
        assert hits is not None, f"the store did not come back: {last}"
    finally:
        postgres._stop.set()
        if postgres._supervisor is not None:
            postgres._supervisor.join(timeout=60)
        postgres.ensure_running()  # for the tests after this one
    assert [h.id for h in hits] == ["acked"]


def test_embedded_server_is_reused_across_restarts(postgres: EmbeddedPostgres, tmp_path: Path):
    """A second handle on the same data directory adopts the running server; stop + start keeps
    the data (restart persistence)."""
    v = unit_vectors(1, seed=8)
    run(_with_store(postgres, lambda s: s.upsert("persist", [Document("p", "p", {})], v)))
    pid = postgres.pid()
    other = EmbeddedPostgres(postgres.pgdata)
    other.start()
    assert other.pid() == pid  # adopted, not a second server
    postgres.stop()
    assert not other.running()
    postgres.start()
    assert postgres.pid() != pid
    hits = run(_with_store(postgres, lambda s: s.search("persist", v[0], k=1)))
    assert [h.id for h in hits] == ["p"]
