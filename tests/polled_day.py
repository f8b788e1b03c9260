"""A simulated day polled at a fixed interval by the real client over loopback, written in
the pipeline's table layout (fast: plain DuckDB inserts instead of one dlt run per poll),
with the simulator's truth beside it. For tests of the metrics against the truth."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from tencent_desk.api.client import Key
from tencent_desk.job.rows import to_table
from tencent_desk.models import poll_views
from tencent_desk.simulator import Population

from .conftest import Sim, make_client


def poll_day(sim: Sim, db: Path, start_h: float, end_h: float, every_s: float,
             leaves: dict[str, float] | None = None) -> int:
    """Poll ``sim`` from ``start_h`` to ``end_h`` (hours of the simulated day) every
    ``every_s`` seconds; returns the number of polls. ``leaves``: sessions that leave the
    seed at that (model) time, polled no more."""
    leaves = leaves or {}
    pop: Population = sim.population
    day = pop.config.day_start
    arrivals = sorted((pop.segments(k.session_id)[0].start, k.session_id)
                      for k in pop.session_keys())
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA tencent_desk")
    ended: set[str] = set()
    polls = 0
    t = day + start_h * 3600
    client = make_client(sim.url, max_concurrency=32)

    async def poll_all() -> None:
        nonlocal t, polls
        async with client:
            while t <= day + end_h * 3600:
                sim.clock.set(t)
                keys = [Key(session_id=sid) for a, sid in arrivals
                        if a <= t and sid not in ended and t < leaves.get(sid, t + 1)]
                answers = await client.get_many(keys)
                run_id = f"run{polls:05d}"
                table = to_table(answers, run_id, Counter())
                ended.update(s for s, st in zip(table["session_id"].to_pylist(),
                                                table["state"].to_pylist(), strict=True)
                             if st == "ended")
                _append(con, "session_states", table)
                at = datetime.fromtimestamp(t, UTC)
                _append(con, "runs", pa.Table.from_pylist([{
                    "run_id": run_id, "status": "complete", "started_at": at,
                    "finished_at": at, "keys": len(keys), "rows": len(answers)}]))
                polls += 1
                t += every_s

    asyncio.run(poll_all())
    assert poll_views.create(con, "tencent_desk")  # as the job makes them after each load
    con.execute("CREATE SCHEMA desk_simulator")
    con.register("truth_rows", pa.Table.from_pylist(list(pop.truth_rows())))
    con.execute("CREATE TABLE desk_simulator.truth AS SELECT * FROM truth_rows")
    con.close()
    return polls


def _append(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register("batch", table)
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = "
                         "'tencent_desk' AND table_name = ?", [name]).fetchall()[0][0]
    verb = "INSERT INTO" if exists else "CREATE TABLE"
    con.execute(f"{verb} tencent_desk.{name} {'AS ' if not exists else ''}SELECT * FROM batch")
    con.unregister("batch")
