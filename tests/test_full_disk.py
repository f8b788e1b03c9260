"""A full disk, for real: a small tmpfs mounted by the test (as root; skipped where the
kernel refuses), filled while the job or the receiver writes to it.

- the receiver answers 503 for what it cannot fsync (so Desk retries), acknowledges
  nothing it did not store, and everything acknowledged is loaded once after space is back;
- the job stops with one line naming the path and the room needed, exit 3, its rows kept in
  dlt's package; the next run with space loads them, nothing doubled;
- a publish that cannot write leaves the previous snapshot readable as it was.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from tencent_desk.models import snapshot
from tencent_desk.readers.snapshot import Reader
from tencent_desk.simulator.callbacks import Sender

from .support import cli, harness, tmpfs
from .support.harness import SDKAPPID
from .support.targets import Target
from .test_receiver import Listener, loaded, run_job, spooled, valid_callbacks

# A real filesystem filled up, three times: the slow lane's (make test-slow, CI).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def busy_pop():
    return harness.population(seed=3, sessions=12_000)


def counts(db: Path) -> dict[str, tuple[int, int]]:
    """Per run: (rows in runs, rows in session_states), from the job's file."""
    runs = dict(harness.query(db, "SELECT run_id, rows FROM tencent_desk.runs"))
    states = dict(harness.query(db, "SELECT run_id, count(*) FROM tencent_desk.session_states "
                                    "GROUP BY run_id"))
    return {r: (n, states.get(r, 0)) for r, n in runs.items()}


def test_job_on_a_full_disk_keeps_its_rows_and_loads_them_once_space_is_back(
        tmp_path, busy_pop) -> None:
    with tmpfs.mounted(tmp_path / "small", "64m") as disk, \
            harness.serve(busy_pop) as (app, url):
        t = busy_pop.config.day_start + harness.MODEL_HOUR * 3600
        seed = harness.write_seed(tmp_path / "seed.csv", harness.pick_keys(
            busy_pop, t, live=1500, other=3000, pairs=300).rows)
        db, dlt_dir = disk.path / "desk.duckdb", tmp_path / "dlt"
        first = cli.run(cli.run_argv(seed, db, url, dlt_dir), tmp_path)
        assert first.returncode == 0, first.stderr
        before = counts(db)
        # the disk fills while the second run polls: it loads into a full disk
        at = app._n_calls + 5
        app.on_call = lambda n: disk.fill(leave=700_000) if n == at else None
        full = cli.run(cli.run_argv(seed, db, url, dlt_dir, "--repoll-ended"), tmp_path)
        app.on_call = None
        line = cli.failed_in_one_line(full, 3, "no space left on device", str(disk.path),
                                      "needed", "wait in dlt's package")
        assert "retried in load" in full.stderr  # dlt's retries came, each as one line
        stopped = counts(db)  # its runs row may be in: the states are not, not complete
        assert {r: stopped[r] for r in before} == before
        assert all(stopped[r][1] == 0 for r in set(stopped) - set(before))
        assert harness.query(db, "SELECT count(*) FROM tencent_desk.runs WHERE status = "
                                 "'complete'") == [(len(before),)]
        package = list((dlt_dir).glob("*/load/normalized/*/*_jobs/session_states.*"))
        assert package, "the run's rows stay in dlt's package"
        # room as the line says (beyond what is free), and a next run of one key
        need = float(re.search(r"about ([\d.]+) MB needed", line).group(1)) * 1e6
        disk.free()
        disk.fill(leave=int(need))
        one = harness.write_seed(tmp_path / "one.csv", harness.pick_keys(
            busy_pop, t, live=1, other=0, pairs=0).rows)
        again = cli.run(cli.run_argv(one, db, url, dlt_dir), tmp_path)
        assert again.returncode == 0, again.stderr
        after = counts(db)
        assert set(after) > set(before) and len(after) == len(before) + 2
        for run_id, (rows, stored) in after.items():
            assert rows == stored, f"run {run_id}: {stored} rows stored for {rows}"
        statuses = harness.query(db, "SELECT DISTINCT status FROM tencent_desk.runs")
        assert statuses == [("complete",)]


def test_receiver_answers_503_on_a_full_disk_and_loses_nothing_it_acknowledged(
        tmp_path, sim) -> None:
    with tmpfs.mounted(tmp_path / "small", "1m") as disk:
        target = Target("duckdb", disk.path)
        listener = Listener(tmp_path, target)  # its log outside the small disk
        callbacks = valid_callbacks(4000, seed=9)
        try:
            once = Sender(listener.url, SDKAPPID, concurrency=16, attempts=1)
            asyncio.run(once.send(callbacks))
            assert set(once.statuses) == {200, 503}, once.statuses
            acked = set(once.acknowledged)
            stored = Counter(r["request_id"] for r in spooled(target.spool))
            assert acked <= set(stored), "acknowledged but not stored"
            disk.grow("64m")  # space is back: Desk's retries are taken
            rest = [c for c in callbacks if c.request_id not in acked]
            retry = Sender(listener.url, SDKAPPID, concurrency=16)
            asyncio.run(retry.send(rest))
            assert retry.statuses == Counter({200: len(rest)})
        finally:
            listener.stop()
        run_job(target, sim[1])
        assert loaded(target) == Counter({c.request_id: 1 for c in callbacks})


def test_a_publish_that_cannot_write_keeps_the_previous_snapshot(tmp_path, busy_pop) -> None:
    with tmpfs.mounted(tmp_path / "small", "64m") as disk, \
            harness.serve(busy_pop) as (_app, url):
        t = busy_pop.config.day_start + harness.MODEL_HOUR * 3600
        seed = harness.write_seed(tmp_path / "seed.csv", harness.pick_keys(
            busy_pop, t, live=300, other=600, pairs=60).rows)
        db = disk.path / "desk.duckdb"
        first = cli.run(cli.run_argv(seed, db, url, tmp_path / "dlt"), tmp_path)
        assert first.returncode == 0, first.stderr

        def published() -> tuple:
            reader = Reader(db)
            try:
                con = reader.connection()
                states = con.execute("SELECT count(*), count(DISTINCT run_id) FROM "
                                     "tencent_desk.session_states").fetchone()
                runs = con.execute("SELECT run_id, status FROM tencent_desk.runs").fetchall()
                return states, sorted(runs)
            finally:
                reader.close()

        before = published()
        catalog = snapshot.paths(db)[1]
        codes = []
        for leave in (0, 64_000, 160_000, 400_000):  # full at each step of the publish
            disk.free()
            disk.fill(leave=leave)
            proc = cli.run([cli.CLI, "publish", "--database", str(db)], tmp_path)
            assert proc.returncode in (0, 3), proc.stderr
            codes.append(proc.returncode)
            if proc.returncode == 3:
                cli.failed_in_one_line(proc, 3, "no space left on device")
            assert published() == before, f"leaving {leave} bytes"
            assert not list(disk.path.glob(".*.tmp*")), list(disk.path.iterdir())
        assert 3 in codes, "the disk never stopped a publish"
        disk.free()
        with duckdb.connect(str(catalog), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal"
                               ).fetchone()[0] > 0
