"""The store's schema: versioned migrations in the served model's dimension, the pgvector
check, the dimension check and re-indexing, the HNSW index (``serve-app db``, and every
:class:`serve_app.store.db.Store` before its first use)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import asyncpg
import numpy as np

from serve_app.logs import get_logger

log = get_logger(__name__)

MIN_PGVECTOR = (0, 8, 0)  # iterative index scans keep filtered queries' recall
DIMENSIONS_MARK = "__DIMENSIONS__"  # in the migrations: the served model's dimension
_LOCK_ID = 0x67726F63  # advisory lock held while migrating ("groc")


class StoreUnavailable(RuntimeError):
    """The database cannot be used now; ``fix`` says what the operator can do."""

    def __init__(self, reason: str, fix: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class IndexParams:
    """HNSW build parameters; defaults as in the settings (docs/benchmarks.md, "Search")."""

    m: int = 16
    ef_construction: int = 128

    @property
    def name(self) -> str:
        return f"documents_embedding_hnsw_m{self.m}_efc{self.ef_construction}"


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped with the package, in order."""
    folder = resources.files("serve_app.store") / "migrations"
    return sorted(
        (int(entry.name.split("_", 1)[0]), entry.name, entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


async def check_pgvector(conn: asyncpg.Connection) -> str:
    """The installed pgvector version; StoreUnavailable if it is missing or too old."""
    row = await conn.fetchrow(
        "SELECT default_version, installed_version FROM pg_available_extensions "
        "WHERE name = 'vector'"
    )
    need = ".".join(map(str, MIN_PGVECTOR))
    if row is None:
        raise StoreUnavailable(
            "the PostgreSQL server has no pgvector extension",
            f"install pgvector >= {need} on the server (Fly Postgres images include it)",
        )
    installed = row["installed_version"]
    if installed is None:
        raise StoreUnavailable(
            "the vector extension is not created in this database",
            "run `serve-app db migrate` with a role allowed to CREATE EXTENSION vector",
        )
    if _version(installed) < MIN_PGVECTOR:
        raise StoreUnavailable(
            f"pgvector {installed} is too old: {need} or newer is needed (iterative index scans)",
            f"ALTER EXTENSION vector UPDATE (server offers {row['default_version']})",
        )
    return installed


async def migrate(
    conn: asyncpg.Connection,
    index: IndexParams,
    dimensions: int,
    progress: Callable[[str], None] = log.info,
) -> list[str]:
    """Apply pending migrations (a new table in ``dimensions``), check the stored dimension and
    (re)build the HNSW index; returns the files applied. One transaction under an advisory
    lock, so replicas starting together take turns."""
    available = await conn.fetchrow(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    )
    if available is None or _version(available["default_version"]) < MIN_PGVECTOR:
        await check_pgvector(conn)  # raises with the reason
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            progress(f"applying migration {name}")
            await conn.execute(sql.replace(DIMENSIONS_MARK, str(int(dimensions))))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(name)
        await check_pgvector(conn)
        await check_dimensions(conn, dimensions)
        await _ensure_index(conn, index, progress)
    return applied


async def stored_dimensions(conn: asyncpg.Connection) -> int | None:
    """The dimension of the documents table's vectors (None before the first migration)."""
    kind = await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = to_regclass('documents') AND attname = 'embedding'"
    )
    return int(kind.split("(")[1].rstrip(")")) if kind and "(" in kind else None


async def check_dimensions(conn: asyncpg.Connection, dimensions: int) -> None:
    """StoreUnavailable when the table was made for vectors of another dimension (another
    embedding model), naming both and how to re-index."""
    stored = await stored_dimensions(conn)
    if stored is not None and stored != dimensions:
        count = await conn.fetchval("SELECT count(*) FROM documents")
        raise StoreUnavailable(
            f"the database's documents table holds {stored}-dimensional vectors ({count} "
            f"documents), but the embedding model served now gives {dimensions}",
            "re-index: `serve-app db reindex` embeds every stored document's text again with "
            "this model; or serve the model the documents were embedded with "
            "(SERVE_APP_EMBEDDINGS_MODEL_DIR), or point DATABASE_URL at a new database",
        )


async def reindex(
    conn: asyncpg.Connection,
    embed: Callable[[list[str]], np.ndarray],
    dimensions: int,
    index: IndexParams,
    progress: Callable[[str], None] = log.info,
    batch: int = 256,
) -> int:
    """Embed every document's text again with ``embed`` (vectors of ``dimensions``), in one
    transaction: searches see the old vectors until it commits. Returns the documents."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        total = await conn.fetchval("SELECT count(*) FROM documents")
        progress(f"re-indexing {total} documents with {dimensions}-dimensional vectors")
        for name in await _hnsw_indexes(conn):
            await conn.execute(f'DROP INDEX "{name}"')
        await conn.execute("ALTER TABLE documents DROP COLUMN embedding")
        await conn.execute(f"ALTER TABLE documents ADD COLUMN embedding vector({int(dimensions)})")
        done = 0
        await conn.execute("DECLARE docs CURSOR FOR SELECT namespace, id, text FROM documents")
        while rows := await conn.fetch(f"FETCH {int(batch)} FROM docs"):
            vectors = embed([r["text"] for r in rows])
            await conn.executemany(
                "UPDATE documents SET embedding = $3 WHERE namespace = $1 AND id = $2",
                [(r["namespace"], r["id"], vectors[i]) for i, r in enumerate(rows)],
            )
            done += len(rows)
            progress(f"  {done}/{total}")
        await conn.execute("CLOSE docs")
        await conn.execute("ALTER TABLE documents ALTER COLUMN embedding SET NOT NULL")
        await _ensure_index(conn, index, progress)
    return done


async def _hnsw_indexes(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
        " AND indexname LIKE 'documents_embedding_hnsw%'"
    )
    return {r["indexname"] for r in rows}


async def _ensure_index(
    conn: asyncpg.Connection, index: IndexParams, progress: Callable[[str], None]
) -> None:
    existing = await _hnsw_indexes(conn)
    if index.name in existing:
        return
    for stale in existing:
        progress(f"dropping index {stale} (HNSW parameters changed)")
        await conn.execute(f'DROP INDEX "{stale}"')
    rows = await conn.fetchval("SELECT count(*) FROM documents")
    progress(f"building HNSW index {index.name} over {rows} documents")
    started = time.monotonic()
    await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
    await conn.execute(
        f'CREATE INDEX "{index.name}" ON documents USING hnsw (embedding vector_cosine_ops)'
        f" WITH (m = {int(index.m)}, ef_construction = {int(index.ef_construction)})"
    )
    progress(f"built {index.name} in {time.monotonic() - started:.1f} s")
