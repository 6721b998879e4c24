"""``serve-app db``: the document database (PostgreSQL + pgvector), and its preparation for
``serve-app run``: the embedded server started, migrations applied, pgvector checked."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from serve_app.cli.errors import CliError
from serve_app.settings import Settings, get_settings
from serve_app.store.embedded import EmbeddedPostgres, pgdata_dir


def prepare_database(
    settings: Settings, dimensions: int, start_embedded: bool = True, reindex: bool = False
) -> EmbeddedPostgres | None:
    """Start the embedded PostgreSQL when no DATABASE_URL is set, then apply migrations and
    check pgvector and that the stored vectors have ``dimensions`` (the served model's);
    ``reindex`` embeds every document again first when they do not. Returns the embedded
    server (None with DATABASE_URL)."""
    import asyncpg

    from serve_app.store.db import CONNECTION_ERRORS
    from serve_app.store.schema import IndexParams, StoreUnavailable, migrate

    embedded = None
    if settings.database_url:
        dsn, where = settings.database_url, "DATABASE_URL"
    else:
        embedded = EmbeddedPostgres(pgdata_dir(settings.data_dir))
        was_running = embedded.running()
        if not start_embedded and not was_running:
            raise CliError(f"the embedded PostgreSQL in {embedded.pgdata} is not running")
        print(f"starting the embedded PostgreSQL in {embedded.pgdata} ...", flush=True)
        dsn, where = embedded.start(), f"embedded PostgreSQL ({embedded.pgdata})"

    async def run() -> tuple[list[str], str]:
        from serve_app.store.schema import check_pgvector

        conn = await asyncpg.connect(dsn, timeout=settings.store_connect_timeout_s)
        try:
            index = IndexParams(settings.store_hnsw_m, settings.store_hnsw_ef_construction)
            if reindex:
                await reindex_documents(conn, settings, dimensions, index)
            applied = await migrate(
                conn, index, dimensions, progress=lambda m: print(m, flush=True)
            )
            return applied, await check_pgvector(conn)
        finally:
            await conn.close()

    try:
        try:
            applied, version = asyncio.run(run())
        except StoreUnavailable as exc:
            fix = f". Fix: {exc.fix}" if exc.fix else ""
            raise CliError(f"{where}: {exc.reason}{fix}") from None
        except CONNECTION_ERRORS as exc:
            raise CliError(f"cannot reach {where}: {exc}") from None
        except asyncpg.PostgresError as exc:
            raise CliError(f"{where}: migrating failed: {exc}") from None
    except CliError:
        if embedded is not None and not was_running:  # as it was found
            embedded.stop()
        raise
    done = f"applied {', '.join(applied)}" if applied else "schema up to date"
    print(f"database ready: {where}, pgvector {version}, {done}", flush=True)
    return embedded


async def reindex_documents(conn: Any, settings: Settings, dimensions: int, index: Any) -> None:
    """Embed every stored document again with the served model, when the table's vectors
    have another dimension (``serve-app db reindex``; same dimension: nothing to do)."""
    from pgvector.asyncpg import register_vector

    from serve_app.embeddings.runtime import EmbeddingRuntime
    from serve_app.store.schema import reindex, stored_dimensions

    stored = await stored_dimensions(conn)
    if stored is None or stored == dimensions:
        print(f"the stored vectors have {dimensions} dimensions already: nothing to re-index")
        return
    await register_vector(conn)
    runtime = EmbeddingRuntime.from_settings(settings)
    done = await reindex(
        conn,
        lambda texts: runtime.embed(texts).vectors,
        dimensions,
        index,
        progress=lambda m: print(m, flush=True),
    )
    print(f"re-indexed {done} documents ({stored} -> {dimensions} dimensions)", flush=True)


def served_dimensions(settings: Settings) -> int:
    """The dimension of the served embedding model's vectors (its export made if needed)."""
    from serve_app.embeddings.model_files import ModelNotServable, served_export

    try:
        return served_export(settings, progress=lambda m: print(m, flush=True)).dimensions
    except ModelNotServable as exc:
        raise CliError(str(exc)) from None


def cmd_db(args: argparse.Namespace) -> int:
    """`db migrate` / `db reindex` / `db start` / `db stop` for the configured database."""
    settings = get_settings()
    if args.db_command == "stop":
        if settings.database_url:
            raise CliError("DATABASE_URL is set: that server is not ours to stop")
        EmbeddedPostgres(pgdata_dir(settings.data_dir)).stop()
        print("embedded PostgreSQL stopped", flush=True)
        return 0
    embedded = EmbeddedPostgres(pgdata_dir(settings.data_dir))
    was_running = settings.database_url is None and embedded.running()
    embedded = prepare_database(
        settings, served_dimensions(settings), reindex=args.db_command == "reindex"
    )
    if embedded is not None and args.db_command == "start":
        from serve_app.store.embedded import socket_uri

        print(f"embedded PostgreSQL running: {socket_uri(embedded.pgdata)}", flush=True)
    elif embedded is not None and not was_running:
        embedded.stop()  # `db migrate` leaves the server as it found it
    return 0


def add_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="the document database (PostgreSQL + pgvector)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser(
        "migrate",
        help="apply pending migrations and build the HNSW index (DATABASE_URL, else the "
        "embedded server); Fly runs it as the release command",
    ).set_defaults(func=cmd_db)
    db_sub.add_parser(
        "reindex",
        help="embed every stored document again with the served model, when the database "
        "was made for another model's dimension; then migrate",
    ).set_defaults(func=cmd_db)
    db_sub.add_parser(
        "start", help="start the embedded PostgreSQL and leave it running (for `serve run`)"
    ).set_defaults(func=cmd_db)
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_db)
