"""``serve-app run``'s side of the bridge. Standard library only: ``serve-app run`` spawns it
before its own slower imports."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any

from serve_app.startup.bridge import CAUGHT_UP, FAILED, KEPT
from serve_app.startup.bridge.sockets import PortInUse


class BridgeProcess:
    """serve-app's side of the bridge: start it, tell it the config, hand over, stop. Its
    output goes to serve-app's own."""

    # it listens within a second; past this, the port answers once Serve is ready instead
    START_TIMEOUT_S = 30.0

    def __init__(self, host: str | None = None, port: int | None = None):
        self.host, self.port = host, port  # None: the bridge reads its settings
        self.proc: Any = None
        self._first: Any = None
        self._relay: Any = None
        self._loaded: Any = None
        self._kept: Any = None

    @classmethod
    def early(cls, argv: list[str]) -> BridgeProcess | None:
        """``serve-app run ARGV``'s bridge, spawned before serve-app's settings are read (kept
        or stopped then); None on someone else's cluster (RAY_ADDRESS)."""
        if os.environ.get("RAY_ADDRESS"):
            return None
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--host")
        parser.add_argument("--port", type=int)
        known, _ = parser.parse_known_args(argv)
        process = cls(known.host, known.port)
        process.spawn()
        return process

    def spawn(self) -> None:
        """Start the bridge process; :meth:`wait_listening` waits for it to listen."""
        address = []
        for option, value in (("--host", self.host), ("--port", self.port)):
            address += [option, str(value)] if value is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serve_app.startup.bridge", *address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._first = queue.Queue()
        proc = self.proc
        threading.Thread(
            target=lambda: self._first.put(proc.stdout.readline()), daemon=True
        ).start()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the bridge and wait until it listens (:meth:`wait_listening`)."""
        self.spawn()
        self.wait_listening(timeout_s)

    def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the bridge listens, at most ``timeout_s``; RuntimeError (PortInUse) with
        its words if not."""
        try:
            first = self._first.get(timeout=timeout_s)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise RuntimeError(f"the bridge did not listen within {timeout_s:.0f} s") from None
        if not first.startswith("bridge: listening"):
            rest = self.proc.stdout.read()
            self.proc.wait()
            words = (first + rest).strip() or f"exit {self.proc.returncode}"
            self.proc = None
            raise (PortInUse if "in use" in first else RuntimeError)(words)
        print(first, end="", flush=True)
        self._loaded = threading.Event()
        self._kept = threading.Event()
        self._relay = threading.Thread(target=self._print, daemon=True, name="bridge-output")
        self._relay.start()

    def _print(self) -> None:
        for line in self.proc.stdout:
            print(line, end="", flush=True)
            if line.startswith((CAUGHT_UP, FAILED)):
                self._loaded.set()
            if line.startswith(KEPT):
                self._kept.set()
        self._loaded.set()  # the bridge exited

    def wait_loaded(self, timeout_s: float) -> bool:
        """Wait until the bridge has loaded its model and answered what waited for it (or
        failed, or exited), at most ``timeout_s``: Ray starts after it."""
        return self._loaded is not None and self._loaded.wait(timeout_s)

    def _send(self, line: str) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):  # the bridge is gone already
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def configure(self, components: list[str], store: bool) -> None:
        """The config's models besides embeddings, and whether the bridge serves the store."""
        self._send(json.dumps({"components": components, "store": store}))

    def handover(self, serve_url: str, timeout_s: float = 180) -> bool:
        """Serve answers at ``serve_url``: True once the bridge has finished and exited (stopped
        after ``timeout_s``); False when it kept the port (:data:`KEPT`) until :meth:`stop`."""
        self._send(f"handover {serve_url}")
        deadline = time.monotonic() + timeout_s
        while self.proc is not None and self.proc.poll() is None:
            if self._kept is not None and self._kept.wait(0.1):
                return False
            if time.monotonic() > deadline:
                break
        self.stop()
        return True

    def stop(self, timeout_s: float = 10) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the bridge exits at the end of its stdin
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._relay is not None:
            self._relay.join(5)
