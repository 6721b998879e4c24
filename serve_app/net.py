"""Host and port helpers: ``host:port`` with IPv6 in brackets (Fly's private network is IPv6),
name resolution, a free port."""

from __future__ import annotations

import socket


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(address: str) -> tuple[str, int]:
    """The inverse of join_host_port; raises ValueError without a port."""
    host, sep, port = address.rpartition(":")
    unbracketed_ipv6 = ":" in host and not host.startswith("[")
    if not sep or not port.isdigit() or not host or unbracketed_ipv6:
        raise ValueError(f"{address!r} is not host:port (IPv6 in brackets: [fdaa::1]:6380)")
    return host.strip("[]"), int(port)


def resolve_address(address: str) -> str:
    """A head address with its host name resolved, IPv6 first (Fly's internal DNS names such
    as ``app.process.<app>.internal`` have only AAAA records; Ray needs an IP)."""
    host, port = split_host_port(address)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve the Ray head {host!r}: {exc}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET6)
    return join_host_port(infos[0][4][0], port)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
