"""Destination trouble: the DuckDB file held by another writer (before and during a run),
a read-only folder, a vanished folder. Each time: one clear line on stderr, no traceback,
a non-zero exit, and what was loaded before comes through untouched.

Tests run as root, and root ignores ``chmod``: a read-only folder is made with a
read-only bind mount in a private mount namespace of the child (``unshare -m``; skipped
where the kernel refuses), a path under ``/proc``, and a file where the folder should be.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from tencent_desk.cli import main
from tencent_desk.run.runner import RunOptions, run

from .support import cli
from .support.harness import ADMIN, DATASET, SDKAPPID, SECRET_KEY

HOLD = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])          # a writer: DuckDB's lock is on the file
con.execute("CREATE TABLE IF NOT EXISTS held_by_another_writer (x INT)")
print("ready", flush=True)
sys.stdin.read()                           # until the test closes our stdin
con.close()
"""


class Holder:
    """Another process with the database open for writing."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate(timeout=30)


def load_once(tmp_path: Path, seed: Path, url: str, db: Path) -> dict:
    """A good run in this process: the data that must come through the trouble."""
    return run(RunOptions(
        seed=str(seed), database=db, pipelines_dir=str(tmp_path / "dlt-first"),
        overrides={"api_url": url, "sdkappid": SDKAPPID, "identifier": ADMIN,
                   "secret_key": SECRET_KEY, "max_qps": 5000, "max_concurrency": 8},
        progress=False))


def snapshot(db: Path) -> tuple:
    """Everything a reader sees of what was loaded."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        states = con.execute(f"SELECT * FROM {DATASET}.session_states ORDER BY ALL").fetchall()
        runs = con.execute(f"SELECT run_id, status, rows FROM {DATASET}.runs ORDER BY ALL"
                           ).fetchall()
    finally:
        con.close()
    return states, runs


def in_process(argv: list[str], capfd, monkeypatch) -> subprocess.CompletedProcess:
    """The real CLI's ``main`` in this process (no start-up cost), stderr captured at the
    file descriptor."""
    for name, value in cli.env().items():
        if name.startswith("SOURCES__"):
            monkeypatch.setenv(name, value)
    capfd.readouterr()
    code = main(argv[1:])
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def one_clear_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = cli.error_lines(proc.stderr)
    for word in words:
        assert word in line, line
    assert len(line) < 400
    return line


def test_a_database_held_by_another_writer(tmp_path, sim, seed, capfd, monkeypatch):
    app, url = sim
    db = tmp_path / "desk.duckdb"
    load_once(tmp_path, seed, url, db)
    before = snapshot(db)
    holder = Holder(db)
    try:
        calls = app.stats.codes.total()
        proc = in_process(cli.run_argv(seed, db, url, tmp_path / "dlt", "--lock-wait", "1"),
                          capfd, monkeypatch)
        line = one_clear_line(proc, str(db), f"process {holder.proc.pid}", "held open",
                              "desk.read.duckdb")
        assert proc.returncode == 3
        assert app.stats.codes.total() == calls  # it stopped before asking anything
    finally:
        holder.release()
    assert snapshot(db) == before, line


def test_a_database_taken_by_another_writer_mid_run(tmp_path, sim, seed, capfd,
                                                    monkeypatch):
    """The other writer opens the database while the job is fetching: the load fails in
    one line; the rows wait in dlt's package and the next run loads them."""
    app, url = sim
    db = tmp_path / "desk.duckdb"
    load_once(tmp_path, seed, url, db)
    before = snapshot(db)
    holders: list[Holder] = []
    at = app._n_calls + 5  # the fifth call of the run
    app.on_call = lambda n: holders.append(Holder(db)) if n == at else None
    try:
        proc = in_process(cli.run_argv(seed, db, url, tmp_path / "dlt"), capfd, monkeypatch)
        one_clear_line(proc, str(db), "held open")
        assert proc.returncode == 3 and len(holders) == 1
    finally:
        for h in holders:
            h.release()
    app.on_call = None
    assert snapshot(db) == before
    again = in_process(cli.run_argv(seed, db, url, tmp_path / "dlt"), capfd, monkeypatch)
    assert again.returncode == 0, again.stderr
    states, runs = snapshot(db)
    # the earlier run, the one that could not load (loaded now), and this one
    assert len(runs) == 3 and {r[1] for r in runs} == {"complete"}
    assert set(before[0]) <= set(states)


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.parametrize("where", ["read-only-mount", "proc", "file-for-folder"])
def test_a_folder_that_cannot_be_written(tmp_path, sim, seed, where, capfd, monkeypatch):
    app, url = sim
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "desk.duckdb"
    prefix: list[str] = []
    if where == "read-only-mount":
        if not _can_unshare():
            pytest.skip("no private mount namespace here (unshare -m refused)")
        load_once(tmp_path, seed, url, db)
        # the child sees the folder read-only; the test (and the database) keep it writable
        prefix = ["unshare", "-m", "sh", "-c",
                  f'mount --bind "{folder}" "{folder}" && '
                  f'mount -o remount,ro,bind "{folder}" && exec "$0" "$@"']
    elif where == "proc":
        db = Path("/proc/desk-sessions-test/desk.duckdb")
    else:
        (tmp_path / "a-file").write_text("not a folder")
        db = tmp_path / "a-file" / "desk.duckdb"
    before = snapshot(db) if where == "read-only-mount" else None
    calls = app.stats.codes.total()
    argv = cli.run_argv(seed, db, url, tmp_path / "dlt")
    if prefix:  # a child in its own mount namespace
        proc = cli.run(argv, tmp_path, prefix=prefix)
    else:
        proc = in_process(argv, capfd, monkeypatch)
    one_clear_line(proc, str(db.parent))
    assert proc.returncode in (2, 3)
    assert app.stats.codes.total() == calls  # it stopped before asking anything
    if before is not None:
        assert snapshot(db) == before


def test_a_folder_that_vanished_before_the_run(tmp_path, sim, seed, capfd, monkeypatch):
    _app, url = sim
    db = tmp_path / "gone" / "desk.duckdb"
    proc = in_process(cli.run_argv(seed, db, url, tmp_path / "dlt"), capfd, monkeypatch)
    one_clear_line(proc, str(db.parent))
    assert not db.parent.exists()  # nothing was created in its place


def test_a_folder_that_vanishes_mid_run(tmp_path, sim, seed, capfd, monkeypatch):
    """The database's folder is moved away while the job is fetching: the load fails in
    one line, the moved database holds exactly what it held, and once the folder is back
    the next run loads what was left pending."""
    app, url = sim
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "desk.duckdb"
    load_once(tmp_path, seed, url, db)
    before = snapshot(db)
    moved = tmp_path / "data-moved-away"
    at = app._n_calls + 5  # the fifth call of the run
    app.on_call = lambda n: folder.rename(moved) if n == at else None
    proc = in_process(cli.run_argv(seed, db, url, tmp_path / "dlt"), capfd, monkeypatch)
    app.on_call = None
    one_clear_line(proc, str(db))
    assert proc.returncode == 3
    assert not folder.exists() and snapshot(moved / "desk.duckdb") == before

    moved.rename(folder)
    again = in_process(cli.run_argv(seed, db, url, tmp_path / "dlt"), capfd, monkeypatch)
    assert again.returncode == 0, again.stderr
    states, runs = snapshot(db)
    assert len(runs) == 3 and {r[1] for r in runs} == {"complete"}
    assert set(before[0]) <= set(states)
