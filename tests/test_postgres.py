"""The job on a real PostgreSQL server (``tests/support/postgres.py``), beyond the end-to-end
tests parametrized over both destinations: the timeline made there equals the one made in
a DuckDB file from the same day; a server down, a wrong password and no permission each
stop a run in one line with its exit code, before the API is asked anything; the password
is never written anywhere; ``publish`` and the example pipeline on a server.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from tencent_desk.analysis import event_metrics, record_metrics, timeline_metrics
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.cli import main
from tencent_desk.job import destination
from tencent_desk.readers import warehouse
from tencent_desk.readers.snapshot import Reader

from .support import cli, morning, postgres
from .support.harness import closed_port
from .support.targets import Target

CREDENTIALS = "DESTINATION__POSTGRES__CREDENTIALS"


def _timeline(target: Target, columns: list[str]) -> list[tuple]:
    got = target.query(f"SELECT {', '.join(columns)} FROM tencent_desk.session_timeline "
                       "ORDER BY session_id")
    return [tuple(v.timestamp() if isinstance(v, datetime) else v for v in r) for r in got]


def test_the_timeline_on_postgres_equals_the_one_in_duckdb(same_morning):
    duck, pg = same_morning.duck, same_morning.pg
    for runs in same_morning.loaded:
        assert all(r["status"] == "complete" for r in runs)
        assert runs[-1]["records"] > 0 and runs[-1]["events_loaded"] > 0
    columns = [r[0] for r in duck.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "'tencent_desk' AND table_name = 'session_timeline' AND column_name <> 'run_id' "
        "ORDER BY ordinal_position")]
    want = _timeline(duck, columns)
    sources = {v for r in want for c, v in zip(columns, r, strict=True)
               if c.endswith("_source")}
    assert len(want) > 300 and sources >= {"event", "record", "poll"}
    assert _timeline(pg, columns) == want
    # kept up to date run by run: the last run rewrote only what it touched
    assert pg.query("SELECT count(DISTINCT run_id) FROM tencent_desk.session_timeline") == [
        (len(morning.HOURS),)]
    # the notebooks' figures read from the server equal those read from the DuckDB snapshot
    remote = warehouse.Reader(warehouse.destination("postgres", pg.url), "tencent_desk")
    local = Reader(duck.database).connection()
    for figure in (metrics.complete_runs, metrics.waits, metrics.wait_outcomes,
                   metrics.demand_per_interval, event_metrics.events_per_interval,
                   timeline_metrics.sessions, record_metrics.recorded_sessions):
        a, b = (figure(con).drop(columns=["run_id"], errors="ignore")
                for con in (remote.connection(), local))
        assert len(a) > 0 or figure is metrics.wait_outcomes  # three polls: none abandoned
        pd.testing.assert_frame_equal(a.sort_values(list(a.columns)).reset_index(drop=True),
                                      b.sort_values(list(b.columns)).reset_index(drop=True))
    # and the job indexed what windows are read by
    assert {i for (i,) in pg.query("SELECT indexname FROM pg_indexes")} >= {
        "runs_run_id_idx", "session_states_run_id_idx", "session_events_event_time_idx",
        "session_records_started_at_idx", "session_timeline_day_idx"}


# -- one-line errors ---------------------------------------------------------------------
def _in_process(argv: list[str], capfd, monkeypatch, **env: str) -> subprocess.CompletedProcess:
    for name, value in {**cli.env(), **env}.items():
        if name.startswith(("SOURCES__", "DESTINATION__")):
            monkeypatch.setenv(name, value)
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def _run_argv(tmp_path: Path, seed: Path, url: str) -> list[str]:
    return ["run", "--destination", "postgres", "--state-dir", str(tmp_path), "--seed",
            str(seed), "--api-url", url, "--pipelines-dir", str(tmp_path / "dlt"),
            "--no-progress"]


def _role(server, url: str, role: str, password: str, create: bool) -> str:
    """A role that may connect to the test's database, and create schemas in it or not;
    its URL."""
    name = url.rsplit("/", 1)[1]
    con = psycopg2.connect(url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"DROP OWNED BY {role}" if _exists(cur, role) else "SELECT 1")
        cur.execute(f"DROP ROLE IF EXISTS {role}")
        cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        cur.execute(f'REVOKE CREATE ON DATABASE "{name}" FROM PUBLIC')
        if create:
            cur.execute(f'GRANT CREATE ON DATABASE "{name}" TO {role}')
    con.close()
    return f"postgresql://{role}:{password}@{server.host}:{server.port}/{name}"


def _exists(cur, role: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    return cur.fetchone() is not None


@pytest.mark.parametrize("case, code, words", [
    ("server down", 3, ("cannot be reached", "Connection refused", "host and port")),
    ("wrong password", 2, ("refused the credentials", "password authentication failed")),
    ("no permission", 3, ("no permission", "permission denied", "grant")),
])
def test_server_trouble_is_one_line_with_its_exit_code(tmp_path, sim, seed, postgres_server,
                                                       postgres_url, capfd, monkeypatch,
                                                       case, code, words):
    app, api = sim
    url = {"server down": f"postgresql://desk:any-pw-77@127.0.0.1:{closed_port()}/x",
           "wrong password": postgres_url.replace(postgres_server.password, "wrong-pw-31"),
           "no permission": None}[case] or _role(postgres_server, postgres_url,
                                                  "desk_reader", "reader-pw-4242", False)
    calls = app.stats.codes.total()
    proc = _in_process(_run_argv(tmp_path, seed, api), capfd, monkeypatch,
                       **{CREDENTIALS: url})
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = cli.error_lines(proc.stderr)
    for word in words:
        assert word in line, line
    assert len(line) < 400
    for secret in ("any-pw-77", "wrong-pw-31", "reader-pw-4242", postgres_server.password):
        assert secret not in proc.stderr + proc.stdout
    assert app.stats.codes.total() == calls  # stopped before asking the API anything


def test_one_run_per_dataset_on_a_server_whatever_its_state_dir(tmp_path, sim, seed,
                                                                postgres_url, capfd,
                                                                monkeypatch):
    app, api = sim
    other = psycopg2.connect(postgres_url)  # another run, from another --state-dir
    try:
        with other.cursor() as cur:
            cur.execute(destination.LOCK_SQL, [destination.lock_key("tencent_desk")])
            assert cur.fetchone() == (True,)
        calls = app.stats.codes.total()
        proc = _in_process(_run_argv(tmp_path, seed, api), capfd, monkeypatch,
                           **{CREDENTIALS: postgres_url})
        assert proc.returncode == 3, proc.stderr
        (line,) = cli.error_lines(proc.stderr)
        assert "another desk-sessions run is writing dataset tencent_desk" in line
        assert app.stats.codes.total() == calls
    finally:
        other.close()  # the lock goes with the connection, as with a killed run
    proc = _in_process(_run_argv(tmp_path, seed, api), capfd, monkeypatch,
                       **{CREDENTIALS: postgres_url})
    assert proc.returncode == 0, proc.stderr


def test_a_server_going_down_mid_run_then_the_next_run_loads_what_was_left(
        tmp_path, sim, seed, capfd, monkeypatch):
    """The server stops (immediate shutdown) while the job polls: the load fails in one
    line; the rows wait in dlt's package, and once the server is back the next run loads
    them: every run complete, with all its rows, none twice."""
    app, api = sim
    with postgres.running(private=True) as server:
        env = {CREDENTIALS: server.create_database("going_down")}
        target = Target("postgres", tmp_path, env[CREDENTIALS])
        argv = _run_argv(tmp_path, seed, api)
        assert _in_process(argv, capfd, monkeypatch, **env).returncode == 0
        at = app._n_calls + 5  # the fifth call of the run
        app.on_call = lambda n: server.ctl("stop") if n == at else None  # type: ignore
        proc = _in_process(argv, capfd, monkeypatch, **env)
        app.on_call = None
        assert proc.returncode == 3, proc.stderr
        (line,) = cli.error_lines(proc.stderr)
        assert "the PostgreSQL server cannot be reached" in line and "Traceback" not in \
            proc.stderr
        server.ctl("start")
        again = _in_process(argv, capfd, monkeypatch, **env)
        assert again.returncode == 0, again.stderr
        runs = target.query("SELECT run_id, status, rows FROM tencent_desk.runs")
        assert len(runs) == 3 and {r[1] for r in runs} == {"complete"}
        loaded = dict(target.query("SELECT run_id, count(*) FROM tencent_desk.session_states "
                                   "GROUP BY 1"))
        assert {r[0]: r[2] for r in runs} == loaded


def test_what_a_server_needs_is_said_in_one_line(tmp_path, sim, seed, capfd, monkeypatch):
    _app, api = sim
    argv = _run_argv(tmp_path, seed, api)
    no_dir = [a for a in argv if a not in ("--state-dir", str(tmp_path))]
    proc = _in_process(no_dir, capfd, monkeypatch)
    assert proc.returncode == 2 and "--state-dir is required" in proc.stderr
    monkeypatch.delenv(CREDENTIALS, raising=False)
    proc = _in_process(argv, capfd, monkeypatch)
    assert proc.returncode == 2, proc.stderr
    (line,) = cli.error_lines(proc.stderr)
    assert "missing PostgreSQL credentials" in line and CREDENTIALS in line


# -- secrets -----------------------------------------------------------------------------
def test_a_debug_run_writes_the_password_nowhere(tmp_path, sim, seed, postgres_server,
                                                 postgres_url):
    _app, api = sim
    password = "pg-Pa55-7c1e9d0b3a"
    url = _role(postgres_server, postgres_url, "desk_writer", password, True)
    target = Target("postgres", tmp_path, url)
    proc = cli.run([cli.CLI, *_run_argv(tmp_path, seed, api), "--records", "--log-level",
                    "DEBUG"], tmp_path, RUNTIME__LOG_LEVEL="DEBUG", HOME=str(tmp_path),
                   **target.env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[DEBUG]" in proc.stderr and "PostgreSQL desk_writer@" in proc.stdout
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != seed]
    assert any("state" in p.name for p in files), "dlt's local state was not written"
    stored = target.text()
    assert b"session_states" in stored and b"_dlt_pipeline_state" in stored
    everything = b"".join([proc.stdout.encode(), proc.stderr.encode(), stored,
                           *(p.read_bytes() for p in files)])
    assert password.encode() not in everything


# -- publish on a server -----------------------------------------------------------------
def test_publish_on_a_server_keeps_the_timeline_and_says_there_is_no_snapshot(
        tmp_path, sim, seed, postgres_url, capfd, monkeypatch):
    _app, api = sim
    env = {CREDENTIALS: postgres_url}
    assert _in_process(_run_argv(tmp_path, seed, api), capfd, monkeypatch, **env
                       ).returncode == 0
    target = Target("postgres", tmp_path, postgres_url)
    before = target.query("SELECT count(*) FROM tencent_desk.session_timeline")
    assert before[0][0] > 0
    target.query("DELETE FROM tencent_desk._timeline_state")  # as if never kept
    target.query("DELETE FROM tencent_desk.session_timeline")
    proc = _in_process(["publish", "--destination", "postgres", "--state-dir",
                        str(tmp_path), "--pipelines-dir", str(tmp_path / "dlt")],
                       capfd, monkeypatch, **env)
    assert proc.returncode == 0, proc.stderr
    assert "no snapshot" in proc.stdout and f"{before[0][0]} sessions" in proc.stdout
    assert target.query("SELECT count(*) FROM tencent_desk.session_timeline") == before
    assert not list(tmp_path.glob("*.read*"))  # nothing published for DuckDB readers


def test_the_example_pipeline_loads_into_postgres(tmp_path, sim, seed, postgres_url):
    _app, api = sim
    target = Target("postgres", tmp_path, postgres_url)
    script = cli.ROOT / "pipelines" / "tencent_desk_pipeline.py"
    proc = cli.run([sys.executable, str(script), str(seed), "postgres"], tmp_path,
                   HOME=str(tmp_path), SOURCES__TENCENT_DESK__API_URL=api,
                   SOURCES__TENCENT_DESK__MAX_QPS="2000", **target.env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    ((status, rows),) = target.query("SELECT status, rows FROM tencent_desk.runs")
    assert status == "complete" and rows > 0
    assert target.query("SELECT count(*) FROM tencent_desk.session_state_latest") == [(rows,)]
    assert target.query("SELECT count(*) FROM tencent_desk.session_timeline")[0][0] > 0
