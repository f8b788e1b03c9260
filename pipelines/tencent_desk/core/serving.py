"""Serving an ASGI app under uvicorn: the receiver (``desk-sessions listen``) in the
foreground, the simulator in the foreground or from a thread (tests, demos)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _check_host(host: str, allow_remote: bool) -> None:
    """A test server accepts any well-signed call: keep it off the network unless asked."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to bind {host!r}: not a loopback address "
                         "(pass allow_remote=True to serve the network)")


def _config(app: ASGIApp, host: str, port: int, **extra: object) -> uvicorn.Config:
    # A slow-fault call still pending at shutdown is cut after 1 s instead of slow_s.
    return uvicorn.Config(app, host=host, port=port, http="httptools", loop="auto", ws="none",
                          log_level="warning", access_log=False, timeout_graceful_shutdown=1,
                          **extra)  # type: ignore[arg-type]


@contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *,
                    allow_remote: bool = False, startup_timeout_s: float = 10.0) -> Iterator[str]:
    """Serve ``app`` from a daemon thread; yields the base URL once it accepts connections."""
    _check_host(host, allow_remote)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    # Bind here, not in uvicorn, so that port 0 yields a port we can name.
    sock = socket.create_server((host, port), family=family)
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    # log_config=None: leave the host process's logging alone.
    server = uvicorn.Server(_config(app, host, bound_port, log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="desk-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.005)
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout_s)
        sock.close()


def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, *,
          allow_remote: bool = False) -> None:
    """Serve ``app`` in the foreground until interrupted."""
    _check_host(host, allow_remote)
    uvicorn.Server(_config(app, host, port)).run()
