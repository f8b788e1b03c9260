"""Crashes: ``desk-sessions run`` killed with SIGKILL while fetching, and dying at chosen
points of dlt's load step, against ``desk-sessions simulate`` running as its own process.

After each crash: the database opens, no run looks complete when it was not (a ``runs``
row saying ``complete`` has all its rows), no key is doubled within a run; then the next
run completes, loads what dlt had pending, and the ``runs`` table tells what happened.

The load-step crash points come from ``tests/support/crashpoint/sitecustomize.py`` (a mock
allowed for a crash point): the child dies with ``os._exit`` as abruptly as ``kill -9``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from .support import cli
from .support.cli import CLI
from .support.harness import DATASET
from .support.targets import Target

CRASHPOINT = str(Path(__file__).resolve().parent / "support" / "crashpoint")
KILLED = (137, -signal.SIGKILL)

KEY = """CASE WHEN key_type = 'session' THEN session_id END,
         CASE WHEN key_type = 'pair' THEN client_user_id END,
         CASE WHEN key_type = 'pair' THEN customer_service_id END"""


class DeskSimulator:
    """``desk-sessions simulate`` in its own process, answering with some latency."""

    def __init__(self, folder: Path, latency_ms: int = 10) -> None:
        self.seed = folder / "seed.csv"
        self.log = (folder / "simulator.log").open("w")
        self.proc, self.port = cli.start_server(
            [CLI, "simulate", "--latency-ms", str(latency_ms), "--sessions", "300",
             "--seed", "7", "--seed-out", str(self.seed), "--log-level", "WARNING"],
            log=self.log)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        cli.stop_server(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> DeskSimulator:
    sim = DeskSimulator(tmp_path_factory.mktemp("desk-sim"))
    yield sim
    sim.stop()


class Job:
    """One folder: the destination (a DuckDB file there, or a PostgreSQL database), dlt's
    pipelines folder, and runs of the real CLI."""

    def __init__(self, target: Target, desk: DeskSimulator) -> None:
        self.target, self.folder, self.desk = target, target.folder, desk
        self.pipelines = self.folder / "dlt"
        self.note = self.folder / "crash-note"

    def argv(self, max_qps: int) -> list[str]:
        return [CLI, "run", "--seed", str(self.desk.seed), *self.target.argv(),
                "--api-url", self.desk.url, "--pipelines-dir", str(self.pipelines),
                "--max-qps", str(max_qps), "--max-concurrency", "8", "--no-progress"]

    def start(self, max_qps: int = 2000, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(max_qps), cwd=self.folder, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            env=cli.env(PYTHONPATH=CRASHPOINT, DESK_TEST_CRASH_NOTE=str(self.note),
                        **self.target.env(), **env))

    def run(self, max_qps: int = 2000, **env: str) -> subprocess.CompletedProcess:
        proc = self.start(max_qps, **env)
        out, err = proc.communicate(timeout=240)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def run_here(self, capfd, monkeypatch) -> subprocess.CompletedProcess:
        """The same command through the CLI's ``main`` in this process (no start-up)."""
        from tencent_desk.cli import main

        for name, value in cli.env().items():
            if name.startswith(("SOURCES__", "RUNTIME__")):
                monkeypatch.setenv(name, value)
        argv = self.argv(2000)
        capfd.readouterr()
        code = main(argv[1:])
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    # -- what the database shows ----------------------------------------------------
    def query(self, sql: str) -> list[tuple]:
        return self.target.query(sql)

    def tables(self) -> set[str]:
        return self.target.tables(DATASET)

    def runs(self) -> dict[str, tuple]:
        if "runs" not in self.tables():
            return {}
        return {r[0]: r[1:] for r in self.query(
            f"SELECT run_id, status, rows, keys FROM {DATASET}.runs")}

    def rows_per_run(self) -> dict[str, int]:
        if "session_states" not in self.tables():
            return {}
        return dict(self.query(
            f"SELECT run_id, count(*) FROM {DATASET}.session_states GROUP BY 1"))

    def doubled(self) -> list[tuple]:
        if "session_states" not in self.tables():
            return []
        return self.query(f"""SELECT run_id, key_type, {KEY}, count(*) FROM
            {DATASET}.session_states GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1 LIMIT 5""")

    def pending_packages(self) -> list[str]:
        found = []
        for stage in ("normalize/extracted", "load/normalized", "load/new"):
            for pipe in self.pipelines.glob("*"):
                folder = pipe / stage
                if folder.is_dir():
                    found += [p.name for p in folder.iterdir() if p.is_dir()]
        return found

    def dishonesty(self) -> list[str]:
        """What the database shows that is not so: a run saying complete without all its
        rows, a key twice in a run. Opens a DuckDB file for writing first."""
        if self.target.duckdb and self.target.database.exists():
            duckdb.connect(str(self.target.database)).close()
        found = []
        rows = self.rows_per_run()
        for run_id, (status, n_rows, _keys) in self.runs().items():
            if status == "complete" and rows.get(run_id, 0) != n_rows:
                found.append(f"run {run_id} says complete with {n_rows} rows, "
                             f"{rows.get(run_id, 0)} are loaded")
        found += [f"key loaded {d[-1]} times in run {d[0]}: {d[1:-1]}" for d in self.doubled()]
        return found


def established_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds an established TCP connection to loopback ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                remote_port = int(parts[2].rsplit(":", 1)[1], 16)
                if remote_port == port and parts[3] == "01":  # 01: ESTABLISHED
                    inodes.add(parts[9])
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def kill_while_fetching(job: Job, desk: DeskSimulator) -> subprocess.Popen:
    proc = job.start(max_qps=50)  # some 360 keys at 50/s: seven seconds of fetching
    deadline = time.monotonic() + 120
    polls = 0
    while polls < 5:  # fetching, seen on five looks 0.1 s apart: well inside the fetch
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it was killed: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "the run never started fetching"
        if established_to(proc.pid, desk.port):
            polls += 1
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode in KILLED
    return proc


@pytest.mark.slow  # the chain test below does this too, after a crash while loading
@pytest.mark.parametrize("earlier_run", [False, True])
def test_killed_while_fetching_then_the_next_run_completes(target, desk, earlier_run):
    job = Job(target, desk)
    done = []
    if earlier_run:  # data already loaded must come through untouched
        first = job.run()
        assert first.returncode == 0, first.stderr
        done = list(job.runs())
    before = job.rows_per_run()

    kill_while_fetching(job, desk)
    assert job.dishonesty() == []
    runs = job.runs()
    assert list(runs) == done and job.rows_per_run() == before  # nothing else landed

    nxt = job.run()
    assert nxt.returncode == 0, nxt.stderr
    assert "Traceback" not in nxt.stderr
    assert job.dishonesty() == []
    runs = job.runs()
    statuses = sorted(r[0] for r in runs.values())
    # the killed run is on record, and not as complete
    assert statuses == ["complete"] * (1 + len(done)) + ["interrupted"], runs
    assert {d: job.rows_per_run()[d] for d in done} == before
    assert job.pending_packages() == []


@pytest.mark.parametrize("hold, crash", [
    # the rows commit (and dlt records it), then the process dies before the runs row loads
    pytest.param("runs", "recorded:session_states", id="rows-first",
                 marks=pytest.mark.slow),
    pytest.param("", "before:session_states", marks=pytest.mark.slow, id="at-first-job"),
    pytest.param("session_states", "recorded:runs.sql", id="runs-row-first",
                 marks=pytest.mark.slow),
    # dlt loads at least once: the rows committed, unrecorded, are loaded again (and the
    # copies dropped)
    pytest.param("runs", "after:session_states", id="committed-not-recorded",
                 marks=pytest.mark.slow),
])
def test_a_crash_while_loading_then_the_next_run_completes(target, desk, hold, crash):
    job = Job(target, desk)
    crashed = job.run(DESK_TEST_CRASH=crash, DESK_TEST_HOLD=hold)
    assert crashed.returncode in KILLED, crashed.stderr
    assert job.note.read_text().split() == [crash]  # it died where it was meant to
    problems = job.dishonesty()
    assert job.pending_packages(), "a crash while loading leaves dlt a package to finish"

    nxt = job.run()
    assert nxt.returncode == 0, nxt.stderr
    assert "Traceback" not in nxt.stderr
    assert job.pending_packages() == []
    problems += job.dishonesty()
    # the crashed run's package was loaded by the next run: both runs complete, with all
    # their rows
    runs = job.runs()
    assert sorted(r[0] for r in runs.values()) == ["complete", "complete"], runs
    assert problems == []


def test_a_crash_while_loading_a_kill_while_fetching_then_a_clean_run(target, desk, capfd,
                                                                     monkeypatch):
    """The default suite's crash case, three runs of the real CLI in a row:

    1. dies while loading, its rows committed, its ``runs`` row not yet;
    2. loads what run 1 left (so run 1 is complete now), then is killed while fetching;
    3. completes, and records run 2 as interrupted (in this process, to save a start-up).
    """
    job = Job(target, desk)
    crash = "recorded:session_states"
    first = job.run(DESK_TEST_CRASH=crash, DESK_TEST_HOLD="runs")
    assert first.returncode in KILLED, first.stderr
    assert job.note.read_text().split() == [crash]
    assert job.dishonesty() == []
    assert job.runs() == {}  # rows are there, but no run claims to be complete
    (crashed_run,) = job.rows_per_run()
    assert job.pending_packages()

    kill_while_fetching(job, desk)
    assert job.dishonesty() == []
    runs = job.runs()
    assert list(runs) == [crashed_run] and runs[crashed_run][0] == "complete"
    assert job.pending_packages() == []  # run 2 loaded run 1's package before fetching

    last = job.run_here(capfd, monkeypatch)
    assert last.returncode == 0, last.stderr
    assert "Traceback" not in last.stderr
    assert job.dishonesty() == []
    runs = job.runs()
    assert sorted(r[0] for r in runs.values()) == ["complete", "complete", "interrupted"]
    assert job.pending_packages() == []
