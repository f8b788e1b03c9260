"""Run the simulator under uvicorn: in a background thread (tests, demos) or in the foreground."""

from __future__ import annotations

import csv
import ipaddress
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from tencent_desk.core.clock import Clock, VirtualClock
from tencent_desk.simulator.app import (
    DEFAULT_START_OFFSET_S,
    ASGIApp,
    SimulatorApp,
    SimulatorConfig,
)
from tencent_desk.simulator.model import Population

SEED_COLUMNS = ("session_id", "client_user_id", "customer_service_id")


def build_app(config: SimulatorConfig, population: Population, *, speed: float = 1.0,
              start: float | None = None, auth_clock: Clock | None = None) -> SimulatorApp:
    """An app whose model clock starts at ``start`` (default 09:00 on the simulated day) and
    runs ``speed`` times faster than real time."""
    if start is None:
        start = population.config.day_start + DEFAULT_START_OFFSET_S
    return SimulatorApp(population, config, model_clock=VirtualClock(start, speed=speed),
                        auth_clock=auth_clock)


def write_seed_csv(population: Population, path: str | Path, *,
                   pair_share: float = 0.25) -> int:
    """A seed file: every session id with its keys, then for ``pair_share`` of the
    (user, account) pairs a row with the pair only. Returns the number of rows written."""
    keys = population.session_keys()
    pairs = sorted({(k.client_user_id, k.customer_service_id) for k in keys})
    rng = random.Random(population.config.seed)
    chosen = rng.sample(pairs, round(len(pairs) * pair_share))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(SEED_COLUMNS)
        out.writerows(keys)
        out.writerows(("", user, cs) for user, cs in chosen)
    return len(keys) + len(chosen)


def _check_host(host: str, allow_remote: bool) -> None:
    """The simulator accepts any well-signed call: keep it off the network unless asked."""
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
                              name="desk-simulator", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
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
