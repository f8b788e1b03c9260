"""Worker: analysis from PostgreSQL next to DuckDB, on a real server (tests/support/postgres.py).

1. Load rate: ``load_rows`` Arrow session_states rows loaded by a dlt pipeline into
   PostgreSQL (dlt's default for Arrow, csv by COPY, and insert_values) and into DuckDB; rows/s of
   ``pipeline.run``.
2. Notebook-level read of one day: ``days`` of history (runs of ``run_rows`` keys every
   5 minutes, bench_snapshot's layout) in PostgreSQL and in a job's DuckDB with its
   published snapshot; then a reader for one day (``warehouse.Reader`` / ``Reader``)
   and the poll metrics the queue notebook computes. PostgreSQL is timed without and with
   the window indexes (``indexes.create``), and with a week of history only.

``python benchmarks/bench_postgres_read.py '{"days": 365, "run_rows": 100, "load_rows": 200000}'``
prints one JSON line.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv
from bench_snapshot import DS, RUN_EVERY_S, T0, add_runs, make_history
from common import OUT, ROOT
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.models import indexes, snapshot
from tencent_desk.readers import warehouse
from tencent_desk.readers.snapshot import Reader

sys.path.insert(0, str(ROOT))
from tests.support.postgres import Server, running

REPEAT = 3


def load_rate(server: Server, rows: int, work: Path) -> dict[str, float]:
    """rows/s of dlt loading the same Arrow table into each destination."""
    con = duckdb.connect()
    make_history(con, 0, 0)
    add_runs(con, 0, rows // 500, 500)
    table = con.sql(f"SELECT * FROM {DS}.session_states").to_arrow_table()
    out = {}
    for name, dest, fmt in (
            ("postgres", dlt.destinations.postgres(server.create_database("bench_load")),
             None),
            ("postgres_insert", dlt.destinations.postgres(server.create_database("bench_iv")),
             "insert_values"),
            ("duckdb", dlt.destinations.duckdb(str(work / "load.duckdb")), None)):
        pipeline = dlt.pipeline(pipeline_name=f"bench_{name}", destination=dest,
                                dataset_name=DS, pipelines_dir=str(work / "dlt"))
        t = time.perf_counter()
        pipeline.run(dlt.resource(table, name="session_states", write_disposition="append"),
                     loader_file_format=fmt)
        out[name] = table.num_rows / (time.perf_counter() - t)
    return out


def copy_to_postgres(con: duckdb.DuckDBPyConnection, url: str, since_i: int = 0) -> None:
    """The history (runs from ``since_i`` on) into PostgreSQL by COPY, in Arrow batches:
    fast, and what dlt would have left there (same tables, same types)."""
    pg = psycopg2.connect(url)
    with pg, pg.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {DS}")
        cur.execute(f"CREATE TABLE {DS}._dlt_loads (load_id VARCHAR, status BIGINT)")
        cur.execute(f"CREATE TABLE {DS}.runs (run_id VARCHAR, status VARCHAR, started_at "
                    "TIMESTAMPTZ, rows BIGINT, _dlt_load_id VARCHAR)")
        cur.execute(f"CREATE TABLE {DS}.session_states (run_id VARCHAR, session_id VARCHAR, "
                    "client_user_id VARCHAR, customer_service_id VARCHAR, key_type VARCHAR, "
                    "state VARCHAR, raw_state VARCHAR, agent_id VARCHAR, error_code BIGINT, "
                    "error_info VARCHAR, request_id VARCHAR, polled_at TIMESTAMPTZ, "
                    "latency_ms DOUBLE PRECISION, attempts INTEGER)")
        first = con.execute(f"SELECT min(run_id) FROM {DS}.runs WHERE started_at >= "
                            f"to_timestamp({T0 + since_i * RUN_EVERY_S})").fetchall()[0][0]
        for table, where in (("_dlt_loads", "TRUE"), ("runs", f"run_id >= '{first}'"),
                             ("session_states", f"run_id >= '{first}'")):
            reader = con.sql(f"SELECT * FROM {DS}.{table} WHERE {where}").to_arrow_reader(
                500_000)
            for batch in reader:
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf,
                                pacsv.WriteOptions(include_header=False))
                buf.seek(0)
                cur.copy_expert(f"COPY {DS}.{table} FROM STDIN WITH (FORMAT csv)", buf)
        cur.execute("ANALYZE")
    pg.close()


def notebook_read(open_reader: Any) -> dict[str, float]:
    """Seconds from nothing to the queue notebook's poll figures for the window (median of
    REPEAT), and of that the reader's part (opening the window)."""
    times, opening = [], []
    for _ in range(REPEAT):
        t = time.perf_counter()
        reader = open_reader()
        con = reader.connection()
        opening.append(time.perf_counter() - t)
        metrics.complete_runs(con, DS)
        metrics.queue_per_poll(con, DS)
        metrics.queue_per_interval(con, DS, interval="15min")
        metrics.wait_stats(metrics.waits(con, DS))
        metrics.wait_outcomes(con, DS)
        metrics.demand_per_interval(con, DS, interval="1h")
        times.append(time.perf_counter() - t)
        reader.close()
    return {"total_s": statistics.median(times), "open_s": statistics.median(opening)}


def day_rows(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT count(*) FROM {DS}.session_states").fetchall()[0][0]


def main() -> None:
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    days, run_rows = args.get("days", 365), args.get("run_rows", 100)
    work = OUT / "postgres"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result: dict[str, Any] = {"days": days, "run_rows": run_rows}
    with running() as server:
        result["load_rows"] = args.get("load_rows", 200_000)
        result["load_rows_per_s"] = load_rate(server, result["load_rows"], work)

        db = work / "desk.duckdb"
        con = duckdb.connect(str(db))
        runs = days * 86400 // RUN_EVERY_S
        t = time.perf_counter()
        make_history(con, runs, run_rows)
        snapshot.publish(con, db, [DS])
        result["duckdb_build_s"] = time.perf_counter() - t
        year_url = server.create_database("bench_year")
        week_url = server.create_database("bench_week")
        t = time.perf_counter()
        copy_to_postgres(con, year_url)
        result["postgres_copy_s"] = time.perf_counter() - t
        copy_to_postgres(con, week_url, since_i=runs - 7 * 86400 // RUN_EVERY_S)
        result["history_rows"] = con.execute(f"SELECT count(*) FROM {DS}.session_states"
                                             ).fetchall()[0][0]
        con.close()

        # the second-to-last day, whole: a window as a notebook asks for it
        day = (datetime.fromtimestamp(T0, UTC) + timedelta(days=days - 2)).date()

        def remote(url: str) -> warehouse.Reader:
            return warehouse.Reader(warehouse.destination("postgres", url), DS, day, day)

        def local() -> Reader:
            return Reader(db, day, day)

        probe = local()
        result["window_rows"] = day_rows(probe.connection())
        probe.close()
        result["duckdb_read_s"] = notebook_read(local)
        result["postgres_no_index_read_s"] = notebook_read(lambda: remote(year_url))
        for url in (year_url, week_url):
            with dlt.dataset(warehouse.destination("postgres", url), DS).sql_client as client:
                indexes.create(client)
                client.execute_sql("ANALYZE")
        result["postgres_read_s"] = notebook_read(lambda: remote(year_url))
        result["postgres_week_read_s"] = notebook_read(lambda: remote(week_url))
        probe = remote(year_url)
        probe.connection()
        assert probe.pulled["session_states"] == result["window_rows"], probe.pulled
    print(json.dumps(result))


if __name__ == "__main__":
    main()


def section_postgres(rep: Any, quick: bool) -> None:
    """benchmarks/run.py's section: the worker's figures in the report."""
    import common

    days = 30 if quick else 365
    r = common.worker("bench_postgres_read.py", {"days": days, "run_rows": 100,
                                            "load_rows": 50_000 if quick else 200_000},
                      timeout=1800)
    load = r["load_rows_per_s"]
    case = f"dlt loads {r['load_rows']:,} Arrow session_states rows"
    for name, label in (("postgres", "PostgreSQL (dlt's default for Arrow: csv, COPY)"),
                        ("postgres_insert", "PostgreSQL (insert_values)"),
                        ("duckdb", "DuckDB")):
        rep.add("postgres", case, f"rows/s into {label}", load[name], "rows/s", "absolute")
    rep.add("postgres", case, "PostgreSQL ÷ DuckDB rows/s (default format)",
            load["postgres"] / load["duckdb"], "", "ratio")
    case = (f"a notebook's day ({r['window_rows']:,} rows with the day either side) of "
            f"{r['days']} d history ({r['history_rows']:,} rows)")
    for key, label in (("duckdb_read_s", "DuckDB snapshot"),
                       ("postgres_read_s", "PostgreSQL, indexed"),
                       ("postgres_no_index_read_s", "PostgreSQL, no index")):
        rep.add("postgres", case, f"seconds to open the window: {label}", r[key]["open_s"],
                "s", "absolute")
        rep.add("postgres", case, f"seconds to the queue figures: {label}",
                r[key]["total_s"], "s", "absolute")
    rep.add("postgres", case, "PostgreSQL ÷ DuckDB seconds to the queue figures",
            r["postgres_read_s"]["total_s"] / r["duckdb_read_s"]["total_s"], "", "ratio",
            "<= 2")
    rep.add("postgres", f"{r['days']} d ÷ 7 d of history in PostgreSQL",
            "seconds to open the window ratio", r["postgres_read_s"]["open_s"]
            / r["postgres_week_read_s"]["open_s"], "", "ratio", "<= 1.5")
    rep.notes.append(
        "postgres: a server started by tests/support/postgres.py (fsync off) on this machine; "
        "history as in the snapshot section (runs of 100 keys every 5 minutes) copied in by "
        f"COPY ({r['postgres_copy_s']:.0f} s); the queue figures are complete_runs, "
        "queue_per_poll, queue_per_interval, waits + wait_stats, abandonment, "
        "demand_per_interval; medians of 3, each from a new reader. Load average at the "
        f"end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on a shared "
        "machine makes the absolute seconds pessimistic and noisy; the ratios hold).")
