"""Reading a window from a destination server (a real PostgreSQL on loopback): only the
window's rows are pulled, they are the rows the DuckDB snapshot's Reader gives for the same
window, a new load is seen, and every failure is one line without the password."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dlt
import duckdb
import psycopg2
import pytest
from tencent_desk import notebook
from tencent_desk.job.rows import SESSION_STATES
from tencent_desk.models import indexes, snapshot
from tencent_desk.models.snapshot import LAYOUTS, Layout
from tencent_desk.readers import warehouse
from tencent_desk.readers.snapshot import Reader

from .support.postgres import PASSWORD
from .support.warehouse import copy_dataset

DATASET = "tencent_desk"
DAYS = 30
APPS = (1400000001, 1400000002)  # two Desk apps in one dataset


def month(db: Path, first_day: int = 1, days: int = DAYS) -> Path:
    """A job database of ``days`` days of November 2026, one run at noon a day, two states
    and one event per run, published as the job does."""
    con = duckdb.connect(str(db))
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {DATASET}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {DATASET}._dlt_loads (load_id VARCHAR, status INT)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {DATASET}.runs (run_id VARCHAR, status VARCHAR, "
                "started_at TIMESTAMPTZ, rows INT, _dlt_load_id VARCHAR)")
    empty = SESSION_STATES.empty_table()  # noqa: F841 (read by DuckDB below)
    con.execute(f"CREATE TABLE IF NOT EXISTS {DATASET}.session_states AS FROM empty")
    con.execute(f"CREATE TABLE IF NOT EXISTS {DATASET}.session_events (request_id VARCHAR, "
                "sdkappid BIGINT, session_id VARCHAR, event VARCHAR, event_time TIMESTAMPTZ, "
                "agent_id VARCHAR, client_user_id VARCHAR, customer_service_id VARCHAR)")
    for day in range(first_day, first_day + days):
        run_id, load = f"202611{day:02d}T120000Z-0000", f"{day:04d}"
        at = f"2026-11-{day:02d} 12:00Z"
        con.execute(f"INSERT INTO {DATASET}._dlt_loads VALUES (?, 0)", [load])
        con.execute(f"INSERT INTO {DATASET}.runs VALUES (?, 'complete', ?, 2, ?)",
                    [run_id, at, load])
        # an empty string and a NULL must come back as they are
        con.execute(f"INSERT INTO {DATASET}.session_states BY NAME SELECT * FROM (VALUES "
                    f"(?, ?, 'queuing', ?, '', 41.25, {APPS[0]}), "
                    f"(?, ?, 'agent', ?, NULL, NULL, {APPS[1]})) "
                    "v(run_id, session_id, state, polled_at, error_info, latency_ms, sdkappid)",
                    [run_id, f"s{day}", at, run_id, f"t{day}", at])
        con.execute(f"INSERT INTO {DATASET}.session_events VALUES (?, {APPS[0]}, ?, 'Start', "
                    "?, NULL, 'u', 'cs')", [f"r{day}", f"s{day}", at])
    snapshot.publish(con, db, [DATASET])
    con.close()
    return db


def rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {DATASET}.{table} ORDER BY ALL").fetchall()


@pytest.fixture
def on_server(tmp_path: Path, postgres_url: str) -> tuple[Path, str]:
    db = month(tmp_path / "desk.duckdb")
    copy_dataset(db, "postgres", postgres_url, pipelines_dir=tmp_path / "dlt")
    return db, postgres_url


@pytest.mark.parametrize("by_copy", [True, False], ids=["copy", "arrow"])
def test_a_window_pulls_only_its_days_and_the_same_rows_as_the_snapshot(on_server, by_copy):
    db, url = on_server
    since, until = date(2026, 11, 10), date(2026, 11, 12)
    remote = warehouse.Reader(warehouse.destination("postgres", url), DATASET, since, until)
    remote._postgres = by_copy  # False: the path of any other SQL destination
    con = remote.connection()
    # the window's days and one either side, in every windowed table
    assert remote.pulled == {"runs": 5, "session_states": 10, "session_events": 5}
    assert [r[0][:8] for r in rows(con, "runs")] == [f"202611{d:02d}" for d in range(9, 14)]
    local = Reader(db, since, until).connection()
    for table in ("runs", "session_states", "session_events"):
        assert rows(con, table) == rows(local, table), table
    assert con.execute(f"SELECT count(*) FILTER (WHERE error_info = ''), count(*) FILTER "
                       f"(WHERE error_info IS NULL) FROM {DATASET}.session_states"
                       ).fetchone() == (5, 5)
    # the job's views are made again over the pulled rows
    assert con.execute(f"SELECT count(*) FROM {DATASET}.session_event_times").fetchone() == (5,)
    whole = warehouse.Reader(warehouse.destination("postgres", url), DATASET)
    whole.connection()
    assert whole.pulled["session_states"] == 2 * DAYS


def test_one_app_is_filtered_on_the_server(on_server):
    _db, url = on_server
    remote = warehouse.Reader(warehouse.destination("postgres", url), DATASET,
                              date(2026, 11, 10), date(2026, 11, 12), sdkappid=APPS[1])
    con = remote.connection()
    # runs have no sdkappid here: the window's, whole; the others that app's rows only
    assert remote.pulled == {"runs": 5, "session_states": 5, "session_events": 0}
    assert con.execute(f"SELECT DISTINCT sdkappid FROM {DATASET}.session_states"
                       ).fetchall() == [(APPS[1],)]


def test_app_names_are_read_on_the_server_without_pulling(on_server, monkeypatch):
    """DESK_APP=<name> on a server: the name is looked up in the server's runs, nothing
    pulled for it; then the window is pulled for that app."""
    _db, url = on_server
    remote = warehouse.Reader(warehouse.destination("postgres", url), DATASET)
    assert remote.apps() == []  # runs from before apps had names
    with psycopg2.connect(url) as pg, pg.cursor() as cur:
        cur.execute(f"ALTER TABLE {DATASET}.runs ADD COLUMN app VARCHAR, "
                    "ADD COLUMN sdkappid BIGINT")
        cur.execute(f"UPDATE {DATASET}.runs SET app = 'eu', sdkappid = {APPS[0]} "
                    "WHERE started_at < '2026-11-15'")
    pg.close()
    assert remote.apps() == [("eu", APPS[0])] and remote.pulled == {}
    for name, value in {"DESK_DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": url,
                        "DESK_APP": "eu", "DESK_FROM": "2026-11-10",
                        "DESK_TO": "2026-11-12"}.items():
        monkeypatch.setenv(name, value)
    desk = notebook.open_desk()
    assert desk.sdkappid == APPS[0] and desk.source.pulled["session_states"] == 3


def test_a_new_load_is_pulled_and_nothing_new_is_not(on_server, tmp_path):
    _db, url = on_server
    remote = warehouse.Reader(warehouse.destination("postgres", url), DATASET)
    con = remote.connection()
    assert len(rows(con, "runs")) == DAYS
    remote.pulled = {}
    remote.connection()
    assert remote.pulled == {}  # nothing loaded since: the rows in hand are kept
    more = month(tmp_path / "more.duckdb", first_day=DAYS + 1, days=0)
    con2 = duckdb.connect(str(more))
    con2.execute(f"INSERT INTO {DATASET}.runs VALUES ('20261201T120000Z-0000', 'complete', "
                 "'2026-12-01 12:00Z', 0, 'x')")
    con2.close()
    copy_dataset(more, "postgres", url, pipelines_dir=tmp_path / "dlt2")
    assert len(rows(remote.connection(), "runs")) == DAYS + 1


def test_indexes_on_the_windowed_columns(on_server):
    _db, url = on_server
    with dlt.dataset(warehouse.destination("postgres", url), DATASET).sql_client as client:
        assert indexes.create(client) == ["runs", "session_states", "session_events"]
        assert indexes.create(client) == ["runs", "session_states", "session_events"]
        found = client.execute_sql("SELECT tablename, indexdef FROM pg_indexes WHERE "
                                   f"schemaname = '{DATASET}' AND indexname LIKE '%\\_idx'")
    assert sorted(t for t, _ in found) == ["runs", "session_events", "session_states"]
    assert any("(event_time)" in d for _, d in found)


@pytest.mark.parametrize("breakage, says", [
    ("password", "password authentication failed"),
    ("port", "Connection refused"),
    ("dataset", "dataset 'nowhere' not found on postgres"),
])
def test_failures_are_one_line_without_the_password(on_server, postgres_server, breakage,
                                                    says):
    _db, url = on_server
    dataset = DATASET
    if breakage == "password":
        url = url.replace(PASSWORD, "wrong-" + PASSWORD)
    elif breakage == "port":
        url = url.replace(f":{postgres_server.port}/", ":1/")
    else:
        dataset = "nowhere"
    with pytest.raises(warehouse.DestinationError) as caught:
        warehouse.Reader(warehouse.destination("postgres", url), dataset).connection()
    text = str(caught.value)
    assert says in text and "\n" not in text and PASSWORD not in text
    # no chained traceback carrying the driver's exception
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_no_credentials_and_unknown_destination_say_what_to_set(monkeypatch):
    monkeypatch.delenv("DESTINATION__POSTGRES__CREDENTIALS", raising=False)
    with pytest.raises(warehouse.DestinationError, match="set DESTINATION__POSTGRES__CREDENT"):
        warehouse.Reader(warehouse.destination("postgres"), DATASET).connection()
    with pytest.raises(warehouse.DestinationError, match="'nosuch' cannot be used"):
        warehouse.destination("nosuch")


def test_a_dataset_without_runs_has_no_days_yet(tmp_path):
    """Only `records` loaded it: no ``runs`` table, so no day with runs (the plan's and the
    notebooks' messages name the days), not a failure to read."""
    db = tmp_path / "records-only.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE SCHEMA {DATASET}; CREATE TABLE {DATASET}.record_runs (run_id VARCHAR)")
    con.close()
    server = warehouse.Reader(warehouse.destination("duckdb", str(db)), DATASET)
    try:
        assert server.days() == []
    finally:
        server.close()


@pytest.mark.parametrize("layout", sorted(set(LAYOUTS.values()), key=str))
def test_window_filter_keeps_the_days_the_snapshot_reader_keeps(layout: Layout):
    """Pure SQL check on DuckDB: a row is in the filter exactly when its day partition is
    in the window (or undated)."""
    con = duckdb.connect()
    kind = "VARCHAR" if layout.column in ("run_id", "day") else "TIMESTAMPTZ"
    con.execute("SET TimeZone = 'Asia/Shanghai'")  # the filter must not depend on it
    con.execute(f"CREATE TABLE t ({layout.column} {kind})")
    for d in range(1, 29):
        if layout.column == "run_id":
            value = f"202602{d:02d}T235959Z-0001"
        elif layout.column == "day":
            value = f"2026-02-{d:02d}"
        else:
            value = f"2026-02-{d:02d} 23:59:59Z"
        con.execute("INSERT INTO t VALUES (?)", [value])
    con.execute("INSERT INTO t VALUES (NULL)")
    con.execute(f"CREATE TABLE kept AS SELECT * FROM t WHERE "
                f"{layout.window_filter('2026-02-09', '2026-02-13')}")
    con.execute("SET TimeZone = 'UTC'")  # the snapshot's partitions are UTC days
    got = con.execute(f"SELECT {layout.day_sql()} AS d FROM kept ORDER BY d").fetchall()
    assert [d for (d,) in got] == [f"2026-02-{d:02d}" for d in range(9, 14)] + ["undated"]
