"""``session_timeline`` on a destination other than DuckDB (PostgreSQL).

The same SQL as on DuckDB (:mod:`timeline`), run in a local in-memory DuckDB over what it
reads: the server finds the sessions the newly finished runs touched and hands over only
their rows within the lookback, as Arrow; the rows made are merged back with dlt on
(``sdkappid``, ``session_id``). The watermark moves only once they are loaded: a run killed
in between recomputes the same rows next time, and the merge makes that harmless.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dlt
import duckdb
import pyarrow as pa
from tencent_desk.core.sql import ident
from tencent_desk.job import event_load, record_rows, rows
from tencent_desk.models import snapshot, timeline

_TOUCHED = timeline.touched("x")  # every table is read as ``x``
_RUNS = pa.schema([rows.SESSION_STATES.field("run_id"), ("started_at", pa.timestamp(
    "us", tz="UTC")), ("status", pa.string())])


def _columns(schema: pa.Schema, names: str) -> pa.Schema:
    return pa.schema([schema.field(n) for n in names.split()])


# What the timeline reads of each source, as which types, and which rows: (columns, filter,
# its parameter: the horizon ``h``, the runs' horizon ``r``, or none), as on DuckDB.
READS: dict[str, tuple[pa.Schema, str, str]] = {
    "session_events": (_columns(event_load.SCHEMA, "sdkappid session_id event event_time agent_id "
                                "client_user_id satisfaction"),
                       f"{_TOUCHED} AND event_time >= %s", "h"),
    "session_records": (_columns(record_rows.SESSION_RECORDS, "sdkappid session_id started_at "
                                 "ended_at agent_id client_user_id agent_group_id "
                                 "agent_group_name end_status satisfaction"),
                        _TOUCHED, ""),
    "session_states": (_columns(rows.SESSION_STATES, "sdkappid session_id polled_at state agent_id "
                                "client_user_id run_id"),
                       f"{_TOUCHED} AND polled_at >= %s AND state NOT IN ('error', "
                       "'unknown')", "h"),
    "runs": (_RUNS, "status = 'complete' AND started_at >= %s", "r"),
}
KEY = ("sdkappid", "session_id")
# PostgreSQL has no zone maps: without these, finding a run's rows reads the whole history.
INDEXED = {"session_states": ("run_id", "session_id"),
           "session_events": ("run_id", "session_id"),
           "session_records": ("run_id", "session_id"),
           timeline.TABLE: ("session_id",)}  # its rows kept (their day) and merged


def upkeep(pipeline: Any) -> int:
    """Bring ``session_timeline`` in the pipeline's destination up to date with the runs
    finished since the last upkeep; returns the sessions (re)written."""
    dataset = pipeline.dataset_name
    ds = ident(dataset)
    with pipeline.sql_client() as client:
        src = timeline.Sources(
            frozenset(r[0] for r in client.execute_sql(timeline.tables_sql("%s"), dataset)),
            frozenset(r[0] for r in client.execute_sql(
                snapshot.APP_LOGS_SQL.format(param="%s"), dataset) or ()))
        logs = [t for t in snapshot.RUN_LOGS if t in src.tables]
        if not logs or not (src.events or src.records or src.polls):
            return 0
        for table, columns in INDEXED.items():
            if table in src.tables:
                for column in columns:
                    client.execute_sql(f"CREATE INDEX IF NOT EXISTS "
                                       f"{ident(f'{table}_{column}_idx')} ON {ds}.{table} "
                                       f"({column})")
        state = f"{ds}.{timeline.STATE_TABLE}"
        client.execute_sql(f"CREATE TABLE IF NOT EXISTS {state} (load_id VARCHAR)")
        ((watermark,),) = client.execute_sql(f"SELECT max(load_id) FROM {state}")
        finished = timeline.finished_sql(ds, logs, sorted(src.with_app))
        new = [r for (r,) in client.execute_sql(
            f"SELECT run_id FROM ({finished}) AS f WHERE _dlt_load_id > %s ORDER BY run_id",
            watermark or "")]
        if not new:
            return 0
        made = _compute(client, ds, src, new)
    if made is not None:
        pipeline.run(_timeline_source(made))
    with pipeline.sql_client() as client:
        client.execute_sql(f"DELETE FROM {state}")
        client.execute_sql(f"INSERT INTO {state} SELECT max(_dlt_load_id) FROM ({finished}) "
                           "AS f")
    return made.num_rows if made is not None else 0


def _compute(client: Any, ds: str, src: timeline.Sources, new: list[str]) -> pa.Table | None:
    """The timeline rows of the sessions the runs ``new`` touched, made locally (None when
    they touched none)."""
    client.execute_sql(f"CREATE TEMP TABLE touched AS SELECT sdkappid, session_id, min(t) AS t "
                       f"FROM ({timeline.new_data_sql(ds, src, new)}) AS n "
                       "GROUP BY sdkappid, session_id")
    ((first,),) = client.execute_sql("SELECT min(t) FROM touched")
    if first is None:
        return None
    horizon = first - timedelta(days=timeline.LOOKBACK_DAYS)
    params = {"h": [horizon], "r": [horizon - timedelta(days=timeline.LOOKBACK_DAYS)], "": []}
    local = duckdb.connect()
    try:
        local.execute("SET TimeZone = 'UTC'")
        local.execute(f"CREATE SCHEMA {ds}")
        for table, (schema, where, param) in READS.items():
            if table in src.tables:
                _pull(client, local, f"{ds}.{table}", schema,
                      f"SELECT {', '.join(schema.names)} FROM {ds}.{table} AS x WHERE {where}",
                      params[param])
        kept = pa.schema([("sdkappid", pa.int64()), ("session_id", pa.string()),
                          ("day", pa.string())])
        _pull(client, local, "touched", kept.remove(2), "SELECT sdkappid, session_id FROM "
              "touched", [])
        _pull(client, local, "kept", kept, f"SELECT sdkappid, session_id, day FROM "
              f"{ds}.{timeline.TABLE} AS x WHERE {_TOUCHED}"
              if timeline.TABLE in src.tables else None, [])
        local.execute("CREATE TABLE fresh AS " + timeline.select_sql(
            ds, src, timeline.since_sql(horizon)))
        return local.sql(timeline.ROWS_SQL, params=[new[-1]]).to_arrow_table()
    finally:
        local.close()


def _pull(client: Any, local: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema,
          sql: str | None, params: list[Any]) -> None:
    """The result of ``sql`` on the server (None: no rows) as table ``name`` locally."""
    found = client.execute_sql(sql, *params) if sql else []
    columns = list(zip(*found, strict=True)) if found else [()] * len(schema)
    table = pa.table([pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)],
                     schema=schema)
    local.register("pulled", table)
    local.execute(f"CREATE TABLE {name} AS SELECT * FROM pulled")
    local.unregister("pulled")


def _timeline_source(made: pa.Table) -> Any:
    for name in KEY:  # the merge key: never null (dlt's hint)
        i = made.schema.get_field_index(name)
        made = made.cast(made.schema.set(i, made.schema.field(i).with_nullable(False)))

    @dlt.source(name="tencent_desk", max_table_nesting=0)
    def tencent_desk_timeline() -> Any:
        return dlt.resource(made, name=timeline.TABLE, write_disposition="merge",
                            primary_key=KEY)

    return tencent_desk_timeline()
