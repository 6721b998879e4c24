"""What ``serve-app run`` settles while the bridge loads its model and Ray starts: the database
(also ``serve-app db``) and OCR's engine. Its imports are slow: the supervisor imports it late."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

from serve_app.embeddings.runtime import EmbeddingRuntime
from serve_app.ocr.config import ocr_configs
from serve_app.ocr.weights import missing_by_name
from serve_app.settings import Settings
from serve_app.startup import StartupError
from serve_app.store.db import CONNECTION_ERRORS
from serve_app.store.embedded import EmbeddedPostgres, pgdata_dir
from serve_app.store.schema import (
    IndexParams,
    StoreUnavailable,
    check_pgvector,
    migrate,
    reindex,
    stored_dimensions,
)


def say(line: str) -> None:
    print(line, flush=True)


def prepare_database(
    settings: Settings, dimensions: int, reindex_first: bool = False
) -> EmbeddedPostgres | None:
    """Start the embedded PostgreSQL unless DATABASE_URL is set (returned, else None), apply
    migrations, check pgvector and that the vectors have ``dimensions`` (``reindex_first``:
    embed every document again first when they do not)."""
    embedded = None
    if settings.database_url:
        dsn, where = settings.database_url, "DATABASE_URL"
    else:
        embedded = EmbeddedPostgres(pgdata_dir(settings.data_dir))
        was_running = embedded.running()
        say(f"starting the embedded PostgreSQL in {embedded.pgdata} ...")
        dsn, where = embedded.start(), f"embedded PostgreSQL ({embedded.pgdata})"

    async def run() -> tuple[list[str], str]:
        conn = await asyncpg.connect(dsn, timeout=settings.store_connect_timeout_s)
        try:
            index = IndexParams(settings.store_hnsw_m, settings.store_hnsw_ef_construction)
            if reindex_first:
                await reindex_documents(conn, settings, dimensions, index)
            applied = await migrate(conn, index, dimensions, progress=say)
            return applied, await check_pgvector(conn)
        finally:
            await conn.close()

    try:
        try:
            applied, version = asyncio.run(run())
        except StoreUnavailable as exc:
            fix = f". Fix: {exc.fix}" if exc.fix else ""
            raise StartupError(f"{where}: {exc.reason}{fix}") from None
        except CONNECTION_ERRORS as exc:
            raise StartupError(f"cannot reach {where}: {exc}") from None
        except asyncpg.PostgresError as exc:
            raise StartupError(f"{where}: migrating failed: {exc}") from None
    except StartupError:
        if embedded is not None and not was_running:  # as it was found
            embedded.stop()
        raise
    done = f"applied {', '.join(applied)}" if applied else "schema up to date"
    say(f"database ready: {where}, pgvector {version}, {done}")
    return embedded


async def reindex_documents(
    conn: Any, settings: Settings, dimensions: int, index: IndexParams
) -> None:
    """Embed every stored document again with the served model, when the table's vectors
    have another dimension (``serve-app db reindex``; same dimension: nothing to do)."""
    stored = await stored_dimensions(conn)
    if stored is None or stored == dimensions:
        say(f"the stored vectors have {dimensions} dimensions already: nothing to re-index")
        return
    await register_vector(conn)
    runtime = EmbeddingRuntime.from_settings(settings)
    done = await reindex(
        conn, lambda texts: runtime.embed(texts).vectors, dimensions, index, progress=say
    )
    say(f"re-indexed {done} documents ({stored} -> {dimensions} dimensions)")


def prepare_ocr(config: Any, settings: Settings) -> None:
    """Say which engine reads receipts; refuse to start when docTR's weights are required
    (SERVE_APP_OCR_REQUIRE_WEIGHTS) and missing: a failed start beats a silently blind OCR."""
    weights_dir = settings.ocr_weights_path()
    for ocr in ocr_configs(config):
        if ocr.engine == "rapidocr":
            say("OCR engine: rapidocr (its weights ship in its package)")
            continue
        missing = missing_by_name(weights_dir, ocr.det_arch, ocr.reco_arch)
        if missing and settings.ocr_require_weights:
            raise StartupError(
                "docTR weights are required (SERVE_APP_OCR_REQUIRE_WEIGHTS) but missing for "
                + ", ".join(missing)
                + f" in {weights_dir}. Run `serve-app weights download` (the image build does) "
                "or unset it."
            )
        say(f"OCR engine: doctr (weights {weights_dir}, missing: {', '.join(missing) or 'none'})")
