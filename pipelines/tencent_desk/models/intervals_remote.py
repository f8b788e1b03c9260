"""The interval tables on a destination other than DuckDB (PostgreSQL).

The same upkeep as on DuckDB (:mod:`intervals`), its SQL run in a local in-memory DuckDB
over what it reads, as :mod:`timeline_remote` keeps the timeline: the server hands over the
timeline rows written since the last upkeep, those sessions' rows as last counted, and the
timeline rows that may count in the intervals they touch; the rows made replace those
intervals' rows on the server in one transaction, with the ledger and the watermark, so a
run killed half-way leaves the tables as they were and the next upkeep does it again.
"""

from __future__ import annotations

import io
import tempfile
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
from tencent_desk.core.sql import ident, literal
from tencent_desk.models import intervals, snapshot, timeline

# information_schema's spelling of the types the SQL makes, for the server's tables
_SERVER_TYPES = {"BIGINT": "BIGINT", "INTEGER": "INTEGER", "DOUBLE": "DOUBLE PRECISION",
                 "VARCHAR": "VARCHAR", "BOOLEAN": "BOOLEAN",
                 "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}
# The server's indexes the upkeep and the readers' windows need (no zone maps there).
INDEXED = {timeline.TABLE: ("run_id", "began_at"),
           intervals.LEDGER: ("session_id", "last_at"),
           intervals.QUEUE: ("interval_start",), intervals.AGENT: ("interval_start",),
           intervals.SKETCH: ("interval_start",)}
_TL_COLUMNS = ", ".join(ident(c) for c in intervals.READ_COLUMNS)


def upkeep(pipeline: Any) -> int:
    """Bring the interval tables on the pipeline's destination up to date with the
    timeline; returns the interval rows (re)written."""
    ds = ident(pipeline.dataset_name)
    local = duckdb.connect()
    try:
        local.execute("SET TimeZone = 'UTC'")
        local.execute(f"CREATE SCHEMA {ds}")
        with pipeline.sql_client() as client:
            have = {r[0] for r in client.execute_sql(timeline.tables_sql("%s"),
                                                      pipeline.dataset_name)}
            if timeline.TABLE not in have:
                return 0
            conn = client.native_connection
            with conn.cursor() as cur:
                return _upkeep(cur, local, ds, have, conn)
    finally:
        local.close()


def _upkeep(cur: Any, local: duckdb.DuckDBPyConnection, ds: str, have: set[str],
            conn: Any) -> int:
    _create(cur, local, ds, have)
    cur.execute(f"SELECT max(load_id) FROM {ds}.{intervals.STATE_TABLE}")
    (mark,) = cur.fetchone()
    cur.execute(f"SELECT max(load_id) FROM {ds}.{timeline.STATE_TABLE}")
    (now,) = cur.fetchone()
    if now is None or now == mark:
        return 0
    logs = [t for t in snapshot.RUN_LOGS if t in have]
    cur.execute(intervals.new_runs_sql(ds, logs, mark, now))
    runs = [r for (r,) in cur.fetchall()]
    _pull(cur, local, "changed", f"SELECT {_TL_COLUMNS} FROM {ds}.{timeline.TABLE} "
          f"WHERE {intervals.rewritten(runs, mark)}", [])
    (top,) = local.execute("SELECT max(run_id) FROM changed").fetchone() or (None,)
    if top is None:
        _done(cur, ds, now)
        conn.commit()
        return 0
    ids = [r for (r,) in local.execute("SELECT DISTINCT session_id FROM changed").fetchall()]
    cols = ", ".join(intervals.LEDGER_COLUMNS)
    _pull(cur, local, "counted_all", f"SELECT {cols} FROM {ds}.{intervals.LEDGER} "
          "WHERE session_id = ANY(%s)", [ids])
    local.execute("CREATE TABLE counted AS SELECT x.* FROM counted_all AS x WHERE EXISTS "
                  "(SELECT 1 FROM changed AS c WHERE c.sdkappid IS NOT DISTINCT FROM "
                  "x.sdkappid AND c.session_id = x.session_id)")
    span = intervals.dirty(local, "counted", "changed")
    written = 0
    made: dict[str, pa.Table] = {}
    if span is not None:
        first, last = span
        bounds = list(intervals.reach_bounds(first, last))
        # as on DuckDB: the sessions that may count there, by the ledger's reach (indexed)
        _pull(cur, local, "reaching", intervals.reaching_sql(
            f"{ds}.{intervals.LEDGER}", "%s", "%s"), bounds)
        local.execute("INSERT INTO reaching " + intervals.reaching_sql(
            f"(SELECT *, {intervals.REACH_SELECT} FROM changed)", "?", "?"), bounds)
        (lo, hi) = local.execute("SELECT min(began_at), max(began_at) FROM reaching"
                                 ).fetchone() or (None, None)
        reached = [r for (r,) in local.execute("SELECT DISTINCT session_id FROM reaching"
                                               ).fetchall()]
        _pull(cur, local, "reached", f"SELECT {_TL_COLUMNS} FROM {ds}.{timeline.TABLE} WHERE "
              "began_at >= %s AND began_at <= %s AND session_id = ANY(%s)", [lo, hi, reached])
        local.execute("CREATE TABLE cand AS SELECT * FROM reached AS x WHERE EXISTS (SELECT 1 "
                      "FROM reaching AS r WHERE r.sdkappid IS NOT DISTINCT FROM x.sdkappid "
                      "AND r.session_id = x.session_id)")
        intervals.compute(local, "cand", top)
        made = {t: local.sql(f"SELECT * FROM {m}").to_arrow_table() for t, m in (
            (intervals.QUEUE, "new_queue"), (intervals.AGENT, "new_agent"),
            (intervals.SKETCH, "new_sketch"))}
        keys = {intervals.QUEUE: ("dirty_queue", intervals.GROUP),
                intervals.SKETCH: ("dirty_queue", intervals.GROUP),
                intervals.AGENT: ("dirty_agent", ("sdkappid", "agent_id"))}
        for table, (dirty, columns) in keys.items():
            on = (*columns, "interval_start")
            _push(cur, local.sql(f"SELECT {', '.join(on)} FROM {dirty}").to_arrow_table(),
                  "dirty_keys", temp=True)
            match = " AND ".join(f"x.{c} IS NOT DISTINCT FROM k.{c}" for c in on)
            cur.execute(f"DELETE FROM {ds}.{table} AS x USING dirty_keys AS k WHERE {match} "
                        "AND x.interval_start >= %s", [first])
            cur.execute("DROP TABLE dirty_keys")
            _push(cur, made[table], f"{ds}.{table}")
            written += made[table].num_rows if table != intervals.SKETCH else 0
    cur.execute(f"DELETE FROM {ds}.{intervals.LEDGER} WHERE session_id = ANY(%s)", [ids])
    _push(cur, local.sql(f"SELECT {intervals.LEDGER_SELECT} FROM changed WHERE began_at IS "
                         "NOT NULL ORDER BY last_at").to_arrow_table(), f"{ds}.{intervals.LEDGER}")
    _done(cur, ds, now)
    conn.commit()
    return written


def _done(cur: Any, ds: str, now: str) -> None:
    cur.execute(f"DELETE FROM {ds}.{intervals.STATE_TABLE}")
    cur.execute(f"INSERT INTO {ds}.{intervals.STATE_TABLE} VALUES (%s)", [now])


def _create(cur: Any, local: duckdb.DuckDBPyConnection, ds: str, have: set[str]) -> None:
    """The tables on the server, with the columns and types the local SQL makes, and their
    indexes (once; again when outdated)."""
    cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                "table_schema = %s AND table_name = %s", [ds.strip('"'), intervals.QUEUE])
    outdated = intervals.outdated_sql(ds, {c for (c,) in cur.fetchall()})
    for sql in outdated:
        cur.execute(sql)
    if outdated:
        have = have - {*intervals.TABLES, intervals.LEDGER, intervals.STATE_TABLE}
    if intervals.LEDGER in have:  # a ledger from before its reach was kept
        cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                    "table_schema = %s AND table_name = %s", [ds.strip('"'), intervals.LEDGER])
        for sql in intervals.reach_migration(ds, {c for (c,) in cur.fetchall()}):
            cur.execute(sql)
    if not {*intervals.TABLES, intervals.LEDGER, intervals.STATE_TABLE} <= have:
        local.execute(f"CREATE TABLE {ds}.{timeline.TABLE} AS SELECT * FROM {_TYPED} "
                      "WHERE false")
        intervals._create(local, ds)
        for table in (*intervals.TABLES, intervals.LEDGER, intervals.STATE_TABLE):
            columns = local.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE "
                "table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [ds.strip('"'), table]).fetchall()
            spec = ", ".join(f"{ident(c)} {_SERVER_TYPES.get(t, 'VARCHAR')}" for c, t in columns)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {ds}.{table} ({spec})")
    for table, columns in INDEXED.items():
        for column in columns:
            cur.execute(f"CREATE INDEX IF NOT EXISTS {ident(f'{table}_{column}_idx')} ON "
                        f"{ds}.{table} ({column})")


# The timeline's columns the upkeep reads, typed (what a pulled table is made as).
_TYPED = "(SELECT NULL::BIGINT AS sdkappid, NULL::VARCHAR AS session_id, " + ", ".join(
    [*(f"NULL::VARCHAR AS {c}" for c in ("agent_group_id", "agent_group_name", "agent_id",
                                         "run_id")),
     *(f"NULL::VARCHAR AS {t}_source, NULL::TIMESTAMPTZ AS {t}_lo, NULL::TIMESTAMPTZ AS "
       f"{t}_hi, NULL::TIMESTAMPTZ AS {t}_at" for t in timeline.TIMES)]) + ")"


def _pull(cur: Any, local: duckdb.DuckDBPyConnection, name: str, sql: str,
          params: list[Any]) -> None:
    """The server's rows of ``sql`` as local table ``name``, typed as the timeline's
    columns: ``COPY ... TO STDOUT`` as CSV, which DuckDB parses (several times the rows/s
    of fetching Python tuples)."""
    names = [c.strip().strip('"') for c in sql.split(" FROM ", 1)[0][len("SELECT "):].split(",")]
    local.execute(f"CREATE TABLE {name} AS SELECT {', '.join(names)} FROM {_TYPED} WHERE false")
    types = local.execute("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = ? ORDER BY ordinal_position", [name]).fetchall()
    with tempfile.NamedTemporaryFile(suffix=".csv") as file:
        cur.execute("SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; "
                    "SET extra_float_digits TO 3")
        cur.copy_expert(f"COPY ({cur.mogrify(sql, params).decode()}) TO STDOUT WITH "
                        "(FORMAT csv, HEADER true)", file)
        file.flush()
        spec = "{" + ", ".join(f"{literal(c)}: {literal(t)}" for c, t in types) + "}"
        local.execute(f"INSERT INTO {name} BY NAME SELECT * FROM read_csv({literal(file.name)}, "
                      f"header = true, columns = {spec}, nullstr = '', "
                      "allow_quoted_nulls = false, auto_detect = false, delim = ',', "
                      "quote = '\"', escape = '\"')")


def _push(cur: Any, rows: pa.Table, target: str, *, temp: bool = False) -> None:
    """Rows into a server table by COPY (CSV): one round trip however many rows."""
    if temp:
        spec = ", ".join(f"{ident(f.name)} {_pg_type(f.type)}" for f in rows.schema)
        cur.execute(f"CREATE TEMP TABLE {target} ({spec})")
    if rows.num_rows == 0:
        return
    buf = io.BytesIO()
    pacsv.write_csv(rows, buf, pacsv.WriteOptions(include_header=False,
                                                  quoting_style="needed"))
    buf.seek(0)
    cols = ", ".join(ident(n) for n in rows.schema.names)
    cur.copy_expert(f"COPY {target} ({cols}) FROM STDIN WITH (FORMAT csv)", buf)


def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE PRECISION"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    return "VARCHAR"
