"""The document store: asyncpg + pgvector, HNSW cosine search (the schema: :mod:`.schema`).

One :class:`Store` (a connection pool) per ingress replica; while the database is down every
call raises :class:`StoreUnavailable`, and the pool reconnects by itself when it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import orjson
from pgvector.asyncpg import register_vector

from serve_app.logs import get_logger
from serve_app.store.embedded import pgdata_dir, socket_uri
from serve_app.store.schema import (
    IndexParams,
    StoreUnavailable,
    check_pgvector,
    migrate,
)

log = get_logger(__name__)

# What a database that is down, restarting or unreachable raises.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
)


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Hit(Document):
    score: float  # cosine similarity


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
                    init=register_vector,
                    # Session defaults, sent at connect: the pool's RESET ALL on release undoes
                    # a SET (measured: ef_search silently back to 40), not these.
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
        """The k nearest documents by cosine distance, best first; ``where`` matches metadata by
        JSON containment, ``exact=True`` scans without the index (recall's ground truth)."""
        sql = (
            "SELECT id, text, metadata::text AS metadata, embedding <=> $1 AS distance"
            " FROM documents WHERE namespace = $2"
        )
        args: list[Any] = [vector, namespace]
        if where:
            args.append(orjson.dumps(where).decode())
            sql += f" AND metadata @> ${len(args)}::jsonb"
        # LIMIT is a literal: with a bound one PostgreSQL goes to a generic plan after five runs,
        # where the HNSW scan lost recall (0.887 vs 1.000; benchmarks/search.py). "+ 0": an
        # order the index cannot serve (a GUC would not reach a cached generic plan).
        order = "(embedding <=> $1) + 0" if exact else "embedding <=> $1"
        sql += f" ORDER BY {order} LIMIT {int(k)}"
        rows = await self._run(lambda c: c.fetch(sql, *args))
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
    """The store for vectors of ``dimensions``: DATABASE_URL, else the embedded PostgreSQL."""
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
