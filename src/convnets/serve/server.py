"""Binding the address and running the app with uvicorn.

The socket is bound here, before uvicorn starts, for two reasons: an address in use or
a host that cannot be bound becomes one :class:`~convnets.errors.ConfigError` line
(uvicorn would log it and exit 1), and ``port=0`` (any free port) can be told to the
caller, which tests and scripts need to find the server.
"""
from __future__ import annotations

import errno
import socket
from typing import Callable

from ..errors import ConfigError
from .settings import check_port

__all__ = ["bind", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port; see ``getsockname``)."""
    if problem := check_port(port):
        raise ConfigError.of("port", problem)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as err:
        raise ConfigError.of("host", f"{host!r} cannot be resolved ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a restarted server can take its port back at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError.of("port", f"{port}: the address {host}:{port} is in use") from None
        if err.errno == errno.EACCES:
            raise ConfigError.of("port", f"{port}: permission denied (ports below 1024 need "
                                 "privileges)") from None
        raise ConfigError.of("host", f"{host}:{port} cannot be bound ({err.strerror})") from None
    sock.set_inheritable(True)
    return sock


def serve(app, sock: socket.socket, *, log_level: str = "info",
          announce: Callable[[str], None] | None = None) -> None:
    """Run ``app`` on the bound ``sock`` until interrupted; ``announce`` gets the address."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if announce is not None:
        announce(f"http://{shown}:{port}/")
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
