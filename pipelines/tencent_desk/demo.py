"""``desk-sessions demo``: a simulated working day, polled by the real job, in one minute.

The simulator serves a seeded day of sessions on loopback. Every 5-15 simulated minutes
the demo does what a scheduled deployment does: Desk's SessionEventNotify callbacks of the
events since the last poll reach the receiver (``desk-sessions listen``, on loopback too),
and one ``desk-sessions run`` with no seed file loads them and polls the open sessions.
Rows are stamped with the simulator's virtual clock, so they span the simulated day. The
simulator's true state history is written beside them (schema ``desk_simulator``) so the
notebooks can compare what polling saw with what really happened.
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import shutil
import tempfile
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from tencent_desk.core import settings
from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.settings import TRUTH_SCHEMA
from tencent_desk.core.sql import ident
from tencent_desk.intake.receiver import Receiver, ReceiverConfig
from tencent_desk.intake.spool import spool_dir
from tencent_desk.models import snapshot
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)
from tencent_desk.simulator.callbacks import Callback, Sender, plan, send_due

log = logging.getLogger("desk_sessions")

# The truth's columns, for a day without a session (a small --sessions may draw none).
_UTC_TIME = pa.timestamp("us", tz="UTC")
EMPTY_TRUTH = pa.schema([("session_id", pa.string()), ("client_user_id", pa.string()),
                         ("customer_service_id", pa.string()), ("state", pa.string()),
                         ("agent_id", pa.string()), ("started_at", _UTC_TIME),
                         ("ended_at", _UTC_TIME)])

DEMO_SDKAPPID = 1400000000
DEMO_ADMIN = "administrator"


def run_demo(args: argparse.Namespace, *, every_min: tuple[float, float] = (5, 15)) -> int:
    """The demo as ``args`` say, a poll every ``every_min`` minutes (drawn in that range)."""
    database: Path = args.database.expanduser().absolute()
    fresh_database(database)
    population = Population(PopulationConfig(seed=args.seed, sessions_per_day=args.sessions,
                                             agents=args.agents))
    day = population.config.day_start
    start, end = day + args.start_hour * 3600, day + args.end_hour * 3600
    clock = VirtualClock(start)
    # A throwaway key: the simulator and the job share it for this process only.
    key = secrets.token_hex(32)
    app = SimulatorApp(population, SimulatorConfig(DEMO_SDKAPPID, DEMO_ADMIN, key,
                                                   seed=args.seed), model_clock=clock)
    callbacks = plan(population)
    receiver = Receiver(ReceiverConfig(DEMO_SDKAPPID, spool_dir(database), seal_after_s=0.2))
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="desk-demo-"))
    t0, polls, rows = time.monotonic(), 0, 0
    log.info("simulated day %s: %d sessions; polling %02d:00-%02d:00 every %g-%g minutes",
             time.strftime("%Y-%m-%d", time.gmtime(day)), len(population),
             args.start_hour, args.end_hour, *every_min)
    try:
        with serve_in_thread(app) as url, serve_in_thread(receiver) as listener:
            sender = Sender(listener + "/desk/callback", DEMO_SDKAPPID)
            overrides = {"api_url": url, "sdkappid": DEMO_SDKAPPID, "identifier": DEMO_ADMIN,
                         "secret_key": key, "max_qps": 1000, "max_concurrency": 32}
            t = start
            while t <= end:
                clock.set(t)
                callbacks = deliver(sender, callbacks, t, database)
                row = run(RunOptions(seed=None, database=database,
                                     pipelines_dir=str(work / "dlt"), overrides=overrides,
                                     progress=False), clock=clock)
                polls += 1
                rows += row.get("rows", 0)
                log.info("%s  %3d keys: %d chatbot, %d queuing, %d offered, %d with an agent",
                         time.strftime("%H:%M", time.gmtime(t)), row["keys"], row["n_chatbot"],
                         row["n_queuing"], row["n_waiting_for_agent"], row["n_agent"])
                t += rng.uniform(*every_min) * 60
            if getattr(args, "records", False):
                records = _load_records(database, work, overrides, clock, day)
                log.info("loaded %d session records of the day", records)
        write_truth(database, population)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - t0
    print(f"demo: {polls} polls of a simulated day ({args.start_hour:02.0f}:00-"
          f"{args.end_hour:02.0f}:00), {rows} rows, in {took:.0f} s\n"
          f"  data: {database} (dataset {settings.DEFAULT_DATASET}; simulator truth in "
          f"{TRUTH_SCHEMA}.truth)\n"
          f"  notebooks: DESK_DUCKDB={database} .venv/bin/jupyter lab notebooks/\n"
          f"  or query:  .venv/bin/python -c \"import duckdb; print(duckdb.connect("
          f"'{snapshot.paths(database)[1]}', read_only=True).sql('select state, count(*) "
          f"from {settings.DEFAULT_DATASET}.session_states group by 1'))\"")
    return 0


def fresh_database(database: Path) -> None:
    """Remove a database file with its snapshot and spool: the demo starts over."""
    folder, catalog = snapshot.paths(database)
    for stale in (database, database.with_name(database.name + ".wal"), catalog):
        stale.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(spool_dir(database), ignore_errors=True)


def _load_records(database: Path, work: Path, overrides: dict, clock: VirtualClock,
                  day: float) -> int:
    """The day's session records up to an hour after the last poll, as a backfill."""
    clock.advance(3600)
    until = datetime.fromtimestamp(clock.time(), UTC).isoformat()
    row = run(RunOptions(seed=None, poll=False, database=database,
                         pipelines_dir=str(work / "dlt"), progress=False, overrides={
                             **overrides, "records": True, "records_until": until,
                             "records_from": datetime.fromtimestamp(day, UTC).isoformat()}),
              clock=clock)
    return int(row["records"])


def deliver(sender: Sender, callbacks: list[Callback], until: float,
             database: Path) -> list[Callback]:
    """POST the callbacks due by ``until``, then wait for the receiver to seal them (the
    job loads sealed segments only). Returns those not yet due."""
    rest = send_due(sender, callbacks, until)
    deadline = time.monotonic() + 10
    while any(spool_dir(database).glob("active-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return rest


def write_truth(database: Path, population: Population,
                more: dict[str, pd.DataFrame] | None = None) -> None:
    """The simulator's truth beside the job's data (schema ``desk_simulator``): ``truth``, the
    true state segments, and the ``more`` tables; published for readers with the rest."""
    rows = population.truth_rows()  # in batches: a list of every row's dict is ~1 KB a row
    batches = [pa.RecordBatch.from_pylist(b)
               for b in iter(lambda: list(islice(rows, 50_000)), [])]
    table = pa.Table.from_batches(batches) if batches else EMPTY_TRUTH.empty_table()
    con = duckdb.connect(str(database))
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {TRUTH_SCHEMA}")
        tables = {"truth": table, **(more or {})}
        for name, rows in tables.items():
            con.register("truth_rows", rows)
            con.execute(f"CREATE OR REPLACE TABLE {TRUTH_SCHEMA}.{ident(name)} AS "
                        "SELECT * FROM truth_rows")
            con.unregister("truth_rows")
        snapshot.publish(con, database, [], [(TRUTH_SCHEMA, name) for name in tables])
    finally:
        con.close()
