"""Readers and the scheduled job share the data: a kernel holding the published snapshot
open never stops a run, and a query never sees half a run (see ``snapshot.py``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from tencent_desk.analysis import poll_metrics
from tencent_desk.cli import main
from tencent_desk.models import poll_views, snapshot
from tencent_desk.notebook import open_desk
from tencent_desk.readers.snapshot import Reader

from .support import cli, harness
from .support.harness import DATASET

RUNS = 20


def cli_run(tmp_path: Path, seed: Path, db: Path, url: str) -> None:
    proc = cli.run(cli.run_argv(seed, db, url, tmp_path / "dlt", "--lock-wait", "0"),
                   tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


def consistent(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Every run a reader sees is whole: complete, with all its rows and no row of a run it
    does not see. Returns (runs, rows)."""
    runs = dict(con.execute(f"SELECT run_id, rows FROM {DATASET}.runs").fetchall())
    assert set(con.execute(f"SELECT DISTINCT status FROM {DATASET}.runs").fetchall()) <= {
        ("complete",)}
    counts = dict(con.execute(f"SELECT run_id, count(*) FROM {DATASET}.session_states "
                              "GROUP BY 1").fetchall())
    assert counts == {r: n for r, n in runs.items() if n}, "half a run is visible"
    return len(runs), sum(counts.values())


@pytest.mark.slow  # 21 runs of the CLI; one compaction and whole runs: the tests below too
def test_a_kernel_holding_the_snapshot_never_stops_a_run(tmp_path, sim, seed, monkeypatch):
    """An analyst's kernel (the notebook helper) and a plain read-only DuckDB connection
    stay open across 20 scheduled runs of the real CLI: every run exits 0, and a fresh
    query afterwards sees every run's rows."""
    _app, url = sim
    db = tmp_path / "desk.duckdb"
    cli_run(tmp_path, seed, db, url)
    catalog = snapshot.paths(db)[1]
    held = duckdb.connect(str(catalog), read_only=True)  # as a kernel keeps it all day
    monkeypatch.setenv("DESK_DUCKDB", str(db))
    desk = open_desk()
    first = held.execute(f"SELECT count(*) FROM {DATASET}.session_states").fetchone()
    try:
        for n in range(2, RUNS + 2):
            cli_run(tmp_path, seed, db, url)
            assert consistent(desk.con)[0] == n  # the kernel's views follow each run
        # the held connection still answers (the snapshot it opened, kept a retention)
        assert held.execute(f"SELECT count(*) FROM {DATASET}.session_states").fetchone() \
            == first
    finally:
        held.close()
    fresh = duckdb.connect(str(catalog), read_only=True)
    runs, rows = consistent(fresh)
    fresh.close()
    assert runs == RUNS + 1
    assert rows == harness.query(db, f"SELECT count(*) FROM {DATASET}.session_states")[0][0]
    assert rows == harness.query(db, f"SELECT sum(rows) FROM {DATASET}.runs")[0][0] > 0


def test_the_poll_views_reach_readers_of_new_and_older_snapshots(tmp_path, sim, seed):
    """The views the poll figures build on are made by the job and go out with the snapshot,
    in an order they can be made in (the catalog and a Reader both make them); a snapshot
    published before they existed gets them from its Reader, with the same figures."""
    _app, url = sim
    db = tmp_path / "desk.duckdb"
    for _ in range(3):
        cli_run(tmp_path, seed, db, url)
    manifest_path = snapshot.paths(db)[0] / snapshot.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    views = list(manifest["schemas"][DATASET]["views"])
    assert [v for v in views if v in poll_views.VIEWS] == list(poll_views.VIEWS)
    catalog = duckdb.connect(str(snapshot.paths(db)[1]), read_only=True)
    figures = (poll_metrics.queue_per_poll, poll_metrics.waits, poll_metrics.wait_outcomes,
               poll_metrics.agent_concurrency_per_poll)
    published = [f(catalog) for f in figures]
    catalog.close()
    assert len(published[0]) == 3 and published[2].outcome.notna().all()
    reader = Reader(db)
    for f, want in zip(figures, published, strict=True):
        pd.testing.assert_frame_equal(f(reader.connection()), want)
    reader.close()
    # the manifest of an older version: no poll views
    for view in poll_views.VIEWS:
        del manifest["schemas"][DATASET]["views"][view]
    manifest_path.write_text(json.dumps(manifest))
    older = Reader(db)
    for f, want in zip(figures, published, strict=True):
        pd.testing.assert_frame_equal(f(older.connection()), want)
    older.close()


@pytest.mark.slow  # CLI runs under a reader that queries all the while
def test_queries_while_runs_load_see_whole_runs_only(tmp_path, sim, seed):
    """A notebook querying in a loop while runs load: no query fails, and each sees the
    rows of complete runs only, never part of one."""
    _app, url = sim
    db = tmp_path / "desk.duckdb"
    cli_run(tmp_path, seed, db, url)
    done = threading.Event()
    failures: list[BaseException] = []

    def job() -> None:
        try:
            for _ in range(6):
                cli_run(tmp_path, seed, db, url)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=job)
    writer.start()
    reader = Reader(db)
    seen: list[int] = []
    catalog = snapshot.paths(db)[1]
    while not done.is_set():
        seen.append(consistent(reader.connection())[0])
        with duckdb.connect(str(catalog), read_only=True) as con:  # a fresh one each time
            consistent(con)
    writer.join()
    assert not failures, failures
    assert seen == sorted(seen) and len(set(seen)) > 1  # it saw runs arrive, in order
    assert consistent(reader.connection())[0] == 7


def job_tables(db: Path, states: str) -> duckdb.DuckDBPyConnection:
    """A database in the job's layout, by hand: loads, runs, and states with ``states``."""
    con = duckdb.connect(str(db))
    con.execute(f"CREATE SCHEMA {DATASET}")
    con.execute(f"CREATE TABLE {DATASET}._dlt_loads (load_id VARCHAR, status INT)")
    con.execute(f"CREATE TABLE {DATASET}.runs (run_id VARCHAR, status VARCHAR, rows INT, "
                "_dlt_load_id VARCHAR)")
    con.execute(f"CREATE TABLE {DATASET}.session_states (run_id VARCHAR, {states})")
    return con


def test_a_window_reads_only_its_days(tmp_path):
    """A reader for a window opens only the files of the days it needs (a year of history
    costs what its days cost)."""
    db = tmp_path / "desk.duckdb"
    con = job_tables(db, "state VARCHAR")
    for day in range(1, 31):
        run_id, load = f"202611{day:02d}T120000Z-0000", f"{day:04d}"
        con.execute(f"INSERT INTO {DATASET}._dlt_loads VALUES (?, 0)", [load])
        con.execute(f"INSERT INTO {DATASET}.runs VALUES (?, 'complete', 2, ?)", [run_id, load])
        con.execute(f"INSERT INTO {DATASET}.session_states VALUES (?, 'queuing'), "
                    "(?, 'agent')", [run_id, run_id])
        snapshot.publish(con, db, [DATASET])
    con.close()
    from datetime import date

    reader = Reader(db, since=date(2026, 11, 10), until=date(2026, 11, 12))
    runs = reader.connection().execute(f"SELECT run_id FROM {DATASET}.runs ORDER BY 1"
                                       ).fetchall()
    # the window's days and one either side
    assert [r[0][:8] for r in runs] == [f"202611{d:02d}" for d in range(9, 14)]
    manifest = json.loads((snapshot.paths(db)[0] / snapshot.MANIFEST).read_text())
    assert len(manifest["schemas"][DATASET]["tables"]["session_states"]["days"]) == 30


def test_a_day_is_compacted_and_replaced_files_are_kept_a_retention(tmp_path):
    """A day's files are compacted into one; the files a publish replaces stay a whole
    retention after it (a reader of the previous snapshot reads them), then the publish
    after that removes them, and never a file the current manifest lists."""
    db = tmp_path / "desk.duckdb"
    con = job_tables(db, "n INT")
    clock = [1_000_000.0]
    retain = 600.0
    folder = snapshot.paths(db)[0]

    def one_run(i: int) -> list[str]:
        run_id, load = f"20261201T{i:06d}Z-0000", f"{i:04d}"
        con.execute(f"INSERT INTO {DATASET}._dlt_loads VALUES (?, 0)", [load])
        con.execute(f"INSERT INTO {DATASET}.runs VALUES (?, 'complete', 1, ?)", [run_id, load])
        con.execute(f"INSERT INTO {DATASET}.session_states VALUES (?, ?)", [run_id, i])
        publisher = snapshot.Publisher(con, db, now=lambda: clock[0], retain_s=retain)
        publisher.dataset(DATASET)
        publisher.commit()
        return publisher.manifest["schemas"][DATASET]["tables"]["session_states"]["days"][
            "2026-12-01"]

    def on_disk() -> set[str]:
        return {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}

    def current() -> set[str]:
        manifest = json.loads((folder / snapshot.MANIFEST).read_text())
        return {n for t in manifest["schemas"][DATASET]["tables"].values()
                for fs in t["days"].values() for n in fs}

    for i in range(1, snapshot.COMPACT_AT):
        files = one_run(i)
    assert len(files) == snapshot.COMPACT_AT - 1
    before = current()
    # a connection held on the snapshot before the compaction, as a kernel keeps it
    held = duckdb.connect(str(snapshot.paths(db)[1]), read_only=True)
    files = one_run(snapshot.COMPACT_AT)
    assert len(files) == 1  # the day in one file again
    replaced = before - current()
    assert len(replaced) >= snapshot.COMPACT_AT - 1 and replaced <= on_disk()
    clock[0] += retain - 1  # a publish just short of a retention later removes none of them
    one_run(snapshot.COMPACT_AT + 1)
    assert replaced <= on_disk()
    assert held.execute(  # its views, over the replaced files, still read
        f"SELECT count(*), sum(n) FROM {DATASET}.session_states").fetchone() == (
        snapshot.COMPACT_AT - 1, sum(range(1, snapshot.COMPACT_AT)))
    held.close()
    retired = json.loads((folder / snapshot.MANIFEST).read_text())["retired"]
    assert {at for n, at in retired if n in replaced} == {clock[0] - retain + 1}
    clock[0] += 1  # a retention after they were replaced: the next publish removes them
    one_run(snapshot.COMPACT_AT + 2)
    manifest = json.loads((folder / snapshot.MANIFEST).read_text())
    assert not replaced & on_disk()
    assert current() <= on_disk()
    # what is left is the current snapshot and what the last two publishes replaced
    assert {at for _, at in manifest["retired"]} == {clock[0] - 1, clock[0]}
    assert on_disk() == current() | {n for n, _ in manifest["retired"]}
    assert Reader(db).connection().execute(
        f"SELECT count(*), sum(n) FROM {DATASET}.session_states").fetchone() == (
        snapshot.COMPACT_AT + 2, sum(range(1, snapshot.COMPACT_AT + 3)))
    con.close()


def test_the_retention_is_a_setting_checked_before_a_run(tmp_path, monkeypatch):
    """``snapshot_retention`` from dlt config (default a day); a value that is not a
    number of seconds above 0 stops the run at once with one line, exit 2."""
    from tencent_desk.core.settings import SNAPSHOT_RETENTION_S
    from tencent_desk.run.post_load import snapshot_retention

    monkeypatch.delenv("SOURCES__TENCENT_DESK__SNAPSHOT_RETENTION", raising=False)
    assert snapshot_retention() == SNAPSHOT_RETENTION_S == 86_400
    monkeypatch.setenv("SOURCES__TENCENT_DESK__SNAPSHOT_RETENTION", "3600")
    assert snapshot_retention() == 3600.0
    db = tmp_path / "desk.duckdb"
    for bad in ("0", "-5", "an hour"):
        proc = cli.run([cli.CLI, "run", "--database", str(db), "--api-url",
                        "http://127.0.0.1:9/", "--no-progress"], tmp_path,
                       SOURCES__TENCENT_DESK__SNAPSHOT_RETENTION=bad)
        assert cli.failed_in_one_line(proc, 2) == (
            "desk-sessions: error: snapshot_retention must be a number above 0 (seconds the "
            "snapshot's replaced files stay for readers of older snapshots; default 86400), "
            f"got {bad!r}: fix it under [sources.tencent_desk] or "
            "SOURCES__TENCENT_DESK__SNAPSHOT_RETENTION")
        assert not snapshot.paths(db)[0].exists()  # stopped before anything was loaded


def test_new_events_are_added_and_a_reloaded_one_rewrites_its_day(tmp_path):
    """Events are merged on request_id: a run of new ones adds a file to their day (a run
    writes what it brought, not its day again); one that replaces an event already
    published has the day written again, so a reader sees it once."""
    db = tmp_path / "desk.duckdb"
    con = job_tables(db, "state VARCHAR")
    con.execute(f"CREATE TABLE {DATASET}.session_events (request_id VARCHAR, event VARCHAR, "
                "event_time TIMESTAMPTZ, run_id VARCHAR)")
    folder = snapshot.paths(db)[0]

    def run(i: int, events: list[tuple[str, str]]) -> list[str]:
        run_id, load = f"20261201T{i:06d}Z-0000", f"{i:04d}"
        con.execute(f"INSERT INTO {DATASET}._dlt_loads VALUES (?, 0)", [load])
        con.execute(f"INSERT INTO {DATASET}.runs VALUES (?, 'complete', 0, ?)", [run_id, load])
        for request_id, event in events:  # as dlt merges: the key's row replaced
            con.execute(f"DELETE FROM {DATASET}.session_events WHERE request_id = ?",
                        [request_id])
            con.execute(f"INSERT INTO {DATASET}.session_events VALUES (?, ?, TIMESTAMPTZ "
                        f"'2026-12-01 10:00:0{i}+00', ?)", [request_id, event, run_id])
        snapshot.publish(con, db, [DATASET])
        manifest = json.loads((folder / snapshot.MANIFEST).read_text())
        return manifest["schemas"][DATASET]["tables"]["session_events"]["days"]["2026-12-01"]

    first = run(1, [("a", "SessionBegin"), ("b", "SessionBegin")])
    second = run(2, [("c", "SessionBegin")])
    assert second[:1] == first and len(second) == 2  # added, the day left as it was
    third = run(3, [("b", "SessionEnd"), ("d", "SessionBegin")])
    assert len(third) == 1 and not set(third) & set(second)  # the day written again
    got = Reader(db).connection().execute(
        f"SELECT request_id, event FROM {DATASET}.session_events ORDER BY 1").fetchall()
    assert got == [("a", "SessionBegin"), ("b", "SessionEnd"), ("c", "SessionBegin"),
                   ("d", "SessionBegin")]
    con.close()


def test_a_column_added_later_is_read_from_every_file(tmp_path):
    """Files with the same columns are read without matching names across files (binding a
    view then opens one file, not all); once a column is added, by name (old files give
    NULL for it)."""
    db = tmp_path / "desk.duckdb"
    con = job_tables(db, "state VARCHAR")
    folder, catalog = snapshot.paths(db)

    def run(day: int) -> str:
        run_id, load = f"202612{day:02d}T120000Z-0000", f"{day:04d}"
        con.execute(f"INSERT INTO {DATASET}._dlt_loads VALUES (?, 0)", [load])
        con.execute(f"INSERT INTO {DATASET}.runs BY NAME SELECT ? AS run_id, 'complete' AS "
                    "status, 1 AS rows, ? AS _dlt_load_id", [run_id, load])
        con.execute(f"INSERT INTO {DATASET}.session_states BY NAME SELECT ? AS run_id, "
                    "'agent' AS state", [run_id])
        snapshot.publish(con, db, [DATASET])
        with duckdb.connect(str(catalog), read_only=True) as cat:
            (sql,) = cat.execute("SELECT sql FROM duckdb_views() WHERE view_name = "
                                 "'session_states'").fetchone() or ("",)
        return sql

    assert "union_by_name = false" in run(1) and "union_by_name = false" in run(2)
    manifest = json.loads((folder / snapshot.MANIFEST).read_text())
    for table in manifest["schemas"][DATASET]["tables"].values():
        del table["mixed"]  # as a manifest written before it was noted
    (folder / snapshot.MANIFEST).write_text(json.dumps(manifest))
    assert "union_by_name = false" in run(3)  # the files' schemas read, found alike
    con.execute(f"ALTER TABLE {DATASET}.session_states ADD COLUMN sdkappid VARCHAR")
    con.execute(f"ALTER TABLE {DATASET}.runs ADD COLUMN sdkappid VARCHAR")
    assert "union_by_name = true" in run(4)
    manifest = json.loads((folder / snapshot.MANIFEST).read_text())
    assert manifest["schemas"][DATASET]["tables"]["session_states"]["mixed"] is True
    got = Reader(db).connection().execute(
        f"SELECT run_id, sdkappid FROM {DATASET}.session_states ORDER BY 1").fetchall()
    assert [r[1] for r in got] == [None] * 4
    con.close()


def test_a_publish_that_failed_is_done_by_the_next_run(tmp_path, sim, seed, monkeypatch):
    """A run whose publish dies after writing files (disk full): the run is loaded, readers
    keep the previous snapshot, the files it left are tidied like replaced ones, and the
    next run publishes both runs."""
    _app, url = sim
    db = tmp_path / "desk.duckdb"
    cli_run(tmp_path, seed, db, url)
    folder, catalog = snapshot.paths(db)
    before = (folder / snapshot.MANIFEST).read_bytes()

    def full(self: snapshot.Publisher) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot.Publisher, "commit", full)
    for name, value in cli.env().items():
        monkeypatch.setenv(name, value)
    code = main(cli.run_argv(seed, db, url, tmp_path / "dlt")[1:])
    monkeypatch.undo()
    assert code == 3
    assert (folder / snapshot.MANIFEST).read_bytes() == before
    orphans = {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")} - {
        n for t in json.loads(before)["schemas"][DATASET]["tables"].values()
        for fs in t["days"].values() for n in fs}
    assert orphans  # what the failed publish wrote
    assert harness.query(db, f"SELECT count(*) FROM {DATASET}.runs WHERE status = "
                         "'complete'")[0][0] == 2
    cli_run(tmp_path, seed, db, url)
    with duckdb.connect(str(catalog), read_only=True) as fresh:
        assert consistent(fresh)[0] == 3
    retired = {n for n, _ in json.loads((folder / snapshot.MANIFEST).read_text())["retired"]}
    assert orphans <= retired


def test_a_rebuild_keeps_the_files_of_readers_on_the_old_snapshot(tmp_path, sim, seed):
    """``publish --rebuild`` (the real CLI) starts the snapshot over from the database, and
    replaces every file of the old one as a publish does: they stay a retention. A plain
    read-only connection opened before it still answers every table and view, with the
    same rows; a fresh one reads the new snapshot, with the same rows too."""
    _app, url = sim
    db = tmp_path / "desk.duckdb"
    for _ in range(2):
        cli_run(tmp_path, seed, db, url)
    folder, catalog = snapshot.paths(db)
    held = duckdb.connect(str(catalog), read_only=True)
    try:
        names = [r[0] for r in held.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
            "ORDER BY 1", [DATASET]).fetchall()]
        assert {"runs", "session_states", "session_state_latest"} <= set(names)

        def every_table(con: duckdb.DuckDBPyConnection, remade: bool = False
                        ) -> dict[str, list[tuple]]:
            # a rebuild makes the timeline again from every run at once: each row then
            # carries the last run's id, not the one of the run that last changed it
            # (tests/test_timeline.py: run by run equals one upkeep but for run_id, day)
            return {n: sorted(map(repr, con.execute(
                f"SELECT * {'EXCLUDE (run_id, day)' if remade and n == 'session_timeline' else ''} "
                f"FROM {DATASET}.{n}").fetchall())) for n in names}

        before = every_table(held)
        before_remade = every_table(held, remade=True)
        assert before["runs"] and before["session_states"]
        old_files = {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
        proc = cli.run([cli.CLI, "publish", "--database", str(db), "--rebuild"],
                       tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert every_table(held) == before  # the old snapshot's files are still there
    finally:
        held.close()
    manifest = json.loads((folder / snapshot.MANIFEST).read_text())
    current = {n for t in manifest["schemas"][DATASET]["tables"].values()
               for fs in t["days"].values() for n in fs}
    assert current and not current & old_files  # written again, from the database
    assert old_files <= {n for n, _ in manifest["retired"]}  # removed a retention later
    with duckdb.connect(str(catalog), read_only=True) as fresh:
        assert every_table(fresh, remade=True) == before_remade
    reader = Reader(db)
    assert consistent(reader.connection()) == (2, len(before["session_states"]))
    reader.close()


@pytest.mark.parametrize("damage", [None, b"{not json", b'{"version": 99}'])
def test_a_rebuild_retires_the_old_files_even_from_a_damaged_manifest(tmp_path, damage):
    """A rebuild writes every table again and retires every file of the old snapshot at its
    time, readable or not its manifest, removing them a retention later like any replaced
    file; a Reader moves to the new snapshot (its generation changes)."""
    db = tmp_path / "desk.duckdb"
    con = job_tables(db, "n INT")
    clock, retain = [1_000_000.0], 600.0
    folder = snapshot.paths(db)[0]

    def publish(rebuild: bool) -> dict:
        publisher = snapshot.Publisher(con, db, now=lambda: clock[0], retain_s=retain,
                                       rebuild=rebuild)
        publisher.dataset(DATASET)
        publisher.commit()
        return json.loads((folder / snapshot.MANIFEST).read_text())

    for i in (1, 2):
        run_id, load = f"20261201T{i:06d}Z-0000", f"{i:04d}"
        con.execute(f"INSERT INTO {DATASET}._dlt_loads VALUES (?, 0)", [load])
        con.execute(f"INSERT INTO {DATASET}.runs VALUES (?, 'complete', 1, ?)", [run_id, load])
        con.execute(f"INSERT INTO {DATASET}.session_states VALUES (?, ?)", [run_id, i])
        publish(rebuild=False)
    clock[0] += 1
    reader = Reader(db)
    reader.connection()
    old = {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
    if damage is not None:
        (folder / snapshot.MANIFEST).write_bytes(damage)
    manifest = publish(rebuild=True)
    # the files the second publish replaced keep their time, unless the manifest was lost
    assert old == {n for n, _ in manifest["retired"]}
    assert len([n for n, at in manifest["retired"] if at == clock[0]]) == (
        len(old) - (1 if damage is None else 0))
    assert old <= {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
    assert reader.connection().execute(  # a new generation: the Reader's views moved
        f"SELECT count(*), sum(n) FROM {DATASET}.session_states").fetchone() == (2, 3)
    reader.close()
    clock[0] += retain
    manifest = publish(rebuild=False)
    assert not old & {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
    assert not old & {n for n, _ in manifest["retired"]}
    con.close()
