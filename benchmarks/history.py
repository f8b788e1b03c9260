"""A job database with days of history at 1-minute polls, built fast and reproducibly.

The tables are the job's own: a tiny ``desk-sessions demo`` makes them (whatever columns the
job writes today), its rows are cleared, and the history is generated straight into them by
DuckDB from a seeded population (the simulator's daily profile and durations, vectorized):
one run a minute polling every open session (a session's polls stop once its closing
callback was loaded, as the job does), the callbacks each run loaded, and an hourly
``desk-sessions records`` run loading the records of the hour before. It is published for
readers as the job does (``post_load.for_readers``: timeline upkeep, then the snapshot; every
``PUBLISH_DAYS`` days, which gives the files a day at a time would), and kept under
``benchmarks/out/history/<key>/`` for the next run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from common import BENCH, DESK, env
from tencent_desk.api import states
from tencent_desk.demo import DEMO_SDKAPPID as SDKAPPID  # every table carries the app
from tencent_desk.run import post_load
from tencent_desk.simulator.model import DAY_START, HOURLY_PROFILE, PopulationConfig

DS = "tencent_desk"
# Bump when what is generated changes: the cached history is rebuilt (6: the timeline
# and the intervals ledger written in order of time, the ledger with its reach).
VERSION = "6"
CACHE = BENCH / "out" / "history"
# A history ends at 15:00 UTC on a Wednesday, where its runs are measured: a peak, late in
# a weekday (a day's files rewritten by a publish hold the most rows then).
END_HOUR, END_WEEKDAY = 15, 2
# Days loaded between two upkeeps+publishes while building: each day still gets its own
# files (a publish cuts tables by day), in a tenth of the publishes.
PUBLISH_DAYS = 10
WEEKEND = 0.4                  # arrivals on Saturdays and Sundays, relative to weekdays
AGENTS, GROUPS = 150, 5
RAW = {states.CHATBOT: "Chatbot", states.QUEUING: "Queuing",
       states.WAITING_FOR_AGENT: "WaitingForAgentAnswering", states.AGENT: "Agent"}
# The rows the demo leaves that are not the job's history.
FOREIGN_SCHEMAS = ("desk_simulator",)
CLEARED = ("_dlt_loads", "runs", "record_runs", "session_states", "session_events",
           "session_records")
REBUILT = ("session_timeline", "_timeline_state", "queue_intervals", "agent_intervals",
           "interval_sketches", "_interval_sessions", "_intervals_watermark")


@dataclass(frozen=True)
class Params:
    days: int
    open: int = 500          # sessions open at the daily peak
    seed: int = 1
    extra_min: int = 60      # minutes of population past the history (the measured runs)

    @property
    def start(self) -> float:
        """When the history starts (DAY_START is a Monday)."""
        return DAY_START + END_HOUR * 3600 + 86400 * ((END_WEEKDAY - self.days) % 7)

    def key(self) -> str:
        return f"v{VERSION}-d{self.days}-o{self.open}-s{self.seed}"


WAIT_MEAN_S = 45.0  # time in the queue (the simulator serves a FIFO; here, drawn)


def _lives(cfg: PopulationConfig, rng: np.random.Generator, arrive: np.ndarray
           ) -> dict[str, np.ndarray]:
    """When each session arriving at ``arrive`` moves on, with the simulator's shares and
    duration laws: chatbot, then (or not) the queue, the offer, an agent; or it gives up."""
    n = len(arrive)
    bot_end = arrive + rng.exponential(cfg.chatbot_mean_s, n)
    bot_only = rng.random(n) < cfg.bot_only_share
    offered = bot_end + rng.exponential(WAIT_MEAN_S, n)
    patience = rng.exponential(cfg.patience_mean_s, n)
    abandoned = ~bot_only & (bot_end + patience < offered)
    answered = offered + rng.uniform(cfg.offer_min_s, cfg.offer_max_s, n)
    handle_mu = np.log(cfg.handling_mean_s) - cfg.handling_sigma ** 2 / 2
    ended = np.where(bot_only, bot_end, np.where(
        abandoned, bot_end + patience, answered + rng.lognormal(handle_mu, cfg.handling_sigma,
                                                                n)))
    return {"bot_end": bot_end, "bot_only": bot_only, "abandoned": abandoned,
            "offered": offered, "answered": answered, "ended": ended}


def population(p: Params) -> pa.Table:
    """Sessions arriving from the start over the history and ``extra_min`` beyond: times as
    epoch seconds, and the minute index (run) of each one's first and last poll."""
    cfg, start = PopulationConfig(), p.start
    rng = np.random.default_rng(p.seed)
    minutes = p.days * 1440 + p.extra_min
    t = start + 60.0 * np.arange(minutes)
    hour = (t - DAY_START) % 86400 / 3600 + 1 / 120
    profile = np.interp(hour, np.arange(-0.5, 25.0), (HOURLY_PROFILE[-1], *HOURLY_PROFILE,
                                                     HOURLY_PROFILE[0]))
    weekday = ((t - DAY_START) // 86400) % 7 < 5  # DAY_START is a Monday
    pilot = _lives(cfg, np.random.default_rng(p.seed + 1), np.zeros(100_000))
    per_min = p.open / (pilot["ended"].mean() / 60)  # Little: open = rate x time
    counts = rng.poisson(per_min * profile * np.where(weekday, 1.0, WEEKEND))
    n = int(counts.sum())
    arrive = np.repeat(t, counts) + rng.uniform(0, 60, n)
    life = _lives(cfg, rng, arrive)
    bot_only, abandoned, ended = life["bot_only"], life["abandoned"], life["ended"]
    served_mask = ~bot_only & ~abandoned
    end_lost = rng.random(n) < 0.02  # its closing callback lost: a poll sees it ended
    after_end = np.ceil((ended - start) / 60).astype(np.int64)
    kind = np.where(bot_only, "ChatbotEnded", np.where(
        abandoned, "UserTimeout", np.where(rng.random(n) < cfg.agent_ended_share,
                                           "AgentEndedSession", "UserEndedSession")))
    rated = served_mask & (rng.random(n) < cfg.rated_share)
    return pa.table({
        "n": np.arange(n), "user_n": rng.integers(0, 200_000, n),
        "cs": np.array(cfg.customer_service_ids)[rng.integers(0, 3, n)],
        "agent_n": pa.array(rng.integers(0, AGENTS, n), mask=~served_mask),
        "web": rng.random(n) < cfg.web_share,
        "arrive": arrive, "queued": pa.array(life["bot_end"], mask=bot_only),
        "offered": pa.array(life["offered"], mask=~served_mask),
        "answered": pa.array(life["answered"], mask=~served_mask),
        "ended": ended, "end_status": kind,
        "satisfaction": pa.array(rng.integers(1, 6, n), mask=~rated),
        "end_lost": end_lost, "p0": np.ceil((arrive - start) / 60).astype(np.int64),
        "p1": np.where(end_lost, after_end, after_end - 1),
    })


def _insert(con: duckdb.DuckDBPyConnection, table: str, select: str) -> int:
    """Insert by name the columns of ``select`` the table has (the job's schema decides)."""
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = ?", [DS, table]).fetchall()}
    cols = [c for c in con.sql(f"SELECT * FROM ({select}) LIMIT 0").columns if c in have]
    if "sdkappid" in have and "sdkappid" not in cols:  # one app, as the demo's
        cols.append(f"{SDKAPPID} AS sdkappid")
    (n,) = con.execute(f"INSERT INTO {DS}.{table} BY NAME SELECT {', '.join(cols)} "
                       f"FROM ({select})").fetchone() or (0,)
    return int(n)


def _ts(epoch: str) -> str:
    return f"to_timestamp({epoch})"


def _sid(n: str) -> str:
    """A uuid4-looking session id, fixed by the session's number (ids are in no order)."""
    h = f"md5('session-' || {n})"
    return (f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-4' || substr({h}, 14, 3) "
            f"|| '-a' || substr({h}, 18, 3) || '-' || substr({h}, 21, 12)")


def _run_ids(con: duckdb.DuckDBPyConnection, p: Params) -> None:
    """Every poll run (one a minute) and records run (hh:10:30, the hour before) by index."""
    minutes, start = p.days * 1440 + p.extra_min, p.start
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE poll_runs AS
        SELECT i, {start} + 60 * i AS at_,
               strftime({_ts(f'{start} + 60 * i')}, '%Y%m%dT%H%M%SZ') || '-' ||
                   substr(md5('run-{p.seed}-' || i), 1, 8) AS run_id,
               printf('%d.%06d', CAST({start} + 60 * i + 5 AS BIGINT), i % 1000000) AS load_id
        FROM range({minutes}) t(i)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE record_runs_ AS
        SELECT h, {start} + 3600 * (h + 1) + 630 AS at_,
               strftime({_ts(f'{start} + 3600 * (h + 1) + 630')}, '%Y%m%dT%H%M%SZ') || '-' ||
                   substr(md5('records-{p.seed}-' || h), 1, 8) AS run_id,
               printf('%d.%06d', CAST({start} + 3600 * (h + 1) + 640 AS BIGINT), h) AS load_id
        FROM range({minutes // 60}) t(h)""")


def add_minutes(con: duckdb.DuckDBPyConnection, start: float, m0: int, m1: int, status: str,
                hash_: str) -> dict[str, int]:
    """Load the runs of minutes [m0, m1) (and the records runs among them) as the job
    would: their polls, the callbacks they loaded, the records, then their runs rows and
    dlt's load rows. Reads the temp tables of :func:`_run_ids` and view ``sess``."""
    t0, t1 = start + 60 * m0, start + 60 * m1
    live = f"FROM sess WHERE p0 < {m1} AND p1 >= {m0}"
    poll_t = f"{start} + 60 * i"
    state = f"""CASE WHEN {poll_t} >= ended THEN 'ended'
        WHEN queued IS NULL OR {poll_t} < queued THEN 'chatbot'
        WHEN offered IS NULL OR {poll_t} < offered THEN 'queuing'
        WHEN {poll_t} < answered THEN 'waiting_for_agent' ELSE 'agent' END"""
    raw = "CASE state " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in RAW.items()) + " END"
    rows = _insert(con, "session_states", f"""
        SELECT r.run_id, sid AS session_id, user_id AS client_user_id,
            cs AS customer_service_id, 'session' AS key_type, state, {raw} AS raw_state,
            CASE WHEN state IN ('agent', 'waiting_for_agent') THEN agent_id END AS agent_id,
            CASE WHEN state = 'ended' THEN 141005 ELSE 0 END AS error_code,
            CASE WHEN state = 'ended' THEN 'session over' ELSE '' END AS error_info,
            'Id-' || substr(md5(r.run_id || sid), 1, 20) AS request_id,
            {_ts('r.at_ + 0.2 + (n % 800) / 1000.0')} AS polled_at,
            30.0 + n % 40 AS latency_ms, 1 AS attempts
        FROM (SELECT *, {state} AS state FROM (
                SELECT *, {_sid('n')} AS sid, 'user' || lpad(CAST(user_n AS VARCHAR), 7, '0')
                    AS user_id, 'agent' || lpad(CAST(agent_n AS VARCHAR), 4, '0') AS agent_id,
                    unnest(range(greatest(p0, {m0}), least(p1, {m1 - 1}) + 1)) AS i {live}))
        JOIN poll_runs r USING (i)""")
    # Each callback is loaded by the first run at or after it.
    kinds = [("SessionBegin", "arrive", "NULL"), ("ChatBot.UserSendMsg", "arrive + 3", "NULL"),
             ("TransferToAgent.Start", "queued", "NULL"),
             ("TransferToAgent.Success", "answered", "agent_id"),
             ("SessionEnd", "CASE WHEN NOT end_lost THEN ended END", "agent_id")]
    events = " UNION ALL ".join(
        f"SELECT n, sid, user_id, cs, web, '{name}' AS event, {at} AS et, {who} AS agent_id, "
        f"{'satisfaction' if name == 'SessionEnd' else 'NULL'} AS satisfaction, {k} AS k "
        f"FROM s WHERE {at} IS NOT NULL" for k, (name, at, who) in enumerate(kinds))
    loaded = _insert(con, "session_events", f"""
        WITH s AS (SELECT *, {_sid('n')} AS sid, 'user' || lpad(CAST(user_n AS VARCHAR), 7,
                   '0') AS user_id, 'agent' || lpad(CAST(agent_n AS VARCHAR), 4, '0')
                   AS agent_id FROM sess WHERE arrive < {t1} AND ended >= {t0} - 60)
        SELECT e.sid AS session_id, event, {_ts('et')} AS event_time,
            user_id AS client_user_id, cs AS customer_service_id, e.agent_id,
            CASE WHEN web THEN 'Web' ELSE 'SDK' END AS channel_type,
            false AS is_contact_user, e.satisfaction, 'sim-' || n || '-' || k AS request_id,
            {_ts('r.at_ + 0.1')} AS received_at, r.run_id
        FROM ({events}) e JOIN poll_runs r ON r.i = CAST(ceil((et - {start}) / 60) AS BIGINT)
        WHERE r.i >= {m0} AND r.i < {m1}""")
    records = _insert(con, "session_records", f"""
        SELECT {_sid('n')} AS session_id, 'user' || lpad(CAST(user_n AS VARCHAR), 7, '0')
                AS client_user_id, 'agent' || lpad(CAST(agent_n AS VARCHAR), 4, '0')
                AS agent_id, CAST(3000 + agent_n % {GROUPS} AS VARCHAR) AS agent_group_id,
            CASE WHEN agent_n IS NOT NULL THEN 'Group ' || (agent_n % {GROUPS}) END
                AS agent_group_name, CASE WHEN web THEN 'Web' ELSE 'SDK' END AS channel_type,
            CAST(round(ended - arrive) AS BIGINT) AS duration_s, end_status, satisfaction,
            {_ts('round(ended)')} AS record_timestamp,
            {_ts('round(ended) - round(ended - arrive)')} AS started_at,
            {_ts('round(ended)')} AS ended_at, r.run_id
        FROM sess JOIN record_runs_ r ON r.h = CAST(floor((ended - {start}) / 3600) AS BIGINT)
        WHERE r.at_ >= {t0} AND r.at_ < {t1}""")
    counts = ", ".join(f"count(*) FILTER (WHERE s.state = '{x}') AS n_{x}" for x in states.ALL)
    # The chunk's runs as constants: zone maps then skip the history in the counts below.
    ids = con.execute(f"SELECT min(run_id), max(run_id) FROM poll_runs WHERE i >= {m0} AND "
                      f"i < {m1} UNION ALL SELECT min(run_id), max(run_id) FROM record_runs_ "
                      f"WHERE at_ >= {t0} AND at_ < {t1}").fetchall()
    polls, recs = (f"run_id BETWEEN '{lo}' AND '{hi}'" for lo, hi in ids)
    _insert(con, "runs", f"""
        SELECT r.run_id, '{status}' AS status, {_ts('r.at_')} AS started_at,
            {_ts('r.at_ + 2')} AS finished_at, 'sessions from events' AS seed,
            'custom' AS region, '127.0.0.1:8000' AS api_host, 200.0 AS max_qps,
            32 AS max_concurrency, count(s.run_id) AS seed_rows, count(s.run_id) AS keys,
            count(s.run_id) AS rows, 0 AS not_asked, 0 AS rejects, 0 AS duplicates,
            0 AS skipped_ended, 0 AS errors, count(s.run_id) AS calls, 0 AS retries,
            0 AS throttled, 0 AS renewed_sigs, 0 AS fallbacks,
            count(s.run_id) / 2.0 AS calls_per_second, {counts},
            coalesce(any_value(e.n), 0) AS events_loaded, 0 AS events_unknown,
            r.load_id AS _dlt_load_id, substr(md5(r.run_id), 1, 14) AS _dlt_id
        FROM poll_runs r
        LEFT JOIN (SELECT * FROM {DS}.session_states WHERE {polls}) s USING (run_id)
        LEFT JOIN (SELECT run_id, count(*) AS n FROM {DS}.session_events WHERE {polls}
                   GROUP BY 1) e USING (run_id)
        WHERE r.i >= {m0} AND r.i < {m1} GROUP BY ALL""")
    _insert(con, "record_runs", f"""
        SELECT r.run_id, '{status}' AS status, {_ts('r.at_')} AS started_at,
            {_ts('r.at_ + 5')} AS finished_at, 'custom' AS region, 0 AS rows,
            coalesce(x.n, 0) AS records, {_ts(f'{start} + 3600 * r.h')} AS records_from,
            {_ts(f'{start} + 3600 * (r.h + 1)')} AS records_until,
            r.load_id AS _dlt_load_id, substr(md5(r.run_id), 1, 14) AS _dlt_id
        FROM record_runs_ r
        LEFT JOIN (SELECT run_id, count(*) AS n FROM {DS}.session_records WHERE {recs}
                   GROUP BY 1) x USING (run_id)
        WHERE r.at_ >= {t0} AND r.at_ < {t1}""")
    _insert(con, "_dlt_loads", f"""
        SELECT load_id, '{DS}' AS schema_name, 0 AS status, {_ts('at_ + 3')} AS inserted_at,
            '{hash_}' AS schema_version_hash FROM (
            SELECT load_id, at_ FROM poll_runs WHERE i >= {m0} AND i < {m1} UNION ALL
            SELECT load_id, at_ FROM record_runs_ WHERE at_ >= {t0} AND at_ < {t1})""")
    return {"state_rows": rows, "events": loaded, "records": records}


def open_generator(db: Path, p: Params, sess: pa.Table, **config: object
                   ) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(db), config=config)  # type: ignore[arg-type]
    con.register("sess", sess)
    _run_ids(con, p)
    return con


def template(db: Path) -> str:
    """The job's own tables, made by a tiny demo, emptied; returns dlt's schema hash."""
    run = subprocess.run([DESK, "demo", "--database", str(db), "--sessions", "40",
                          "--start-hour", "9", "--end-hour", "9.5", "--no-progress",
                          "--log-level", "ERROR"], env=env(), cwd=db.parent,
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"desk-sessions demo failed: {run.stderr[-1500:]}")
    con = duckdb.connect(str(db))
    try:
        (hash_,) = con.execute(f"SELECT schema_version_hash FROM {DS}._dlt_loads "
                               "ORDER BY load_id DESC LIMIT 1").fetchone() or ("",)
        for schema in FOREIGN_SCHEMAS:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for table in CLEARED:
            con.execute(f"DELETE FROM {DS}.{table}")
        for table in REBUILT:
            con.execute(f"DROP TABLE IF EXISTS {DS}.{table}")
    finally:
        con.close()
    for path in db.parent.glob(f"{db.stem}.read*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return str(hash_)


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 1e6


def build(p: Params, log: bool = True) -> dict:
    """The history of ``p`` in ``CACHE/<key>/desk.duckdb`` (built once, then reused);
    returns what was built (rows, sizes, build time)."""
    folder = CACHE / p.key()
    info = folder / "built.json"
    if info.exists():
        return {**json.loads(info.read_text()), "cached": True}
    for old in CACHE.glob("v*"):  # histories of earlier versions of this generator
        if not old.name.startswith(f"v{VERSION}-"):
            shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = folder / "desk.duckdb"
    started = time.perf_counter()
    hash_ = template(db)
    sess = population(p)
    con = open_generator(db, p, sess, memory_limit="4GB", threads=2,
                         preserve_insertion_order=True)
    totals = {"state_rows": 0, "events": 0, "records": 0}
    upkeep_s = 0.0
    try:
        for day in range(p.days):
            t = time.perf_counter()
            got = add_minutes(con, p.start, day * 1440, (day + 1) * 1440, "complete", hash_)
            totals = {k: totals[k] + got[k] for k in totals}
            line = f"  history day {day + 1}/{p.days}: generated in {time.perf_counter() - t:.1f} s"
            if (day + 1) % PUBLISH_DAYS == 0 or day + 1 == p.days:
                t = time.perf_counter()
                post_load.for_readers(con, db, DS)
                upkeep_s += time.perf_counter() - t
                line += f", upkeep+publish {time.perf_counter() - t:.1f} s"
            if log:
                print(line, file=sys.stderr, flush=True)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    out = {**asdict(p), **totals, "sessions": sess.num_rows, "schema_hash": hash_,
           "runs": p.days * 1440, "build_s": time.perf_counter() - started,
           "publish_s": upkeep_s, "database_mb": size_mb(db),
           "snapshot_mb": size_mb(folder / "desk.read")}
    info.write_text(json.dumps(out))
    return {**out, "cached": False}
