"""The simulator's truth (the real state segments it wrote beside the job's data), as the
figures the analysis estimates, to check those estimates against. Only notebooks, tests and
benchmarks read it; production code never does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import pandas as pd
from tencent_desk.analysis.buckets import bucket_sql, interval_seconds
from tencent_desk.api import states as st
from tencent_desk.core.frames import frame
from tencent_desk.core.settings import TRUTH_SCHEMA
from tencent_desk.core.sql import ident, literal, literals
from tencent_desk.simulator.schedule import Schedule


def _merged(states: Sequence[str]) -> str:
    return literal(st.merged(list(states)))


def has_truth(con: duckdb.DuckDBPyConnection, truth_schema: str = TRUTH_SCHEMA) -> bool:
    """Whether the simulator wrote its truth table into this database."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name = 'truth'",
        [truth_schema],
    ).fetchone()
    return bool(found and found[0])


def _instants(at: Sequence[datetime] | pd.Series | pd.DatetimeIndex) -> list[datetime]:
    return [pd.Timestamp(t).to_pydatetime() for t in at]


def truth_queue_at(
    con: duckdb.DuckDBPyConnection,
    at: Sequence[datetime] | pd.Series | pd.DatetimeIndex,
    truth_schema: str = TRUTH_SCHEMA,
) -> pd.DataFrame:
    """The true number of sessions queuing / waiting_for_agent / waiting at each instant."""
    sql = f"""
    SELECT a.t AS snapshot_at,
           count(DISTINCT tr.session_id) FILTER (WHERE tr.state = '{st.QUEUING}') AS queuing,
           count(DISTINCT tr.session_id) FILTER (WHERE tr.state = '{st.WAITING_FOR_AGENT}')
               AS waiting_for_agent,
           count(DISTINCT tr.session_id) FILTER (WHERE tr.state IN ({literals(st.WAIT_STATES)}))
               AS waiting
    FROM (SELECT unnest($at::TIMESTAMPTZ[]) AS t) a
    LEFT JOIN {ident(truth_schema)}.truth tr
         ON tr.started_at <= a.t AND (tr.ended_at IS NULL OR a.t < tr.ended_at)
    GROUP BY a.t ORDER BY a.t"""
    return frame(con, sql, {"at": _instants(at)})


def truth_agent_concurrency_at(
    con: duckdb.DuckDBPyConnection,
    at: Sequence[datetime] | pd.Series | pd.DatetimeIndex,
    truth_schema: str = TRUTH_SCHEMA,
) -> pd.DataFrame:
    """The true chats (sessions in ``agent``) per agent at each instant, zero-filled."""
    ts = ident(truth_schema)
    sql = f"""
    WITH a AS (SELECT DISTINCT unnest($at::TIMESTAMPTZ[]) AS t),
    agents AS (SELECT DISTINCT agent_id FROM {ts}.truth WHERE state = '{st.AGENT}'),
    chats AS (
        SELECT a.t, tr.agent_id, count(DISTINCT tr.session_id) AS chats
        FROM a JOIN {ts}.truth tr
             ON tr.state = '{st.AGENT}' AND tr.started_at <= a.t
            AND (tr.ended_at IS NULL OR a.t < tr.ended_at)
        GROUP BY ALL
    )
    SELECT a.t AS snapshot_at, g.agent_id, coalesce(c.chats, 0) AS chats
    FROM a CROSS JOIN agents g LEFT JOIN chats c ON c.t = a.t AND c.agent_id = g.agent_id
    ORDER BY a.t, g.agent_id"""
    return frame(con, sql, {"at": _instants(at)})


def _truth_episodes_cte(ts: str, states: Sequence[str]) -> str:
    # Consecutive segments of one (merged) state: one episode, as islands are for polls.
    label = _merged(states)
    return f"""
    seg AS (
        SELECT session_id, started_at, ended_at,
               CASE WHEN state IN ({literals(states)}) THEN {label} ELSE state END AS state
        FROM {ts}.truth
    ),
    grouped AS (
        SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY started_at)
                  - row_number() OVER (PARTITION BY session_id, state ORDER BY started_at) AS grp
        FROM seg
    ),
    episodes AS (
        SELECT session_id, state, min(started_at) AS started_at,
               CASE WHEN bool_and(ended_at IS NOT NULL) THEN max(ended_at) END AS ended_at
        FROM grouped GROUP BY session_id, state, grp
    ),
    ordered AS (
        SELECT *, lag(state) OVER w AS prev_state, lead(state) OVER w AS next_state,
               lead(started_at) OVER w AS next_started_at,
               min(started_at) FILTER (WHERE state = '{st.AGENT}')
                   OVER (PARTITION BY session_id) AS first_agent_at
        FROM episodes WINDOW w AS (PARTITION BY session_id ORDER BY started_at)
    )"""


def truth_waits(
    con: duckdb.DuckDBPyConnection,
    truth_schema: str = TRUTH_SCHEMA,
    states: Sequence[str] = st.WAIT_STATES,
) -> pd.DataFrame:
    """Every true wait, shaped like ``waits`` (lower_s = upper_s = wait_s).

    An ``agent`` episode not preceded by a wait adds a zero wait, as ``waits`` adds an unseen
    one. outcome: answered, ended (the session's last episode), other, or ongoing (no end yet).
    """
    label = _merged(states)
    sql = f"""WITH {_truth_episodes_cte(ident(truth_schema), states)}
    SELECT session_id, started_at, ended_at, epoch(ended_at) - epoch(started_at) AS wait_s,
           epoch(ended_at) - epoch(started_at) AS lower_s,
           epoch(ended_at) - epoch(started_at) AS upper_s,
           CASE WHEN ended_at IS NULL THEN 'ongoing'
                WHEN next_state = '{st.AGENT}' THEN 'answered'
                WHEN next_state IS NULL THEN 'ended'
                ELSE 'other' END AS outcome,
           CASE WHEN next_state = '{st.AGENT}' THEN next_started_at END AS answered_at,
           coalesce(next_state = '{st.AGENT}' AND next_started_at = first_agent_at, FALSE)
               AS first_answer
    FROM ordered WHERE state = {label}
    UNION ALL
    SELECT session_id, started_at, started_at, 0.0, 0.0, 0.0, 'answered', started_at,
           started_at = first_agent_at
    FROM ordered WHERE state = '{st.AGENT}' AND prev_state IS DISTINCT FROM {label}
    ORDER BY session_id, answered_at NULLS LAST, started_at"""
    return frame(con, sql)


def truth_abandonment(
    con: duckdb.DuckDBPyConnection, truth_schema: str = TRUTH_SCHEMA
) -> pd.DataFrame:
    """Every session that truly waited, with the outcome ``abandonment`` would give it.

    ended_at is the session's end (its last segment's), NULL while it goes on.
    """
    ts = ident(truth_schema)
    label = _merged(st.WAIT_STATES)
    sql = f"""WITH {_truth_episodes_cte(ts, st.WAIT_STATES)},
    last_seen AS (
        SELECT session_id, arg_max(state, started_at) AS last_state FROM {ts}.truth
        GROUP BY session_id
    ),
    per_session AS (
        SELECT session_id, bool_or(state = '{st.AGENT}') AS reached_agent,
               min(started_at) FILTER (WHERE state = {label}) AS started_waiting,
               arg_max(state, started_at) = {label} AS last_waiting_episode,
               CASE WHEN bool_and(ended_at IS NOT NULL) THEN max(ended_at) END AS ended_at
        FROM ordered GROUP BY session_id
        HAVING bool_or(state = {label})
    )
    SELECT session_id, started_waiting, ended_at, reached_agent, last_state,
           CASE WHEN reached_agent THEN 'answered'
                WHEN NOT last_waiting_episode THEN 'left_queue'
                WHEN ended_at IS NULL THEN 'ongoing'
                WHEN last_state = '{st.WAITING_FOR_AGENT}' THEN 'offered'
                ELSE 'abandoned' END AS outcome
    FROM per_session JOIN last_seen USING (session_id)
    ORDER BY started_waiting, session_id"""
    return frame(con, sql)


def truth_demand_per_interval(
    con: duckdb.DuckDBPyConnection,
    interval: str | timedelta | float = "1h",
    truth_schema: str = TRUTH_SCHEMA,
) -> pd.DataFrame:
    """The true arrivals, answered chats, AHT and load per interval, as ``demand_per_interval``.

    arrivals: sessions whose first wait or agent episode began in the interval; answered and
    aht_s: agent episodes that began in it (aht_s over those that ended); load_erlangs: the
    time average of chats with an agent over the whole interval.
    """
    w = interval_seconds(interval)
    label = _merged(st.WAIT_STATES)
    ends = "epoch(coalesce(ended_at, 'infinity'::TIMESTAMPTZ))"
    sql = f"""WITH {_truth_episodes_cte(ident(truth_schema), st.WAIT_STATES)},
    buckets AS (
        SELECT b AS b0, b + {w} AS b1
        FROM (SELECT unnest(range({bucket_sql("min(epoch(started_at))", w)},
                                  {bucket_sql("max(epoch(coalesce(ended_at, started_at)))", w)}
                                  + 1, {w})) AS b
              FROM ordered)
    ),
    arrived AS (
        SELECT b0, count(*) AS arrivals
        FROM (SELECT {bucket_sql("epoch(min(started_at))", w)} AS b0 FROM ordered
              WHERE state IN ({label}, '{st.AGENT}') GROUP BY session_id)
        GROUP BY b0
    ),
    handled AS (
        SELECT {bucket_sql("epoch(started_at)", w)} AS b0, count(*) AS answered,
               avg(epoch(ended_at) - epoch(started_at)) AS aht_s
        FROM ordered WHERE state = '{st.AGENT}' GROUP BY ALL
    ),
    load AS (
        SELECT b0, sum(least({ends}, b1) - greatest(epoch(started_at), b0)) / {w}
                   AS load_erlangs
        FROM buckets JOIN ordered
             ON state = '{st.AGENT}' AND epoch(started_at) < b1 AND {ends} > b0
        GROUP BY b0
    )
    SELECT to_timestamp(b0) AS interval_start, {w} AS interval_s,
           coalesce(a.arrivals, 0) AS arrivals, coalesce(h.answered, 0) AS answered,
           h.aht_s, coalesce(l.load_erlangs, 0) AS load_erlangs
    FROM buckets LEFT JOIN arrived a USING (b0) LEFT JOIN handled h USING (b0)
    LEFT JOIN load l USING (b0)
    ORDER BY b0"""
    return frame(con, sql)


# --- the weeks history's truth (``desk-sessions simulate history``) ----------------------

def truth_expected_rates(
    con: duckdb.DuckDBPyConnection,
    interval_s: int = 900,
    truth_schema: str = TRUTH_SCHEMA,
) -> pd.DataFrame:
    """Per group and interval (a multiple of the stored 15 minutes): expected_offered, the
    expected sessions asking for a human before the day's draw (what an oracle knows the
    evening before), day_multiplier and drawn_offered (after the draw)."""
    sql = f"""
    SELECT agent_group_id, any_value(agent_group_name) AS agent_group_name,
           to_timestamp(floor(epoch(interval_start) / $w) * $w) AS interval_start,
           $w AS interval_s, sum(expected_offered) AS expected_offered,
           any_value(day_multiplier) AS day_multiplier, sum(drawn_offered) AS drawn_offered
    FROM {ident(truth_schema)}.expected_rates
    GROUP BY agent_group_id, 3 ORDER BY agent_group_id, interval_start"""
    (stored,), = con.execute(
        f"SELECT min(interval_s) FROM {ident(truth_schema)}.expected_rates").fetchall()
    if stored and interval_s % int(stored):
        raise ValueError(f"interval_s must be a multiple of {int(stored)} s")
    return frame(con, sql, {"w": interval_s})


def truth_customers(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None = None,
    end: datetime | None = None,
    truth_schema: str = TRUTH_SCHEMA,
) -> pd.DataFrame:
    """The customers who asked for a human (queued in ``[start, end)``, default all), as
    :func:`~tencent_desk.simulator.replay.replay` takes them (queued_at in Unix seconds),
    with their true patience and what happened to them in the history."""
    sql = f"""
    SELECT session_id, agent_group_id, epoch(queued_at) AS queued_at, patience_s, offer_s,
           work_s, chatbot_s, outcome, wait_s, handle_s
    FROM {ident(truth_schema)}.customers
    WHERE ($start::TIMESTAMPTZ IS NULL OR queued_at >= $start)
      AND ($end::TIMESTAMPTZ IS NULL OR queued_at < $end)
    ORDER BY agent_group_id, queued_at"""
    return frame(con, sql, {"start": start, "end": end})


def truth_schedule(
    con: duckdb.DuckDBPyConnection, truth_schema: str = TRUTH_SCHEMA
) -> Schedule:
    """The staffing schedule the history was served by."""
    return Schedule.from_frame(frame(con, f"SELECT * FROM {ident(truth_schema)}.schedule"))


def truth_agent_groups(
    con: duckdb.DuckDBPyConnection, truth_schema: str = TRUTH_SCHEMA
) -> pd.DataFrame:
    """Each group's true parameters: volume, weekly factors, handling, patience, slots."""
    return frame(con, f"SELECT * FROM {ident(truth_schema)}.agent_groups "
                      "ORDER BY agent_group_id")
