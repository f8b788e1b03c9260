"""Worker: what publishing the read snapshot costs a run, by the size of the history.

A database in the job's layout is filled with ``history`` rows of session_states (runs of
``run_rows`` keys every 5 minutes, days after days), published once, then ``runs`` more
runs are added one at a time, each followed by the publish the job does after its load.
``python benchmarks/bench_snapshot.py '{"history": N, "runs": R, "run_rows": K}'`` prints
one JSON line: the per-run publish time (median, p90, max: compactions included), the
bytes it wrote, and the sizes of the database and the snapshot.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb
from common import OUT
from tencent_desk.models import snapshot
from tencent_desk.readers.snapshot import Reader

DS = "tencent_desk"
RUN_EVERY_S = 300
T0 = 1_764_547_200  # 2025-12-01 00:00 UTC


def make_history(con: duckdb.DuckDBPyConnection, runs: int, run_rows: int) -> None:
    con.execute(f"CREATE SCHEMA {DS}")
    con.execute(f"CREATE TABLE {DS}._dlt_loads (load_id VARCHAR, status BIGINT)")
    con.execute(f"CREATE TABLE {DS}.runs (run_id VARCHAR, status VARCHAR, started_at "
                "TIMESTAMPTZ, rows BIGINT, _dlt_load_id VARCHAR)")
    con.execute(f"CREATE TABLE {DS}.session_states (run_id VARCHAR, session_id VARCHAR, "
                "client_user_id VARCHAR, customer_service_id VARCHAR, key_type VARCHAR, "
                "state VARCHAR, raw_state VARCHAR, agent_id VARCHAR, error_code BIGINT, "
                "error_info VARCHAR, request_id VARCHAR, polled_at TIMESTAMPTZ, "
                "latency_ms DOUBLE, attempts INTEGER)")
    if runs:
        add_runs(con, 0, runs, run_rows)


def add_runs(con: duckdb.DuckDBPyConnection, first: int, n: int, run_rows: int) -> None:
    """Runs first..first+n-1, as dlt would have loaded them (one load each)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE new_runs AS
        SELECT i, to_timestamp({T0} + i * {RUN_EVERY_S}) AS at_,
               strftime(to_timestamp({T0} + i * {RUN_EVERY_S}), '%Y%m%dT%H%M%SZ') || '-'
                   || lpad(CAST(i AS VARCHAR), 8, '0') AS run_id,
               lpad(CAST({T0} + i * {RUN_EVERY_S} AS VARCHAR), 12, '0') AS load_id
        FROM range({first}, {first + n}) t(i)""")
    con.execute(f"INSERT INTO {DS}._dlt_loads SELECT load_id, 0 FROM new_runs")
    con.execute(f"INSERT INTO {DS}.runs SELECT run_id, 'complete', at_, {run_rows}, load_id "
                "FROM new_runs")
    con.execute(f"""
        INSERT INTO {DS}.session_states
        SELECT run_id, 'session-' || ((i * 7 + k) % 50000), 'user-' || (k % 5000), '@cs',
               'session', CASE WHEN k % 10 < 6 THEN 'ended' WHEN k % 10 < 8 THEN 'agent'
                               ELSE 'queuing' END, 'Agent', 'agent-' || (k % 40), 0, '',
               'Id-' || i || '-' || k, at_ + INTERVAL 1 SECOND, 40.0 + k % 17, 1
        FROM new_runs, range({run_rows}) t(k)""")


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def case(history: int, runs: int, run_rows: int) -> dict:
    work = OUT / f"snapshot-{history}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "desk.duckdb"
    folder, catalog = snapshot.paths(db)
    con = duckdb.connect(str(db))
    past = history // run_rows
    make_history(con, past, run_rows)
    t = time.perf_counter()
    snapshot.publish(con, db, [DS])
    first_s = time.perf_counter() - t
    times, written = [], []
    for i in range(past, past + runs):
        add_runs(con, i, 1, run_rows)
        before = size(folder)
        t = time.perf_counter()
        snapshot.publish(con, db, [DS])
        times.append(time.perf_counter() - t)
        written.append(max(size(folder) - before, 0))
    con.execute("CHECKPOINT")
    con.close()
    reader = Reader(db)
    t = time.perf_counter()
    n = reader.connection().execute(f"SELECT count(*) FROM {DS}.session_states").fetchone()
    read_s = time.perf_counter() - t
    times_sorted = sorted(times)
    return {"history_rows": past * run_rows, "runs": runs, "run_rows": run_rows,
            "first_publish_s": first_s,
            "publish_median_s": statistics.median(times),
            "publish_p90_s": times_sorted[int(0.9 * (len(times) - 1))],
            "publish_max_s": max(times), "publish_mean_s": statistics.mean(times),
            "bytes_per_run_median": statistics.median(written),
            "database_mb": size(db) / 1e6, "snapshot_mb": size(folder) / 1e6,
            "catalog_kb": size(catalog) / 1e3, "rows_read": n[0] if n else 0,
            "count_all_s": read_s}


def main() -> None:
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    out = [case(h, args.get("runs", 48), args.get("run_rows", 500))
           for h in args.get("history", [10_000, 1_000_000])]
    print(json.dumps({"cases": out}))


if __name__ == "__main__":
    main()
