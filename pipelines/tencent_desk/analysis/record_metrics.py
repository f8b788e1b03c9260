"""Contact-centre figures from session records (``session_records``), alone or with polls.

Records make ended sessions exact where polls only bound them: when a session started and
ended, how it ended (so abandonment), who served it, in which group, and its rating. Times
follow the reading in :mod:`.record_rows` (``RECORD_TIMES``); end statuses are grouped by
its ``END_STATUS_KINDS``. Every function takes a DuckDB connection (read-only is enough)
and the dataset, and returns a pandas DataFrame.

Handling time (the agent part of a session) is not a field of a record under our reading
(``Duration`` covers the whole session), so :func:`handling_times` takes its end from the
record (exact) and bounds its start with the polls: after the last poll that saw the
session before an agent had it, at or before the first poll that saw it with an agent.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd
from tencent_desk.analysis.buckets import bucket_sql, interval_seconds
from tencent_desk.api import states as st
from tencent_desk.api.record_fields import END_STATUS_KINDS
from tencent_desk.core.frames import frame
from tencent_desk.core.settings import DEFAULT_DATASET
from tencent_desk.core.sql import ident, literal, literals, qualified

# Kinds of end that mean the customer asked for a human (they went through a queue).
QUEUED_KINDS = ("agent_ended", "user_ended", "user_timeout", "abandoned", "other")
_PRE_AGENT = (st.CHATBOT, st.QUEUING, st.WAITING_FOR_AGENT)


def _kind_sql(column: str = "end_status") -> str:
    cases = " ".join(f"WHEN {column} = {literal(raw)} THEN {literal(kind)}"
                     for raw, kind in END_STATUS_KINDS.items())
    return f"CASE {cases} ELSE 'other' END"


def has_records(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> bool:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                        "AND table_name = 'session_records'", [dataset]).fetchone()
    return bool(found and found[0])


def recorded_sessions(con: duckdb.DuckDBPyConnection,
                      dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """One row per recorded session, with ``end_kind`` (see END_STATUS_KINDS)."""
    return frame(con, f"""SELECT session_id, agent_id, agent_group_id, agent_group_name,
        channel_type, duration_s, end_status, {_kind_sql()} AS end_kind, satisfaction,
        started_at, ended_at FROM {qualified(dataset, 'session_records')}
        ORDER BY started_at, session_id""")


def end_status_mix(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET,
                   by: str | None = None) -> pd.DataFrame:
    """Sessions per end status (and per ``by``, e.g. agent_group_name), with their share."""
    group = f"{ident(by)}, " if by else ""
    return frame(con, f"""SELECT {group}end_status, {_kind_sql()} AS end_kind,
        count(*) AS sessions,
        count(*) / sum(count(*)) OVER ({'PARTITION BY ' + ident(by) if by else ''}) AS share
        FROM {qualified(dataset, 'session_records')} GROUP BY {group}end_status
        ORDER BY {group}sessions DESC""")


def ratings(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET,
            by: str = "agent_id") -> pd.DataFrame:
    """Per ``by`` (agent_id or agent_group_name): served sessions, how many were rated, the
    mean rating and the share of low ones (1-2)."""
    if by not in ("agent_id", "agent_group_id", "agent_group_name", "channel_type"):
        raise ValueError(f"cannot cut ratings by {by!r}")
    return frame(con, f"""SELECT {ident(by)}, count(*) AS served,
        count(satisfaction) AS rated, avg(satisfaction) AS mean_rating,
        avg(CASE WHEN satisfaction <= 2 THEN 1.0 ELSE 0.0 END)
            FILTER (WHERE satisfaction IS NOT NULL) AS low_share
        FROM {qualified(dataset, 'session_records')} WHERE agent_id IS NOT NULL
        GROUP BY ALL ORDER BY {ident(by)}""")


def recorded_abandonment(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET,
                         by: str | None = None) -> pd.DataFrame:
    """Of the recorded sessions that asked for a human, how many left the queue unserved
    (``queued``, ``abandoned``, ``rate``), per ``by`` if given."""
    group = f"{ident(by)}, " if by else ""
    return frame(con, f"""SELECT {group}count(*) AS queued,
        count(*) FILTER (WHERE {_kind_sql()} = 'abandoned') AS abandoned,
        abandoned / queued AS rate
        FROM {qualified(dataset, 'session_records')}
        WHERE {_kind_sql()} IN ({literals(QUEUED_KINDS)}) GROUP BY ALL
        {'ORDER BY ' + ident(by) if by else ''}""")


def arrivals_per_interval(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET,
                          interval: str | timedelta | float = "1h",
                          by: str | None = None) -> pd.DataFrame:
    """Sessions that asked for a human, by the interval they started in (exact, for the
    sessions that have ended)."""
    w = interval_seconds(interval)
    group = f"{ident(by)}, " if by else ""
    return frame(con, f"""SELECT {group}
        to_timestamp({bucket_sql("epoch(started_at)", w)}) AS interval_start,
        count(*) AS arrivals
        FROM {qualified(dataset, 'session_records')}
        WHERE {_kind_sql()} IN ({literals(QUEUED_KINDS)}) GROUP BY ALL
        ORDER BY {group}interval_start""")


def handling_times(con: duckdb.DuckDBPyConnection,
                   dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Per session served by an agent: its handling time's bounds and midpoint estimate.

    ended_at is the record's; the agent took the session after ``last_before`` (the last
    poll that saw it before an agent had it, else its start) and at or before
    ``first_agent`` (the first poll that saw it with an agent, else its end). Sessions never
    polled keep the whole session as the upper bound, so the midpoints run low on average:
    :func:`handling_time_from_load` gives the mean.
    """
    ds = ident(dataset)
    # A poll's time is its run's start, as in metrics.py: complete runs only.
    polls = f"""SELECT s.session_id,
            min(r.started_at) FILTER (WHERE s.state = {literal(st.AGENT)}) AS first_agent,
            max(r.started_at) FILTER (WHERE s.state IN ({literals(_PRE_AGENT)}))
                AS last_before
        FROM {ds}.session_states s JOIN {ds}.runs r USING (run_id)
        WHERE s.session_id IS NOT NULL AND r.status = 'complete' GROUP BY 1"""
    has_polls = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name = 'session_states'", [dataset]).fetchone()
    if not (has_polls and has_polls[0]):
        polls = ("SELECT NULL::VARCHAR AS session_id, NULL::TIMESTAMPTZ AS first_agent, "
                 "NULL::TIMESTAMPTZ AS last_before WHERE false")
    return frame(con, f"""WITH polls AS ({polls}),
    bounds AS (
        SELECT r.session_id, r.agent_id, r.agent_group_name, r.started_at, r.ended_at,
               r.duration_s,
               epoch(r.ended_at) - epoch(least(coalesce(p.first_agent, r.ended_at),
                                               r.ended_at)) AS lower_s,
               epoch(r.ended_at) - epoch(greatest(r.started_at,
                                                  coalesce(p.last_before, r.started_at)))
                   AS upper_s
        FROM {ds}.session_records r LEFT JOIN polls p USING (session_id)
        WHERE r.agent_id IS NOT NULL
    )
    SELECT *, (lower_s + greatest(upper_s, lower_s)) / 2 AS handling_s FROM bounds
    ORDER BY started_at, session_id""")


def handling_time_from_load(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET,
                            interval: str | timedelta | float = "1h") -> pd.DataFrame:
    """Mean handling time per interval by Little's law: agent-seconds over sessions served.

    The polls' mean number of chats with an agent (``metrics.load_per_interval``'s
    ``load_erlangs``, unbiased even for chats shorter than a poll) times the interval is
    the agent time spent in it; the records count exactly the served sessions that ended
    in it. Over a span of hours the two meet; an interval alone carries edge effects (a
    chat that started in one and ended in the next).
    """
    from tencent_desk.analysis import poll_metrics as metrics

    w = interval_seconds(interval)
    load = metrics.load_per_interval(con, dataset, w)
    served = frame(con, f"""SELECT
        to_timestamp({bucket_sql("epoch(ended_at)", w)}) AS interval_start, count(*) AS served
        FROM {qualified(dataset, 'session_records')} WHERE agent_id IS NOT NULL
        GROUP BY ALL""")
    out = load.merge(served, on="interval_start", how="left").fillna({"served": 0})
    out["agent_seconds"] = out.load_erlangs * w
    out["handling_s"] = out.agent_seconds / out.served.where(out.served > 0)
    return out
