"""Serving an ASGI app under uvicorn: the receiver (``desk-sessions listen``) in the
foreground, the simulator in the foreground or from a thread (tests, demos)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from tencent_desk.core import settings
from tencent_desk.core.errors import JobError
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


def check_bind(host: str, port: int, *, allow_remote: bool = False) -> None:
    """Before a command serves: ``host:port`` can be bound now, else one line (exit 3; uvicorn
    would exit on its own with a bare log line), and a host off loopback only if allowed
    (exit 2)."""
    try:
        _check_host(host, allow_remote)
    except ValueError:
        raise JobError(f"refusing to bind {host!r}: not a loopback address (--allow-remote "
                       "to serve the network)") from None
    try:
        socket.create_server((host, port), reuse_port=False).close()
    except OSError as exc:  # its strerror says where again: the plain reason only
        reason = os.strerror(exc.errno) if (exc.errno or 0) > 0 else exc.strerror or str(exc)
        raise JobError(f"cannot listen on {host}:{port}: {reason}: choose another --port "
                       "or stop what uses it", exit_code=3) from None


@dataclass(frozen=True)
class Limits:
    """What one server lets senders hold (defaults and meaning: core/settings.py)."""

    connections: int = settings.RECEIVER_MAX_CONNECTIONS
    keep_alive_s: float = settings.RECEIVER_KEEP_ALIVE_S
    header_timeout_s: float = settings.RECEIVER_HEADER_TIMEOUT_S


class _HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers: uvicorn has
    none, so a connection that sends nothing, or trickles a header a byte a second, would
    hold its socket for ever (it only times out idle kept-alive connections)."""

    header_timeout_s = settings.RECEIVER_HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _config(app: ASGIApp, host: str, port: int, limits: Limits | None = None,
            **extra: object) -> uvicorn.Config:
    # A slow-fault call still pending at shutdown is cut after 1 s instead of slow_s.
    http: Any = "httptools"
    if limits is not None:
        http = type("HeaderDeadline", (_HeaderDeadline,),
                    {"header_timeout_s": limits.header_timeout_s})
        extra.update(limit_concurrency=limits.connections,
                     timeout_keep_alive=limits.keep_alive_s)
    return uvicorn.Config(app, host=host, port=port, http=http, loop="auto", ws="none",
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


class _Server(uvicorn.Server):
    """uvicorn's server, for which SIGTERM and SIGINT are the normal end of serving: once it
    has shut down cleanly (requests answered, the app's shutdown run: the receiver seals
    its spool) the command returns, exit code 0. uvicorn itself raises the signal again
    after its clean shutdown, so that the process dies of it (143 for SIGTERM, a
    KeyboardInterrupt for SIGINT): a failure to systemd (``systemctl stop``) and to
    supervisors."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()  # shut down cleanly: nothing to raise again


def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, *,
          allow_remote: bool = False, limits: Limits | None = None) -> None:
    """Serve ``app`` in the foreground until SIGTERM or SIGINT (Ctrl-C), then return after a
    clean shutdown (``limits``: what senders may hold; None: uvicorn's defaults, for the
    simulator)."""
    _check_host(host, allow_remote)
    _Server(_config(app, host, port, limits)).run()
