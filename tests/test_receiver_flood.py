"""A flood of connections on the real ``desk-sessions listen`` (loopback only, bounded in
count and time): 2,000 connections that send nothing and 50 that trickle a header a byte a
second, while callbacks keep coming. Every callback is acknowledged, and the connections
that never finish their headers are closed by the receiver after ``header_timeout``."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import threading
import time
from collections import Counter

import pytest
from tencent_desk.simulator.callbacks import Sender

from .soak_day import proc_figures
from .support.harness import SDKAPPID
from .test_receiver import Listener, loaded, run_job, valid_callbacks

IDLE, TRICKLING, CALLBACKS = 2000, 50, 3000
HEADER_TIMEOUT_S = 4


def _raise_fd_limit(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"the file-descriptor limit ({hard}) is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the child inherits it


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_idle_and_trickling_connections_do_not_stop_callbacks(tmp_path, sim) -> None:
    _raise_fd_limit(2 * (IDLE + TRICKLING) + 1024)
    listener = Listener(tmp_path, SOURCES__TENCENT_DESK__HEADER_TIMEOUT=str(HEADER_TIMEOUT_S))
    port = int(listener.url.split(":")[2].split("/")[0])
    idle: list[socket.socket] = []
    trickling: list[socket.socket] = []
    stop = threading.Event()
    try:
        for _ in range(IDLE):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for _ in range(TRICKLING):
            trickling.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        header = b"POST /desk/callback HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100

        def trickle() -> None:  # a byte a second on each, never the end of the headers
            for i in range(len(header)):
                if stop.wait(1.0):
                    return
                for s in trickling:
                    with contextlib.suppress(OSError):
                        s.send(header[i:i + 1])

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        before = proc_figures(listener.proc.pid)
        callbacks = valid_callbacks(CALLBACKS, seed=21)
        sender = Sender(listener.url, SDKAPPID, concurrency=16, attempts=1)
        started = time.monotonic()
        asyncio.run(sender.send(callbacks))
        took = time.monotonic() - started
        during = proc_figures(listener.proc.pid)
        assert sender.statuses == Counter({200: CALLBACKS}), sender.statuses
        # the receiver closes what never finished its headers (bounded wait, no timing
        # asserted: the deadline is the receiver's)
        deadline = time.monotonic() + 10 * HEADER_TIMEOUT_S
        while time.monotonic() < deadline and not all(
                _closed_by_peer(s) for s in idle[:100] + trickling):
            time.sleep(0.5)
        assert all(_closed_by_peer(s) for s in idle[:100] + trickling)
        print(f"\nflood: {CALLBACKS} callbacks in {took:.1f} s beside {IDLE} idle and "
              f"{TRICKLING} trickling connections; receiver RSS {before[0] / 1024:.0f} -> "
              f"{during[0] / 1024:.0f} MB, fds {before[1]} -> {during[1]}")
    finally:
        stop.set()
        for s in idle + trickling:
            s.close()
        listener.stop()
    time.sleep(0.5)
    run_job(listener.db, sim[1])
    assert loaded(listener.db) == Counter({c.request_id: 1 for c in callbacks})
