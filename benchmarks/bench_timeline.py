"""Worker: what keeping ``session_timeline`` up to date costs a run, by days of history.

500 sessions open at any time, polled every minute (720,000 state rows a day); each session
lasts an hour. ``days`` of that history are built and brought up to date once, then one
more run of 500 polls is added and the upkeep after it timed (median of ``runs`` runs).
``python benchmarks/bench_timeline.py '{"days": [1, 10], "runs": 5}'`` prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time

import duckdb
from common import OUT
from tencent_desk.models import timeline

DS = "tencent_desk"
OPEN = 500
T0 = 1_764_547_200  # 2025-12-01 00:00 UTC


def add_runs(con: duckdb.DuckDBPyConnection, first: int, n: int) -> None:
    """Minute runs first..first+n-1: each polls the 500 sessions open then (a session is
    number i // 60 * 500 + k: a new batch of 500 every hour), in state by its minute."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE new_runs AS
        SELECT i, to_timestamp({T0} + i * 60) AS at_,
               strftime(to_timestamp({T0} + i * 60), '%Y%m%dT%H%M%SZ') || '-' ||
                   lpad(CAST(i AS VARCHAR), 8, '0') AS run_id
        FROM range({first}, {first + n}) t(i)""")
    con.execute(f"INSERT INTO {DS}.runs SELECT run_id, 'complete', at_, run_id FROM new_runs")
    con.execute(f"""
        INSERT INTO {DS}.session_states
        SELECT run_id, 's' || (i // 60 * {OPEN} + k), 'session', at_,
               CASE WHEN i % 60 < 5 THEN 'chatbot' WHEN i % 60 < 8 THEN 'queuing'
                    WHEN i % 60 < 59 THEN 'agent' ELSE 'ended' END,
               CASE WHEN i % 60 >= 8 THEN 'agent' || (k % 40) END, 'u' || k
        FROM new_runs, range({OPEN}) t(k)""")


def case(days: int, runs: int) -> dict:
    work = OUT / f"timeline-{days}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    con = duckdb.connect(str(work / "desk.duckdb"))
    con.execute(f"CREATE SCHEMA {DS}")
    con.execute(f"CREATE TABLE {DS}.runs (run_id VARCHAR, status VARCHAR, started_at "
                "TIMESTAMPTZ, _dlt_load_id VARCHAR)")
    con.execute(f"CREATE TABLE {DS}.session_states (run_id VARCHAR, session_id VARCHAR, "
                "key_type VARCHAR, polled_at TIMESTAMPTZ, state VARCHAR, agent_id VARCHAR, "
                "client_user_id VARCHAR)")
    past = days * 1440
    t = time.perf_counter()
    for day in range(days):
        add_runs(con, day * 1440, 1440)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    timeline.upkeep(con, DS)
    first_s = time.perf_counter() - t
    times = []
    for i in range(past, past + runs):
        add_runs(con, i, 1)
        t = time.perf_counter()
        touched = timeline.upkeep(con, DS)
        times.append(time.perf_counter() - t)
    (rows,) = con.execute(f"SELECT count(*) FROM {DS}.session_states").fetchall()[0]
    con.close()
    return {"days": days, "state_rows": rows, "build_s": build_s, "first_upkeep_s": first_s,
            "upkeep_median_s": statistics.median(times), "upkeep_max_s": max(times),
            "sessions_touched": touched}


def main() -> None:
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    print(json.dumps({"cases": [case(d, args.get("runs", 5)) for d in
                                args.get("days", [1, 10])]}))


if __name__ == "__main__":
    main()
