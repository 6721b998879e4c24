"""``serve-app db``: ``serve-app run``'s database step alone (serve_app.startup.prepare), and the
embedded PostgreSQL's start and stop."""

from __future__ import annotations

import argparse
from typing import Any

from serve_app.cli.errors import CliError
from serve_app.settings import get_settings
from serve_app.startup.prepare import prepare_database
from serve_app.startup.supervisor import prepare_embeddings
from serve_app.store.embedded import EmbeddedPostgres, pgdata_dir, socket_uri


def cmd_stop(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.database_url:
        raise CliError("DATABASE_URL is set: that server is not ours to stop")
    EmbeddedPostgres(pgdata_dir(settings.data_dir)).stop()
    print("embedded PostgreSQL stopped", flush=True)
    return 0


def prepare(reindex_first: bool, leave_running: bool) -> int:
    """`serve-app run`'s database step alone; the embedded server is then left as it was
    found, or running with ``leave_running``."""
    settings = get_settings()
    embedded = EmbeddedPostgres(pgdata_dir(settings.data_dir))
    was_running = settings.database_url is None and embedded.running()
    dimensions = prepare_embeddings(settings).dimensions
    started = prepare_database(settings, dimensions, reindex_first=reindex_first)
    if started is not None and leave_running:
        print(f"embedded PostgreSQL running: {socket_uri(started.pgdata)}", flush=True)
    elif started is not None and not was_running:
        started.stop()
    return 0


def add_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="the document database (PostgreSQL + pgvector)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser(
        "migrate",
        help="apply pending migrations and build the HNSW index (DATABASE_URL, else the "
        "embedded server); Fly runs it as the release command",
    ).set_defaults(func=lambda _: prepare(reindex_first=False, leave_running=False))
    db_sub.add_parser(
        "reindex",
        help="embed every stored document again with the served model, when the database "
        "was made for another model's dimension; then migrate",
    ).set_defaults(func=lambda _: prepare(reindex_first=True, leave_running=False))
    db_sub.add_parser(
        "start", help="start the embedded PostgreSQL and leave it running (for `serve run`)"
    ).set_defaults(func=lambda _: prepare(reindex_first=False, leave_running=True))
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_stop)
