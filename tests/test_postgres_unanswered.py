"""PostgreSQL that does not answer, and PostgreSQL that asks no password.

- a black-holed host (a loopback socket that takes TCP connections and never answers) stops
  the run within the connect timeout, in one line, exit 3, before the API is asked;
- a URL without a password works against a server that trusts the user (libpq's own
  ways: trust, peer, certificates, ~/.pgpass), and credentials missing name what is missing.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest
from tencent_desk.job import destination
from tencent_desk.job.server_credentials import CONNECT_TIMEOUT_S

from .support import cli, postgres
from .support.targets import Target

CREDENTIALS = "DESTINATION__POSTGRES__CREDENTIALS"


def run_argv(tmp_path, seed, api: str) -> list[str]:
    return [cli.CLI, "run", "--destination", "postgres", "--state-dir", str(tmp_path),
            "--seed", str(seed), "--api-url", api, "--pipelines-dir", str(tmp_path / "dlt"),
            "--no-progress"]


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A loopback port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)  # never accept()ed: the handshake completes, the startup goes unread
        yield s.getsockname()[1]


def test_the_connect_timeout_defaults_to_ten_seconds_at_most(monkeypatch) -> None:
    monkeypatch.setenv(CREDENTIALS, "postgresql://u:p@127.0.0.1:5432/d")
    assert destination.credentials().connect_timeout == CONNECT_TIMEOUT_S <= 10
    monkeypatch.setenv(CREDENTIALS, "postgresql://u:p@127.0.0.1:5432/d?connect_timeout=3")
    assert destination.credentials().connect_timeout == 3


def test_a_black_holed_server_gives_up_in_one_line(tmp_path, sim, seed) -> None:
    app, api = sim
    calls = app.stats.codes.total()
    with black_hole() as port:
        url = f"postgresql://desk:hole-pw-5150@127.0.0.1:{port}/desk?connect_timeout=2"
        proc = cli.run(run_argv(tmp_path, seed, api), tmp_path, timeout=120,
                       **{CREDENTIALS: url})
    line = cli.failed_in_one_line(proc, 3, "cannot be reached", "timeout expired")
    assert "hole-pw-5150" not in proc.stderr + proc.stdout
    assert app.stats.codes.total() == calls, line  # nothing asked of the API


def test_a_url_without_password_works_with_trust_authentication(tmp_path, sim, seed) -> None:
    _app, api = sim
    with postgres.running(auth="trust") as server:
        server.create_database("trusted")
        url = f"postgresql://{server.user}@{server.host}:{server.port}/trusted"
        proc = cli.run(run_argv(tmp_path, seed, api), tmp_path, **{CREDENTIALS: url})
        assert proc.returncode == 0, proc.stderr
        assert f"PostgreSQL {server.user}@{server.host}:{server.port}/trusted" in proc.stdout
        target = Target("postgres", tmp_path, url)
        ((rows,),) = target.query("SELECT count(*) FROM tencent_desk.session_states")
        assert rows > 0


def test_credentials_missing_say_which_and_how_to_give_them(tmp_path, sim, seed) -> None:
    _app, api = sim
    proc = cli.run(run_argv(tmp_path, seed, api), tmp_path)  # none in the environment
    cli.failed_in_one_line(proc, 2, "missing PostgreSQL credentials", "database", "host",
                           CREDENTIALS, "~/.pgpass")


@pytest.mark.slow  # a server killed with -9 and restarted
def test_a_server_killed_between_spool_and_load_gets_the_events_once(tmp_path, sim) -> None:
    """Callbacks spooled; the server killed with -9: the run stops in one line and leaves
    the spool; restarted, the next run loads every event once, and a later one adds none."""
    import asyncio
    from collections import Counter

    from tencent_desk.intake.receiver import Receiver, ReceiverConfig
    from tencent_desk.simulator import serve_in_thread
    from tencent_desk.simulator.callbacks import Sender

    from .support.harness import SDKAPPID
    from .test_receiver import valid_callbacks

    _app, api = sim
    with postgres.running(private=True) as server:
        url = server.create_database("restarted")
        target = Target("postgres", tmp_path, url)
        callbacks = valid_callbacks(500, seed=12)
        receiver = Receiver(ReceiverConfig(SDKAPPID, target.spool, seal_after_s=0.05))
        with serve_in_thread(receiver) as base:
            sender = Sender(base + "/cb", SDKAPPID)
            asyncio.run(sender.send(callbacks))
        assert sender.statuses == Counter({200: len(callbacks)})
        argv = [cli.CLI, "run", "--destination", "postgres", "--state-dir", str(tmp_path),
                "--api-url", api, "--pipelines-dir", str(tmp_path / "dlt"), "--no-progress"]
        server.ctl("kill9")
        down = cli.run(argv, tmp_path, **{CREDENTIALS: url})
        cli.failed_in_one_line(down, 3, "cannot be reached")
        assert any(target.spool.iterdir()), "the spool is kept for the next run"
        server.ctl("start")
        for _ in range(2):
            up = cli.run(argv, tmp_path, **{CREDENTIALS: url})
            assert up.returncode == 0, up.stderr
            got = Counter(r for (r,) in target.query(
                "SELECT request_id FROM tencent_desk.session_events"))
            assert got == Counter({c.request_id: 1 for c in callbacks})


@pytest.mark.slow  # a server killed with -9 and restarted
def test_a_server_killed_mid_load_then_restarted_loses_and_doubles_nothing(
        tmp_path, sim, seed) -> None:
    """The server is killed with -9 once the load has committed the session_states job and
    before dlt records it: the run stops in one line; after the restart the next run loads
    what was left, the committed job's rows are not doubled, every run is complete."""
    import threading
    import time
    from pathlib import Path

    _app, api = sim
    crashpoint = str(Path(__file__).resolve().parent / "support" / "crashpoint")
    with postgres.running(private=True, durable=True) as server:  # commits survive -9
        url = server.create_database("killed_mid_load")
        target = Target("postgres", tmp_path, url)
        argv = run_argv(tmp_path, seed, api)
        first = cli.run(argv, tmp_path, **{CREDENTIALS: url})
        assert first.returncode == 0, first.stderr
        flag = tmp_path / "crash-here"

        def kill_when_asked() -> None:
            deadline = time.monotonic() + 240
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            server.ctl("kill9")
            flag.unlink(missing_ok=True)

        killer = threading.Thread(target=kill_when_asked)
        killer.start()
        mid = cli.run(argv, tmp_path, PYTHONPATH=crashpoint,
                      DESK_TEST_CRASH="after:session_states",
                      DESK_TEST_CRASH_SIGNAL=str(flag), **{CREDENTIALS: url})
        killer.join()
        cli.failed_in_one_line(mid, 3, "PostgreSQL")
        server.ctl("start")
        again = cli.run(argv, tmp_path, **{CREDENTIALS: url})
        assert again.returncode == 0, again.stderr
        runs = target.query("SELECT run_id, status, rows FROM tencent_desk.runs")
        assert len(runs) == 3 and {r[1] for r in runs} == {"complete"}, runs
        stored = dict(target.query("SELECT run_id, count(*) FROM tencent_desk.session_states "
                                   "GROUP BY 1"))
        assert {r[0]: r[2] for r in runs} == stored
