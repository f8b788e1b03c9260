"""Databases shaped like the ones analysts really have, for running the notebooks on.

Each shape starts from one day polled by the real job (``desk-sessions demo``, built once
per test session) and reshapes a copy of it the way the issue's reproduction did: the day
copied into earlier days with its times shifted and its run, session and user ids made
unique, the simulator's truth dropped (a real account has none), whole days and nights left
without runs, runs that did not complete (and so loaded nothing: a whole day of them, or
every run so far), quiet days.

A copied day keeps its callbacks and session records (times shifted, ids made unique, run
ids dated by the day they moved to, as the job's are); ``failed_day`` and ``nothing_queued``
are polling-only deployments (no events, no records). Every shape's ``session_timeline`` is
made again from what it holds by the job's own upkeep when it is published. The per-run
counters in ``runs`` (``rows``, ``n_<state>``) are left as copied, since no notebook reads
them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
from tencent_desk import cli
from tencent_desk.api import states as st
from tencent_desk.core.settings import TRUTH_SCHEMA
from tencent_desk.demo import run_demo
from tencent_desk.models import intervals, timeline

DS = "tencent_desk"
# Statuses of runs that stopped before loading: failed and interrupted as the job writes
# them, and ``outage`` for the status another change adds. None of them is a snapshot.
NOT_COMPLETE = ("failed", "interrupted", "outage")
# A quiet desk: sessions come and go with the chatbot, nobody queues or reaches an agent.
QUIET_STATES = (st.CHATBOT, st.NOT_IN_SESSION, st.ENDED)
STOPPED = "stopped before loading (test fixture)"
# Shapes also loaded into a real PostgreSQL, for the notebooks and reports to read there.
ON_POSTGRES = ("one_day", "several_days")
GROUP_2 = "Second line"


def build_demo_day(path: Path) -> Path:
    """``desk-sessions demo --database path`` for a simulated Monday morning (quick): a poll
    every 15 minutes, 15 runs where the demo's 5-15 minutes make 24 (a run costs a second)."""
    args = cli.parser().parse_args(["demo", "--database", str(path), "--start-hour", "9",
                                    "--end-hour", "12.5"])
    if run_demo(args, every_min=(15, 15)) != 0:
        raise RuntimeError("the demo failed")
    return path


def _cycle(order: str) -> str:
    """SQL: the statuses of ``NOT_COMPLETE`` in turn, over rows in ``order``."""
    return (f"{list(NOT_COMPLETE)}[(row_number() OVER (ORDER BY {order}) - 1)"
            f" % {len(NOT_COMPLETE)} + 1]")


def _copy_day(con: duckdb.DuckDBPyConnection, days_back: int, complete: bool = True) -> None:
    """The base day again ``days_back`` days earlier with every id made unique. Not
    ``complete``: each run stopped before loading (statuses in turn), so it has no rows."""
    tag, shift = f"-d{days_back}", f"INTERVAL {days_back} DAY"
    # a run id starts with its UTC day (readers' files are cut by it): moved with the run
    run_id = (f"strftime(strptime(left(run_id, 8), '%Y%m%d') - {shift}, '%Y%m%d') "
              f"|| substr(run_id, 9) || '{tag}' AS run_id")
    status, error = ("status", "error") if complete else (_cycle("started_at"), f"'{STOPPED}'")
    con.execute(f"""
        INSERT INTO {DS}.runs BY NAME
        SELECT * REPLACE ({run_id}, started_at - {shift} AS started_at,
                          finished_at - {shift} AS finished_at, {status} AS status,
                          {error} AS error, _dlt_id || '{tag}' AS _dlt_id)
        FROM base_day;
    """)
    if not complete:
        return
    ids = f"session_id || '{tag}' AS session_id, client_user_id || '{tag}' AS client_user_id"
    con.execute(f"""
        INSERT INTO {DS}.session_states BY NAME
        SELECT * REPLACE ({run_id}, {ids}, polled_at - {shift} AS polled_at)
        FROM {DS}.session_states WHERE run_id IN (SELECT run_id FROM base_day);
        INSERT INTO {DS}.record_runs BY NAME
        SELECT * REPLACE ({run_id}, started_at - {shift} AS started_at,
                          finished_at - {shift} AS finished_at, _dlt_id || '{tag}' AS _dlt_id)
        FROM base_records;
        INSERT INTO {DS}.session_events BY NAME
        SELECT * REPLACE ({run_id}, {ids}, event_time - {shift} AS event_time,
                          received_at - {shift} AS received_at,
                          request_id || '{tag}' AS request_id)
        FROM base_events;
        INSERT INTO {DS}.session_records BY NAME
        SELECT * REPLACE ({run_id}, {ids}, started_at - {shift} AS started_at,
                          ended_at - {shift} AS ended_at,
                          record_timestamp - {shift} AS record_timestamp)
        FROM base_record_rows;
    """)


def _polls_only(con: duckdb.DuckDBPyConnection) -> None:
    """A deployment without the receiver and without records: polls are all it has. The
    demo stopped asking about a session once its closing callback came; with a seed instead,
    the next complete run sees it ended (141005), so that answer is added."""
    con.execute(f"""
        INSERT INTO {DS}.session_states BY NAME
        SELECT r.run_id, c.sdkappid, c.session_id, c.client_user_id, 'session' AS key_type,
               '{st.ENDED}' AS state, 141005 AS error_code, r.started_at AS polled_at,
               1 AS attempts
        FROM (SELECT sdkappid, session_id, client_user_id, last_event_at
              FROM {DS}.session_event_times
              WHERE closed AND session_id IN (SELECT session_id FROM {DS}.session_states)) c
        ASOF JOIN (SELECT run_id, started_at FROM {DS}.runs WHERE status = 'complete') r
            ON c.last_event_at <= r.started_at
    """)
    con.execute(f"DROP VIEW {DS}.session_event_times")
    for table in ("session_events", "session_records", "record_runs"):
        con.execute(f"DROP TABLE {DS}.{table}")


def _fail_runs(con: duckdb.DuckDBPyConnection, nth: list[int]) -> None:
    """The base day's ``nth`` runs (in time order) stopped before loading: no rows."""
    con.execute(f"""
        CREATE TEMP TABLE broken AS
        SELECT run_id, {_cycle("run_id")} AS status
        FROM (SELECT run_id FROM base_day
              QUALIFY row_number() OVER (ORDER BY started_at) - 1 IN ({", ".join(map(str, nth))}));
        UPDATE {DS}.runs SET status = broken.status, error = '{STOPPED}'
        FROM broken WHERE runs.run_id = broken.run_id;
        DELETE FROM {DS}.session_states WHERE run_id IN (SELECT run_id FROM broken);
    """)


def _several_days(con: duckdb.DuckDBPyConnection) -> None:
    # Thursday and Friday before the Monday: nights and a weekend without runs, and two
    # agent groups.
    _copy_day(con, 4)
    _copy_day(con, 3)
    _two_groups(con)


def _two_groups(con: duckdb.DuckDBPyConnection) -> None:
    # The records name two agent groups: every other agent (by id) serves in the second.
    con.execute(f"""
        UPDATE {DS}.session_records SET agent_group_id = 'second', agent_group_name = '{GROUP_2}'
        WHERE agent_id IN (SELECT agent_id FROM (SELECT DISTINCT agent_id FROM
                           {DS}.session_records WHERE agent_id IS NOT NULL)
                           QUALIFY row_number() OVER (ORDER BY agent_id) % 2 = 0)
    """)


def _failed_day(con: duckdb.DuckDBPyConnection) -> None:
    # Thursday polled; on Friday every run stopped (failed, interrupted, outage); on Monday
    # one run stopped mid-morning and two in a row later.
    _copy_day(con, 4)
    _copy_day(con, 3, complete=False)
    _fail_runs(con, [5, 12, 13])
    _polls_only(con)


def _failed_only(con: duckdb.DuckDBPyConnection) -> None:
    # A new deployment whose every run so far stopped: not a single snapshot yet.
    runs = con.execute("SELECT count(*) FROM base_day").fetchall()[0][0]
    _fail_runs(con, list(range(runs)))
    con.execute(f"UPDATE {DS}.record_runs SET status = 'failed', error = '{STOPPED}'")


def _nothing_queued(con: duckdb.DuckDBPyConnection) -> None:
    # A quiet day: runs complete, but nobody waited or reached an agent.
    con.execute(f"DELETE FROM {DS}.session_states WHERE state NOT IN "
                f"({', '.join(repr(s) for s in QUIET_STATES)})")
    _polls_only(con)


def _single_run(con: duckdb.DuckDBPyConnection) -> None:
    # The first run of a new deployment, the morning after it was scheduled.
    con.execute(f"""
        DELETE FROM {DS}.runs WHERE started_at > (SELECT min(started_at) FROM {DS}.runs);
        DELETE FROM {DS}.session_states WHERE run_id NOT IN (SELECT run_id FROM {DS}.runs);
    """)


# shape -> (reshape, keep the simulator's truth). ``one_day`` is the demo as it is; every
# other shape is without truth, as a real account's database.
SHAPES: dict[str, tuple[Callable[[duckdb.DuckDBPyConnection], None], bool]] = {
    "one_day": (lambda con: None, True),
    "several_days": (_several_days, False),
    "failed_day": (_failed_day, False),
    "failed_only": (_failed_only, False),
    "nothing_queued": (_nothing_queued, False),
    "single_run": (_single_run, False),
}


def _base_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The demo day's rows as they are, for the reshapes to copy from."""
    con.execute(f"""
        CREATE TEMP TABLE base_day AS SELECT * FROM {DS}.runs;
        CREATE TEMP TABLE base_records AS SELECT * FROM {DS}.record_runs;
        CREATE TEMP TABLE base_events AS SELECT * FROM {DS}.session_events;
        CREATE TEMP TABLE base_record_rows AS SELECT * FROM {DS}.session_records;
    """)


def build_shape(base: Path, shape: str, path: Path, truth: bool | None = None) -> Path:
    """A copy of the demo day at ``base``, reshaped as ``shape`` (a key of ``SHAPES``),
    with the simulator's truth kept as the shape says, or as ``truth`` says when given."""
    reshape, kept = SHAPES[shape]
    truth = kept if truth is None else truth
    shutil.copyfile(base, path)
    con = duckdb.connect(str(path))
    try:
        _base_tables(con)
        reshape(con)
        _loaded_only(con)
        if not truth:
            con.execute(f"DROP SCHEMA {TRUTH_SCHEMA} CASCADE")
        # made again from what the shape holds, by the job's upkeep when published
        con.execute(f"DROP TABLE {DS}.{timeline.TABLE}; DROP TABLE {DS}.{timeline.STATE_TABLE}")
        for table in (*intervals.TABLES, intervals.LEDGER, intervals.STATE_TABLE):
            con.execute(f"DROP TABLE IF EXISTS {DS}.{table}")
    finally:
        con.close()
    return path


def _loaded_only(con: duckdb.DuckDBPyConnection) -> None:
    """Callbacks and records stay only where a run that completed loaded them."""
    tables = {t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
        [DS]).fetchall()}
    logs = " UNION ALL ".join(f"SELECT run_id FROM {DS}.{t} WHERE status = 'complete'"
                              for t in ("runs", "record_runs") if t in tables)
    for table in ("session_events", "session_records"):
        if table in tables:
            con.execute(f"DELETE FROM {DS}.{table} WHERE run_id NOT IN ({logs})")


def build_weeks(base: Path, path: Path, days: int = 21, two_groups: bool = False) -> Path:
    """The demo day and ``days`` days before it, each a copy (times shifted, ids unique):
    weeks of history to plan from, in one agent group or two. Truth dropped, as for a real
    account."""
    shutil.copyfile(base, path)
    con = duckdb.connect(str(path))
    try:
        _base_tables(con)
        for back in range(1, days + 1):
            _copy_day(con, back)
        if two_groups:
            _two_groups(con)
        con.execute(f"DROP SCHEMA {TRUTH_SCHEMA} CASCADE")
        con.execute(f"DROP TABLE {DS}.{timeline.TABLE}; DROP TABLE {DS}.{timeline.STATE_TABLE}")
    finally:
        con.close()
    return path


SECOND_APP = 1400000001
# The tables of an app's loaded rows, with the ids a second app's copy of them makes unique.
APP_ROWS = {"runs": ("run_id", "_dlt_id"), "record_runs": ("run_id", "_dlt_id"),
            "session_states": ("run_id", "session_id", "request_id"),
            "session_events": ("run_id", "session_id", "request_id"),
            "session_records": ("run_id", "session_id")}


def two_apps(base: Path, path: Path) -> Path:
    """``base`` (the demo day, or weeks of it) for two apps in one database, their groups
    named alike: the first's rows as they are, the second's (``SECOND_APP``) every run and
    every other session of them."""
    shutil.copyfile(base, path)
    with duckdb.connect(str(path)) as con:
        con.execute(f"UPDATE {DS}.runs SET app = 'first'; "
                    f"UPDATE {DS}.record_runs SET app = 'first'")
        for table, ids in APP_ROWS.items():
            keep = "" if table.endswith("runs") else " WHERE hash(session_id) % 2 = 0"
            app = ", 'second' AS app" if table.endswith("runs") else ""
            con.execute(f"INSERT INTO {DS}.{table} BY NAME SELECT * REPLACE ("
                        f"{SECOND_APP} AS sdkappid{app}, "
                        + ", ".join(f"{c} || '-b' AS {c}" for c in ids)
                        + f") FROM {DS}.{table}{keep}")
        _made_again(con)
    return path


def one_app(base: Path, path: Path, sdkappid: int) -> Path:
    """A database of several apps (``base``) with one app's rows alone: what a database of
    that app only would hold."""
    shutil.copyfile(base, path)
    with duckdb.connect(str(path)) as con:
        for table in APP_ROWS:
            con.execute(f"DELETE FROM {DS}.{table} WHERE sdkappid <> {int(sdkappid)}")
        _made_again(con)
    return path


def unnamed(base: Path, path: Path) -> int:
    """``base`` with records that name no group for the sessions nobody served (the other
    reading of Desk's "the agent group that served"), for publishing to make its timeline
    again; returns the sessions so left without a group."""
    shutil.copyfile(base, path)
    with duckdb.connect(str(path)) as con:
        (cleared,), = con.execute(
            f"UPDATE {DS}.session_records SET agent_group_id = NULL, agent_group_name = NULL "
            f"WHERE session_id IN (SELECT session_id FROM (SELECT *, {intervals.SPANS_SQL} "
            f"FROM {DS}.{timeline.TABLE}) WHERE abandoned)").fetchall()
        _made_again(con)
    return cleared


def _made_again(con: duckdb.DuckDBPyConnection) -> None:
    """What the job makes of the loaded rows dropped, for publishing to make again of the
    apps the database now holds (and the simulator's truth: one app's)."""
    for table in (timeline.TABLE, timeline.STATE_TABLE, *intervals.TABLES, intervals.LEDGER,
                  intervals.STATE_TABLE):
        con.execute(f"DROP TABLE IF EXISTS {DS}.{table}")
    con.execute(f"DROP SCHEMA IF EXISTS {TRUTH_SCHEMA} CASCADE")
