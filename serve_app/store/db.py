"""The document store: asyncpg + pgvector, versioned migrations, HNSW cosine search.

No Ray and no FastAPI here. The ingress holds one :class:`Store` (one connection pool per
replica). A database that is down makes every call raise :class:`StoreUnavailable`; the pool
reconnects by itself when the database is back, so nothing needs a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg
import numpy as np
import orjson
from pgvector.asyncpg import register_vector

from serve_app.logs import get_logger

log = get_logger(__name__)

MIN_PGVECTOR = (0, 8, 0)  # iterative index scans keep filtered queries' recall
DIMENSIONS_MARK = "__DIMENSIONS__"  # in the migrations: the served model's dimension
_LOCK_ID = 0x67726F63  # advisory lock held while migrating ("groc")

# What a database that is down, restarting or unreachable raises.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
)


class StoreUnavailable(RuntimeError):
    """The database cannot be used now; ``fix`` says what the operator can do."""

    def __init__(self, reason: str, fix: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float  # cosine similarity


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
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(found)


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
    """Apply pending migrations (a new table gets vectors of ``dimensions``), check that the
    table's vectors have that dimension, and (re)build the HNSW index; returns the files
    applied. Runs in one transaction under an advisory lock, so replicas starting together
    take turns."""
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
        for name in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
            " AND indexname LIKE 'documents_embedding_hnsw%'"
        ):
            await conn.execute(f'DROP INDEX "{name["indexname"]}"')
        await conn.execute("ALTER TABLE documents DROP COLUMN embedding")
        await conn.execute(f"ALTER TABLE documents ADD COLUMN embedding vector({int(dimensions)})")
        done = 0
        cursor = conn.cursor("SELECT namespace, id, text FROM documents", prefetch=batch)
        rows: list[Any] = []

        async def flush() -> None:
            nonlocal done
            vectors = embed([r["text"] for r in rows])
            await conn.executemany(
                "UPDATE documents SET embedding = $3 WHERE namespace = $1 AND id = $2",
                [(r["namespace"], r["id"], vectors[i]) for i, r in enumerate(rows)],
            )
            done += len(rows)
            progress(f"  {done}/{total}")
            rows.clear()

        async for row in cursor:
            rows.append(row)
            if len(rows) == batch:
                await flush()
        if rows:
            await flush()
        await conn.execute("ALTER TABLE documents ALTER COLUMN embedding SET NOT NULL")
        await _ensure_index(conn, index, progress)
    return done


async def _ensure_index(
    conn: asyncpg.Connection, index: IndexParams, progress: Callable[[str], None]
) -> None:
    existing = {
        r["indexname"]
        for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
            " AND indexname LIKE 'documents_embedding_hnsw%'"
        )
    }
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


class Store:
    """A connection pool to the documents table; every method raises StoreUnavailable when
    the database cannot be reached (the caller answers 503)."""

    def __init__(
        self,
        dsn: Callable[[], str | None],
        *,
        kind: str,
        index: IndexParams,
        dimensions: int,
        ef_search: int = 100,
        pool_size: int = 10,
        connect_timeout_s: float = 5.0,
        query_timeout_s: float = 10.0,
    ):
        self._dsn = dsn
        self.kind = kind  # "embedded" or "external"
        self.index = index
        self.dimensions = dimensions
        self.ef_search = ef_search
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self.query_timeout_s = query_timeout_s
        self.pgvector: str | None = None
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await register_vector(conn)

    async def pool(self) -> asyncpg.Pool:
        """The pool, created (and the schema migrated) on first use."""
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is not None:
                return self._pool
            dsn = self._dsn()
            if dsn is None:
                raise StoreUnavailable(
                    "the embedded PostgreSQL is not running",
                    "`serve-app run` starts it (or `serve-app db start`); or set DATABASE_URL",
                )
            try:
                conn = await asyncpg.connect(dsn, timeout=self.connect_timeout_s)
                try:
                    await migrate(conn, self.index, self.dimensions)
                    self.pgvector = await check_pgvector(conn)
                finally:
                    await conn.close()
                self._pool = await asyncpg.create_pool(
                    dsn,
                    min_size=0,  # no connections needed to exist: survives the database's absence
                    max_size=self.pool_size,
                    init=self._init_connection,
                    # Search settings of every session, sent at connect: the pool runs RESET
                    # ALL when a connection is released, which would undo a SET (measured:
                    # ef_search silently back to 40), but not these session defaults.
                    server_settings={
                        "hnsw.ef_search": str(int(self.ef_search)),
                        "hnsw.iterative_scan": "relaxed_order",
                    },
                    timeout=self.connect_timeout_s,
                    command_timeout=self.query_timeout_s,
                )
            except CONNECTION_ERRORS as exc:
                raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from None
            except asyncpg.PostgresError as exc:  # e.g. no right to CREATE EXTENSION
                raise StoreUnavailable(
                    f"preparing the database failed: {exc}", "run `serve-app db migrate`"
                ) from None
            return self._pool

    async def _run(self, work: Callable[[asyncpg.Connection], Any]) -> Any:
        """Run ``work`` on a pooled connection; a connection lost to a database restart is
        retried once on a fresh one (every store call is idempotent)."""
        pool = await self.pool()
        for attempt in (1, 2):
            try:
                async with pool.acquire(timeout=self.connect_timeout_s) as conn:
                    return await work(conn)
            except CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from None
                await pool.expire_connections()  # drop every connection of the old server
        raise AssertionError("unreachable")

    async def status(self) -> dict[str, Any]:
        base = {"database": self.kind}
        try:
            await asyncio.wait_for(self._run(lambda c: c.fetchval("SELECT 1")), 3.0)
        except StoreUnavailable as exc:
            return {"status": "unavailable", **base, "reason": exc.reason, "fix": exc.fix}
        except TimeoutError:
            return {"status": "unavailable", **base, "reason": "PostgreSQL did not answer in 3 s"}
        return {"status": "ready", **base, "pgvector": self.pgvector}

    async def upsert(self, namespace: str, docs: Sequence[Document], vectors: np.ndarray) -> int:
        """Insert or replace all documents in one transaction: all or nothing."""
        rows = [
            (namespace, d.id, d.text, orjson.dumps(d.metadata).decode(), vectors[i])
            for i, d in enumerate(docs)
        ]

        async def work(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO documents (namespace, id, text, metadata, embedding)"
                    " VALUES ($1, $2, $3, $4::jsonb, $5)"
                    " ON CONFLICT (namespace, id) DO UPDATE SET text = EXCLUDED.text,"
                    " metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding,"
                    " updated_at = now()",
                    rows,
                )
            return len(rows)

        return await self._run(work)

    async def delete(self, namespace: str, doc_id: str) -> bool:
        result = await self._run(
            lambda c: c.execute(
                "DELETE FROM documents WHERE namespace = $1 AND id = $2", namespace, doc_id
            )
        )
        return result == "DELETE 1"

    async def search(
        self,
        namespace: str,
        vector: np.ndarray,
        k: int,
        where: dict[str, Any] | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """The k nearest documents by cosine distance, best first.

        ``where`` matches metadata by JSON containment (``metadata @> where``). The HNSW scan
        is iterative, so a filter that rejects most neighbours still fills k results.
        ``exact=True`` scans without the index (ground truth for recall measurements).
        """
        sql = (
            "SELECT id, text, metadata::text AS metadata, embedding <=> $1 AS distance"
            " FROM documents WHERE namespace = $2"
        )
        args: list[Any] = [vector, namespace]
        if where:
            args.append(orjson.dumps(where).decode())
            sql += f" AND metadata @> ${len(args)}::jsonb"
        # LIMIT is a literal (k is a validated int): with a bound parameter PostgreSQL switches
        # to a generic plan after five runs, and pgvector's HNSW scan then lost recall
        # (measured 0.887 vs 1.000 on the same index; benchmarks/search.py).
        # The exact scan orders by an expression the index cannot serve; a GUC such as
        # enable_indexscan would not reach an already cached generic plan.
        order = "(embedding <=> $1) + 0" if exact else "embedding <=> $1"
        sql += f" ORDER BY {order} LIMIT {int(k)}"

        async def work(conn: asyncpg.Connection) -> list[Any]:
            return await conn.fetch(sql, *args)

        rows = await self._run(work)
        # relaxed_order iterative scans may return neighbours slightly out of order.
        rows = sorted(rows, key=lambda r: r["distance"])
        return [
            Hit(r["id"], r["text"], orjson.loads(r["metadata"]), round(1.0 - r["distance"], 6))
            for r in rows
        ]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def create_store(settings: Any, dimensions: int) -> Store:
    """The document store for vectors of ``dimensions``: DATABASE_URL, else the embedded
    PostgreSQL in the data directory."""
    from serve_app.store.embedded import pgdata_dir, socket_uri

    if settings.database_url:
        url = settings.database_url
        dsn, kind = (lambda: url), "external"
    else:
        pgdata = pgdata_dir(settings.data_dir)
        dsn, kind = (lambda: socket_uri(pgdata)), "embedded"
    return Store(
        dsn,
        kind=kind,
        index=IndexParams(settings.store_hnsw_m, settings.store_hnsw_ef_construction),
        dimensions=dimensions,
        ef_search=settings.store_hnsw_ef_search,
        pool_size=settings.store_pool_size,
        connect_timeout_s=settings.store_connect_timeout_s,
        query_timeout_s=settings.store_query_timeout_s,
    )
