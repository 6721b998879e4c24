"""The first answers of a deployment woken from zero, from its standby worker itself.

A request that finds a deployment at zero replicas wakes the deployment's standby worker
(serve_app/prestart.py): the standby starts loading the model at once, and Serve's controller
adds a replica, which Ray leases that same process. Once the model has loaded, Serve still
takes a few tenths of a second (the controller's loop sees the constructor end, tells the
ingress's router, the router sends the call) before the waiting call reaches the replica. So
the ingress also asks the standby directly (:func:`ask`), over a Unix socket of the node
(abstract, named for the standby's process; peers of the same user only): the standby answers
with the runtime it loads for its replica as soon as the load ends (:func:`listen`), and the
ingress cancels the call that waits on Serve (``DeploymentClient``). If the standby cannot
answer (gone, on another node, a failed load), the call that waits on Serve answers, as
without this.

Only calls that find no routable replica ask, and only a standby woken in the last
:data:`WINDOW_S`; the messages are JSON with a binary tail (no pickle: anything of the same
user may connect). A message: 4 bytes of header length (big-endian), the header (a JSON
object; ``"bytes"``: the tail's length), the tail.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

# A standby woken longer ago than this is not asked (Serve has had time to route to it).
WINDOW_S = 30.0
# Largest header accepted (texts to embed go in it); the tail may be as large as its header says.
MAX_HEADER_BYTES = 64 * 1024 * 1024
_LENGTH = struct.Struct("!I")
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

Handler = Callable[[dict[str, Any]], tuple[dict[str, Any], bytes]]


def address(role: str, pid: int) -> bytes:
    """The abstract socket on which the standby of ``role`` in process ``pid`` answers."""
    from serve_app.prestart import wake_address

    return wake_address(role, pid) + b"-answer"


def send(sock: socket.socket, header: dict[str, Any], tail: bytes = b"") -> None:
    data = json.dumps({**header, "bytes": len(tail)}).encode()
    sock.sendall(_LENGTH.pack(len(data)) + data + tail)


def _read(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    (length,) = _LENGTH.unpack(_read(sock, _LENGTH.size))
    if length > MAX_HEADER_BYTES:
        raise ValueError(f"a header of {length} bytes (at most {MAX_HEADER_BYTES})")
    header = json.loads(_read(sock, length))
    if not isinstance(header, dict) or not isinstance(header.get("bytes"), int):
        raise ValueError("the header is no JSON object with a byte count")
    return header, _read(sock, header["bytes"])


def same_user(sock: socket.socket) -> bool:
    """Whether the peer of a connected Unix socket runs as this process's user."""
    _, uid, _ = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return uid == os.getuid()


def listen(role: str, handler: Handler) -> threading.Thread:
    """In a standby worker: answer connections on :func:`address` on threads, one request
    each: ``handler(header)`` gives the answer's header and tail; an error is answered
    ``{"error": "..."}`` (the ingress then waits on Serve)."""
    from serve_app.prestart import background

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address(role, os.getpid()))
    server.listen(16)

    def one(conn: socket.socket) -> None:
        with conn:
            try:
                if not same_user(conn):
                    return
                request, _ = receive(conn)
                header, tail = handler(request)
            except Exception as exc:
                header, tail = {"error": repr(exc)}, b""
            with contextlib.suppress(OSError):  # the ingress gave up (Serve answered first)
                send(conn, header, tail)

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            background(functools.partial(one, conn), f"answer-{role}")

    return background(accept, f"answers-{role}")


Answer = tuple[dict[str, Any], bytes]


def ask(role: str, request: dict[str, Any], timeout_s: float) -> Answer | None:
    """In the ingress: the answer of a standby of ``role`` woken in the last
    :data:`WINDOW_S` (``serve_app.prestart.woken``) to ``request``, or None where there is
    none or it could not answer. Blocks (run it on a thread)."""
    from serve_app.prestart import woken

    for pid in woken(role, WINDOW_S):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect(address(role, pid))
                send(sock, request)
                header, tail = receive(sock)
        except (OSError, ValueError):  # gone, taken by a replica and stopped, or cut off
            continue
        if "error" not in header:
            return header, tail
    return None
