"""The interval tables: kept run by run as a rebuild would make them, a late change redoing
exactly its intervals, and every figure over a window equal to the sessions' own."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from tencent_desk.analysis import interval_metrics as im
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.job import record_rows
from tencent_desk.models import intervals, timeline

from . import test_timeline
from .support.run_by_run import load_run_by_run
from .test_timeline import DS, END_H, START_H, _with_sources

polled = test_timeline.polled  # the polled morning, shared with the timeline's tests

KEYS = {intervals.QUEUE: (*intervals.GROUP, "interval_start"),
        intervals.AGENT: ("sdkappid", "agent_id", "interval_start"),
        intervals.SKETCH: (*intervals.GROUP, "interval_start", "span", "bucket")}


def table(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    keys = list(KEYS[name])
    df = con.execute(f"SELECT * EXCLUDE (run_id) FROM {DS}.{name}").df()
    return df.sort_values(keys, na_position="first").reset_index(drop=True)


def rebuilt(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """The interval tables made from scratch from the timeline as it is (rows of nothing,
    left by keys no session counts in any more, dropped)."""
    for name in (*intervals.TABLES, intervals.LEDGER, intervals.STATE_TABLE):
        con.execute(f"DROP TABLE IF EXISTS {DS}.{name}")
    intervals.upkeep(con, DS)
    return {name: nonzero(table(con, name), name) for name in intervals.TABLES}


def nonzero(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows that count something: a key whose sessions all moved away keeps a row of
    zeros (so a reader's sums are right either way)."""
    if name == intervals.SKETCH:
        return df
    counts = [c for c in df.columns if c not in KEYS[name] and not c.endswith("_max_s")
              and c != "logged_in_s"]
    return df[(df[counts] != 0).any(axis=1)].reset_index(drop=True)


@pytest.mark.slow  # a day of runs, an upkeep after each (the late-record test is the quick one)
def test_upkeep_run_by_run_equals_a_rebuild(polled, tmp_path):
    """Polls alone, upkeep after every run: each run narrows earlier sessions' bounds and
    moves their times, so intervals are redone again and again; the result equals the
    tables made once from the final timeline, and a run with nothing new writes nothing."""
    _pop, db = polled
    inc = tmp_path / "inc.duckdb"
    with duckdb.connect(str(inc)) as con:
        load_run_by_run(con, db, DS, lambda: (timeline.upkeep(con, DS),
                                              intervals.upkeep(con, DS)))
        assert intervals.upkeep(con, DS) == 0
        step = {name: nonzero(table(con, name), name) for name in intervals.TABLES}
        once = rebuilt(con)
    assert len(step[intervals.QUEUE]) >= 8 and len(step[intervals.AGENT]) >= 8
    for name in intervals.TABLES:
        pd.testing.assert_frame_equal(step[name], once[name], check_dtype=False)


def _late_records(path: Path, pop, run_id: str, share: float) -> list[str]:
    """Records of a ``share`` of the ended sessions loaded by a later run ``run_id`` (as
    `desk-sessions records` does after a lost callback); returns their session ids."""
    end = pop.config.day_start + END_H * 3600
    keys = pop.session_keys()
    ended = [i for i in range(len(pop)) if pop.ended_at(keys[i].session_id) <= end]
    chosen = random.Random(7).sample(ended, max(1, int(len(ended) * share)))
    with duckdb.connect(str(path)) as con:
        con.register("rec", record_rows.to_table([pop.record(i) for i in chosen], run_id))
        con.execute(f"CREATE TABLE {DS}.session_records AS SELECT * FROM rec")
        at = datetime.fromtimestamp(end, UTC)
        con.execute(f"CREATE TABLE {DS}.record_runs (run_id VARCHAR, status VARCHAR, "
                    "started_at TIMESTAMPTZ, _dlt_load_id VARCHAR)")
        con.execute(f"INSERT INTO {DS}.record_runs VALUES (?, 'complete', ?, ?)",
                    [run_id, at, run_id])
    return [keys[i].session_id for i in chosen]


def test_late_record_redoes_exactly_its_intervals(polled, tmp_path):
    """Callbacks with 5% lost, then a later records run for some ended sessions: their
    timeline rows change (exact ends and groups where polls and events only bounded them),
    and the upkeep rewrites the intervals their old and new rows count in, no others, to
    what a rebuild makes."""
    pop, db = polled
    path = _with_sources(db, tmp_path / "desk.duckdb", pop, lost=0.05, records=False)
    with duckdb.connect(str(path)) as con:
        intervals.upkeep(con, DS)
        before = {n: table(con, n) for n in intervals.TABLES}
        old = con.execute(f"SELECT * FROM {DS}.{intervals.LEDGER}").df()
    ids = _late_records(path, pop, "run99999", 0.2)
    with duckdb.connect(str(path)) as con:
        assert timeline.upkeep(con, DS) > 0
        new = con.execute(f"SELECT {', '.join(intervals.LEDGER_COLUMNS)} FROM "
                          f"{DS}.{timeline.TABLE} WHERE session_id IN "
                          f"(SELECT unnest(?))", [ids]).df()
        assert intervals.upkeep(con, DS) > 0
        after = {n: table(con, n) for n in intervals.TABLES}
        con.register("old_rows", old[old.session_id.isin(ids)])
        con.register("new_rows", new)
        expected_q = set(con.execute(f"{intervals.queue_keys_sql('old_rows')} UNION "
                                     f"{intervals.queue_keys_sql('new_rows')}").fetchall())
        expected_a = set(con.execute(f"{intervals.agent_keys_sql('old_rows')} UNION "
                                     f"{intervals.agent_keys_sql('new_rows')}").fetchall())
        own = {n: KEYS[intervals.AGENT if n == intervals.AGENT else intervals.QUEUE]
               for n in intervals.TABLES}
        stamped = {n: set(con.execute(
            f"SELECT DISTINCT {', '.join(own[n])} FROM {DS}.{n} WHERE run_id = 'run99999'"
        ).fetchall()) for n in intervals.TABLES}
        once = rebuilt(con)
    # the groups of sessions with records: the late record moved them to their group's rows
    assert (new.agent_group_name.notna()).sum() > 10
    assert stamped[intervals.QUEUE] == expected_q
    assert stamped[intervals.AGENT] == expected_a
    assert stamped[intervals.SKETCH] <= expected_q
    for name in (intervals.QUEUE, intervals.AGENT):
        keys = list(KEYS[name])
        merged = before[name].merge(after[name], on=keys, how="outer", indicator=True,
                                    suffixes=("", "_after"))
        redone = expected_q if name == intervals.QUEUE else expected_a
        plain = merged[keys].astype(object).where(merged[keys].notna(), None)
        plain["interval_start"] = [t.to_pydatetime() for t in plain["interval_start"]]
        untouched = merged[[tuple(r) not in redone for r in plain.itertuples(index=False)]]
        assert (untouched["_merge"] == "both").all()
        cols = [c for c in before[name].columns if c not in keys]
        pd.testing.assert_frame_equal(
            untouched[cols].reset_index(drop=True),
            untouched[[f"{c}_after" for c in cols]].set_axis(cols, axis=1).reset_index(
                drop=True), check_dtype=False)
        pd.testing.assert_frame_equal(nonzero(after[name], name), once[name],
                                      check_dtype=False)
    pd.testing.assert_frame_equal(after[intervals.SKETCH], once[intervals.SKETCH],
                                  check_dtype=False)


def test_a_ledger_from_before_its_reach_is_given_it(polled, tmp_path):
    """A database whose ledger was written before each session's reach was kept (the
    columns dropped here): the next upkeep gives every row its reach, and late records then
    redo their intervals as a rebuild makes them (a ledger row without its reach would
    leave its session out of the intervals redone)."""
    pop, db = polled
    path = _with_sources(db, tmp_path / "desk.duckdb", pop, lost=0.05, records=False)
    with duckdb.connect(str(path)) as con:
        intervals.upkeep(con, DS)
        for column in intervals.REACH:
            con.execute(f"ALTER TABLE {DS}.{intervals.LEDGER} DROP COLUMN {column}")
    _late_records(path, pop, "run99999", 0.2)
    with duckdb.connect(str(path)) as con:
        assert timeline.upkeep(con, DS) > 0
        assert intervals.upkeep(con, DS) > 0
        (rows, unreached) = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE first_at IS NULL OR last_at IS NULL "
            f"OR first_at > began_at OR last_at < began_at) FROM {DS}.{intervals.LEDGER}"
        ).fetchone()
        after = {n: nonzero(table(con, n), n) for n in intervals.TABLES}
        once = rebuilt(con)
    assert rows > 100 and unreached == 0
    for name in intervals.TABLES:
        pd.testing.assert_frame_equal(after[name], once[name], check_dtype=False)


def _windows(first: datetime, last: datetime, n: int, seed: int) -> list[tuple[datetime,
                                                                                datetime]]:
    rng = random.Random(seed)
    steps = int((last - first).total_seconds() // intervals.WIDTH_S)
    out = [(first, last)]
    for _ in range(n):
        a, b = sorted(rng.sample(range(steps + 1), 2))
        out.append((first + timedelta(seconds=a * intervals.WIDTH_S),
                    first + timedelta(seconds=b * intervals.WIDTH_S)))
    return out


def assert_figures_equal(con: duckdb.DuckDBPyConnection, windows: list[tuple[datetime,
                                                                             datetime]],
                         exact: duckdb.DuckDBPyConnection | None = None) -> int:
    """Every figure of ``interval_metrics.figures`` equals ``timeline_metrics.event_figures``
    of the same window, overall and per agent group; percentiles within the sketch's error.
    ``exact``: where the timeline is read (``con`` by default); returns the figures checked."""
    checked = 0
    for since, until in windows:
        df = tm.sessions_touching(exact or con, since, until)
        for by in (None, "agent_group_name"):
            want = tm.event_figures(df, since, until, 60.0, by)
            got = im.figures(con, since, until, 60.0, by)
            if want.empty:
                assert got.empty or (got[["began", "queued", "answered", "exits"]] == 0
                                     ).all(axis=None)
                continue
            got = got.loc[got.index.isin(want.index) | (got[["began", "queued", "answered",
                                                            "exits", "handles"]] > 0
                                                       ).any(axis=1)]
            assert sorted(got.index) == sorted(want.index), (since, until, by)
            for column in want.columns:
                w, g = want[column].astype(float), got.loc[want.index, column].astype(float)
                if column.endswith(("_median_s", "_p90_s")):
                    err = ((g - w).abs() <= intervals.SKETCH_ALPHA * w.abs() + 1e-9) | (
                        w.isna() & g.isna())
                else:
                    err = np.isclose(g, w, rtol=1e-9, atol=1e-9, equal_nan=True) | (
                        np.isinf(w) & np.isinf(g))
                assert err.all(), (since, until, by, column, w[~err], g[~err])
                checked += int(w.notna().sum())
    return checked


def test_figures_equal_the_sessions(polled, tmp_path):
    """Callbacks (2% lost), records and polls: on random windows of whole intervals,
    overall and per agent group, every count, sum, mean, maximum, service level (with its
    bounds) and abandonment from the interval tables equals the figure computed from the
    sessions under the same rule; medians and p90s within 1%."""
    pop, db = polled
    path = _with_sources(db, tmp_path / "desk.duckdb", pop, lost=0.02, records=True)
    day = datetime.fromtimestamp(pop.config.day_start, UTC)
    with duckdb.connect(str(path)) as con:
        intervals.upkeep(con, DS)
        checked = assert_figures_equal(con, _windows(
            day + timedelta(hours=START_H - 1), day + timedelta(hours=END_H + 1), 12, seed=1))
    assert checked > 500


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_sketch_quantile_within_alpha(q):
    """The sketch's quantile of any sample lies within SKETCH_ALPHA of the exact one at
    the same rank, including zeros and spans of hours."""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.exponential(40, 5000), np.zeros(30), rng.uniform(0, 9000, 50)])
    con = duckdb.connect()
    con.register("v", pd.DataFrame({"x": values}))
    buckets = con.execute(f"SELECT {intervals.bucket_sql('x')} AS b, count(*) AS n FROM v "
                          "GROUP BY 1 ORDER BY 1").df()
    cum = buckets.n.cumsum().to_numpy()
    rank = int(np.floor(q * (len(values) - 1)))
    got = intervals.bucket_value(int(buckets.b.to_numpy()[np.searchsorted(cum, rank, "right")]))
    want = float(np.sort(values)[rank])
    assert abs(got - want) <= intervals.SKETCH_ALPHA * want


def test_snapshot_carries_the_interval_tables(polled, tmp_path):
    """Published for readers: a reader's window sees the same interval rows as the job."""
    from tencent_desk.models import snapshot
    from tencent_desk.readers.snapshot import Reader

    pop, db = polled
    path = _with_sources(db, tmp_path / "desk.duckdb", pop, lost=0.0, records=False)
    with duckdb.connect(str(path)) as con:
        intervals.upkeep(con, DS)
        con.execute(f"CREATE TABLE {DS}._dlt_loads AS SELECT max(_dlt_load_id) AS load_id, "
                    f"0 AS status FROM {DS}.runs")
        snapshot.publish(con, path, [DS])
        want = table(con, intervals.QUEUE)
    reader = Reader(path)
    try:
        got = table(reader.connection(), intervals.QUEUE)
    finally:
        reader.close()
    pd.testing.assert_frame_equal(got, want, check_dtype=False)



def test_on_postgres_the_same_tables_and_figures(same_morning):
    """The job's morning (callbacks 10% lost, polls, records; three runs) into a DuckDB file
    and into PostgreSQL: the interval tables the server keeps equal the file's, and every
    figure read from the server's intervals on random windows, overall and per group,
    equals the sessions' own figures."""
    from tencent_desk.readers import warehouse

    pop, duck, pg = same_morning.pop, same_morning.duck, same_morning.pg
    for name in intervals.TABLES:
        keys = ", ".join(KEYS[name])
        columns = ", ".join(c for (c,) in duck.query(  # each run's id is its own
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
            "table_name = ? AND column_name <> 'run_id' ORDER BY ordinal_position", [DS, name]))
        sql = f"SELECT {columns} FROM {DS}.{name} ORDER BY {keys}"
        want, got = duck.query(sql), pg.query(sql)
        assert len(want) > 10
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert [pytest.approx(x) if isinstance(x, float) else x for x in a] == list(b)
    remote = warehouse.Reader(warehouse.destination("postgres", pg.url), DS)
    try:
        con = remote.connection()
        day = datetime.fromtimestamp(pop.config.day_start, UTC)
        with duckdb.connect(str(duck.database), read_only=True) as exact:
            checked = assert_figures_equal(con, _windows(day + timedelta(hours=8),
                                                         day + timedelta(hours=12), 6, seed=2),
                                           exact)
    finally:
        remote.close()
    assert checked > 300
