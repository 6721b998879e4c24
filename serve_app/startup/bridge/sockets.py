"""The public port's socket group: the bridge's socket, steering new connections between
it and HAProxy's (a classic BPF program on the group), and who listens where."""

from __future__ import annotations

import ctypes
import os
import socket
import struct

SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant


def steer(sock: socket.socket, index: int) -> None:
    """Send every new connection of ``sock``'s reuseport group to the group's socket number
    ``index`` (a one-instruction classic BPF program: ``ret #index``); an index the group
    does not have falls back to the kernel's hash."""
    program = ctypes.create_string_buffer(struct.pack("HBBI", BPF_RET_K, 0, 0, index))
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def listening(host: str, port: int) -> bool:
    """Whether something already accepts connections at host:port."""
    try:
        with socket.create_connection((connect_host(host), port), timeout=0.5):
            return True
    except OSError:
        return False


def connect_host(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", "", "*"):
        return "127.0.0.1"
    if host in ("::", "[::]", "0::0"):
        return "::1"
    return host.strip("[]")


def haproxy_missing(sock: socket.socket) -> str | None:
    """None when an HAProxy listens on ``sock``'s address and port, so in its reuseport group
    (steering to the group's second socket is safe only then); else why not."""
    import psutil

    host, port = sock.getsockname()[:2]
    others = []
    for conn in psutil.net_connections(kind="tcp"):
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.family == sock.family
            and tuple(conn.laddr)[:2] == (host, port)
            and conn.pid not in (None, os.getpid())
        ):
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                continue
            if name == "haproxy":
                return None
            others.append(f"{name} (pid {conn.pid})")
    beside = f"; only {', '.join(others)}" if others else ""
    return f"no HAProxy listens on {host}:{port} beside the bridge{beside}"


def bind(host: str, port: int) -> socket.socket:
    """The public port's first socket, steered to itself. Check :func:`listening` first:
    a socket already in the group would be the one steered to."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:  # "0::0": IPv4 and IPv6, as HAProxy's listener (cli/run.py)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host.strip("[]"), port))
    steer(sock, 0)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class PortInUse(RuntimeError):
    """Something else listens on the public port already."""


def bind_host(host: str, proxy: str) -> str:
    """The listen address as Serve's proxy needs it: "::" becomes "0::0", which Serve passes
    through as IPv4 and IPv6 (its "*" is IPv4 only; Fly's proxy uses IPv4, 6PN IPv6)."""
    if proxy == "haproxy" and host in ("::", "[::]"):
        return "0::0"
    return host
