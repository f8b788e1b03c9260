"""Contact-centre metrics from ``get_session_state`` snapshots, and the same on simulator truth.

Every function takes a DuckDB connection (read-only is enough) and the dataset (schema) the
pipeline loaded, runs SQL there and returns a pandas DataFrame.

Snapshots. Only runs with status ``complete`` are snapshots; runs with any other status
(failed, interrupted, ...) are ignored. A run's snapshot time is its ``started_at``, for every
row of the run: all rows of a run are answered within seconds, small next to the poll
interval, and one time per run lets a session's polls line up with the runs it was absent
from. A gap between complete runs longer than ``LONG_GAP`` median gaps (a night, a weekend,
an outage) is a break: no snapshot stands for the time across it.

Missing values. An interval with no complete run is a gap: n_polls 0 and NA in every value,
never a zero; a complete run with nothing to count is a zero. NA is pandas' NA in integer
columns (``Int64``) and NaN in float ones; each function says which of its columns can be NA
and when. ``notebook.plottable`` turns them all into NaN for charts, which draw NaN as a gap.

Sessions. A session is its non-empty ``session_id``. At a complete run a session is
  - seen in a state: it has a row with a real state (chatbot ... ended);
  - blind: its only rows are ``error`` or ``unknown`` (or a pair-keyed failure with its user and
    service account), which say nothing about its state;
  - absent: no row at all, so it was not live (not started yet, or ended and dropped).

Islands. Consecutive seen polls of one session in one state, blind polls skipped, form an
island. First seen at poll k and last at poll m, the state lasted at least ``t_m - t_k`` and
at most ``t_after - t_before``: the polls just before and after, i.e. the session's previous and
next informative polls, or the previous/next complete run when the session was absent there.
With no complete run before (after) the island, or only one across a long gap, the upper
bound is NULL: unbounded (a state seen at the last poll of an evening may have lasted all
night, or ended a second later).

What snapshots cannot see. A session shorter than one poll interval is seen with probability
about duration / interval, so short sessions are mostly missing; an agent chat shorter than the
interval can hide that a waiting session was answered. Agents appear only through their chats:
an idle agent is invisible unless a roster says it was on shift.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
from tencent_desk.analysis.buckets import bucket_sql, interval_seconds
from tencent_desk.api import states as st
from tencent_desk.core.frames import frame
from tencent_desk.core.settings import DEFAULT_DATASET
from tencent_desk.core.sql import ident, literal, literals, qualified
from tencent_desk.models import poll_views
from tencent_desk.models.poll_views import ABSENT, LONG_GAP, WAIT_LABEL, WAIT_STATES

__all__ = ["ABSENT", "LONG_GAP", "WAIT_STATES"]  # what notebooks and tests read from here

_OVER = (st.ENDED, st.NOT_IN_SESSION, ABSENT)


def _views(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, str]:
    """The qualified names of the dataset's poll views (made if missing: see poll_views)."""
    poll_views.ensure(con, dataset)
    return {v: poll_views.name(dataset, v) for v in poll_views.VIEWS}


def _buckets_cte(runs: str, w: int) -> str:
    # Every interval from the first complete run's to the last's, including empty ones (gaps).
    return f"""
    buckets AS (
        SELECT b AS b0, b + {w} AS b1
        FROM (SELECT unnest(range({bucket_sql("min(ts)", w)}, {bucket_sql("max(ts)", w)} + 1,
                                  {w})) AS b
              FROM {runs})
    )"""


def complete_runs(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """The snapshots: complete runs in time order, with the gap to the next one in seconds
    (NA for the last)."""
    sql = f"""SELECT run_id, snapshot_at, lead(ts) OVER (ORDER BY i) - ts AS gap_s
    FROM {_views(con, dataset)["poll_runs"]} ORDER BY i"""
    return frame(con, sql)


def incomplete_runs(
    con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET
) -> pd.DataFrame:
    """Runs that are not snapshots (any status but ``complete``: failed, interrupted,
    outage, still loading, ...) in time order: run_id, started_at, status, and the reason
    where the database records it (``error``, ``not_asked``). Charts show them as gaps,
    never as an empty desk."""
    # COLUMNS: databases of older versions lack error or not_asked
    sql = f"""SELECT run_id, started_at,
        COLUMNS(lambda c: c IN ('status', 'error', 'not_asked')) FROM {ident(dataset)}.runs
    WHERE status IS DISTINCT FROM 'complete' ORDER BY started_at, run_id"""
    return frame(con, sql)


def poll_interval_s(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> float | None:
    """The median gap between consecutive complete runs; None with fewer than two."""
    gaps = complete_runs(con, dataset)["gap_s"].dropna()
    return float(gaps.median()) if len(gaps) else None


def queue_per_poll(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Sessions waiting at each complete run, zero when none, and the longest wait so far.

    ``waiting`` = ``queuing`` + ``waiting_for_agent``. The longest wait is over the sessions
    waiting at that poll: at least the time since their wait was first seen, at most the time
    since the poll before it (NA when a wait began before the first complete run or a long
    gap). Only complete runs have rows, so a run that did not complete is no row, not a zero.
    """
    sql = f"""SELECT run_id, snapshot_at, queuing, waiting_for_agent, waiting,
           longest_wait_lower_s, longest_wait_upper_s
    FROM {_views(con, dataset)["poll_queue"]} ORDER BY ts"""
    return frame(con, sql)


def waiting_per_poll(con: duckdb.DuckDBPyConnection,
                     dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Sessions waiting at each complete run, zero when none: ``queue_per_poll`` without
    the longest wait, at a fraction of its cost (no sessions' histories to follow)."""
    return frame(con, f"""SELECT run_id, snapshot_at, queuing, waiting_for_agent, waiting
    FROM {_views(con, dataset)["poll_queue_counts"]} ORDER BY ts""")


def queue_per_interval(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
    interval: str | timedelta | float = "15min",
) -> pd.DataFrame:
    """Queue length per interval: time-weighted average, peak seen, longest wait seen.

    Each snapshot stands for the time until the next complete run, at most two median poll
    gaps (so an outage does not stretch one snapshot over hours). Intervals are aligned to the
    Unix epoch (UTC), from the first complete run's to the last's. An interval without a
    complete run (night, weekend, outage) is a gap: n_polls 0 and every other column NA
    (peak_* are ``Int64``). longest_wait_upper_s is NA also when a wait is unbounded. The
    peak is the highest count at a poll; the true peak between polls can be higher.
    """
    w = interval_seconds(interval)
    v = _views(con, dataset)
    # MATERIALIZED: each view computed once, not once per reference
    sql = f"""WITH runs AS MATERIALIZED (SELECT * FROM {v["poll_runs"]}),
    qpoll AS MATERIALIZED (SELECT * FROM {v["poll_queue"]}),
    {_buckets_cte("runs", w)},
    p AS (SELECT *, lead(ts) OVER (ORDER BY ts) - ts AS gap FROM qpoll),
    typical AS (SELECT any_value(typical_gap) AS gap FROM runs),
    seg AS (
        SELECT p.*, p.ts AS s0, p.ts + least(coalesce(p.gap, t.gap), {LONG_GAP} * t.gap) AS s1
        FROM p, typical t
    ),
    weighted AS (
        SELECT b0, sum(queuing * ov) / nullif(sum(ov), 0) AS avg_queuing,
               sum(waiting * ov) / nullif(sum(ov), 0) AS avg_waiting
        FROM (SELECT b0, queuing, waiting, least(s1, b1) - greatest(s0, b0) AS ov
              FROM seg JOIN buckets ON s0 < b1 AND s1 > b0)
        GROUP BY b0
    ),
    inside AS (
        SELECT b0, count(*) AS n_polls,
               avg(queuing) AS mean_queuing, max(queuing) AS peak_queuing,
               avg(waiting) AS mean_waiting, max(waiting) AS peak_waiting,
               max(longest_wait_lower_s) AS longest_wait_lower_s,
               CASE WHEN bool_and(longest_wait_upper_s IS NOT NULL)
                    THEN max(longest_wait_upper_s) END AS longest_wait_upper_s
        FROM qpoll JOIN buckets ON ts >= b0 AND ts < b1
        GROUP BY b0
    )
    -- a lone snapshot has no gap to weigh by: its plain value stands
    SELECT to_timestamp(b0) AS interval_start, coalesce(n_polls, 0) AS n_polls,
           -- a snapshot from the interval before may reach into a gap: a gap stays NULL
           CASE WHEN i.n_polls > 0 THEN coalesce(w.avg_queuing, i.mean_queuing) END
               AS avg_queuing,
           peak_queuing,
           CASE WHEN i.n_polls > 0 THEN coalesce(w.avg_waiting, i.mean_waiting) END
               AS avg_waiting,
           peak_waiting, longest_wait_lower_s, longest_wait_upper_s
    FROM buckets LEFT JOIN inside i USING (b0) LEFT JOIN weighted w USING (b0)
    ORDER BY b0"""
    return frame(con, sql)


def waits(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
) -> pd.DataFrame:
    """Every wait, as an island of the waiting states (merged), with bounds on its length.

    outcome: ``answered`` (next seen in ``agent``), ``ended`` (next ``ended``,
    ``not_in_session`` or absent), ``other`` (e.g. back to the chatbot) or ``ongoing`` (no
    later complete run). An ``agent`` island not preceded by a wait also adds a wait that no
    poll saw (n_polls 0): it lasted between 0 and the gap since the session's previous poll.
    Without these rows short waits would be missing and speed of answer would look too slow.
    ``first_answer`` marks the wait that ended in the session's first answer: the sample for
    speed of answer. Waits that ended before a poll saw them and did not reach an agent
    (short abandons) cannot be seen at all. NA: first_seen and last_seen for an unseen wait,
    upper_s for an unbounded one, answered_at unless answered.
    """
    label, agent = literal(WAIT_LABEL), literal(st.AGENT)
    sql = f"""WITH islands AS MATERIALIZED (
        SELECT * FROM {_views(con, dataset)["poll_wait_islands"]}
    ),
    first_agent AS (
        SELECT session_id, min(k) AS k FROM islands WHERE state = {agent} GROUP BY ALL
    ),
    agent_islands AS (
        SELECT a.*, a.k = f.k AS is_first
        FROM islands a JOIN first_agent f USING (session_id) WHERE a.state = {agent}
    )
    SELECT w.session_id, w.first_seen, w.last_seen, w.n_polls, w.lower_s, w.upper_s,
           CASE WHEN w.after IS NULL THEN 'ongoing'
                WHEN w.after = {agent} THEN 'answered'
                WHEN w.after IN ({literals(_OVER)}) THEN 'ended'
                ELSE 'other' END AS outcome,
           a.first_seen AS answered_at, coalesce(a.is_first, FALSE) AS first_answer
    FROM islands w
    LEFT JOIN agent_islands a ON a.session_id = w.session_id AND a.k = w.after_i
    WHERE w.state = {label}
    UNION ALL
    SELECT session_id, NULL, NULL, 0, 0.0, first_ts - before_ts, 'answered', first_seen, is_first
    FROM agent_islands WHERE before IS DISTINCT FROM {label}
    ORDER BY session_id, answered_at NULLS LAST, first_seen"""
    return frame(con, sql)


def _quantile(sorted_values: np.ndarray, q: float) -> float:
    # Linear interpolation that keeps an infinite (unbounded) value infinite instead of NaN.
    h = (len(sorted_values) - 1) * q
    lo, hi = sorted_values[int(np.floor(h))], sorted_values[int(np.ceil(h))]
    return float(lo if lo == hi else lo + (h - np.floor(h)) * (hi - lo))


def wait_stats(waits: pd.DataFrame, quantiles: Sequence[float] = (0.5, 0.9)) -> pd.DataFrame:
    """Mean and quantiles of wait length, each as a lower and an upper bound.

    Every wait lies in [lower_s, upper_s], so the mean and every quantile of the lower bounds
    bound the true ones from below, those of the upper bounds from above. An unbounded upper
    (NULL) counts as infinite; it makes the upper mean infinite, but quantiles stay finite
    while such waits are few. Works on ``truth_waits`` too (lower = upper = the true wait).
    Index: mean, median, p90, ...; columns lower_s, upper_s, n.
    """
    lower = np.sort(waits["lower_s"].to_numpy(dtype=float))
    upper = np.sort(waits["upper_s"].astype(float).fillna(np.inf).to_numpy())
    names = ["mean"] + ["median" if q == 0.5 else f"p{round(q * 100):g}" for q in quantiles]
    if not len(lower):
        return pd.DataFrame({"lower_s": np.nan, "upper_s": np.nan, "n": 0}, index=names)
    rows = [(lower.mean(), upper.mean())] + [
        (_quantile(lower, q), _quantile(upper, q)) for q in quantiles
    ]
    out = pd.DataFrame(rows, index=names, columns=["lower_s", "upper_s"])
    out["n"] = len(lower)
    return out


def wait_outcomes(con: duckdb.DuckDBPyConnection,
                  dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Every session seen waiting, and whether it was answered or abandoned.

    outcome: ``answered`` (ever seen in ``agent``); ``abandoned`` (last seen queuing, never
    with an agent, then ``ended``, ``not_in_session`` or absent: ``ended_by``); ``offered``
    (the same, but last seen in ``waiting_for_agent``: most likely answered by a chat shorter
    than the poll interval, perhaps left during the offer); ``left_queue`` (last seen in
    another state, e.g. back with the chatbot); ``ongoing`` (waiting at the last complete
    run). last_state is the last state seen; lower_s/upper_s bound the last wait.

    Caveats: sessions shorter than one poll interval are mostly never seen, so short abandons
    are missing; an agent chat shorter than the interval can go unseen. Short waits are rarely
    seen and mostly answered, so the abandoned share of these sessions overstates the rate;
    against every answered session (``waits(...).first_answer``) it understates it.
    NA: ended_by unless abandoned or offered, upper_s when the last wait is unbounded.
    """
    label = literal(WAIT_LABEL)
    live = f"state NOT IN ({literals(_OVER)})"
    v = _views(con, dataset)
    sql = f"""WITH last_seen AS (
        SELECT session_id, arg_max(state, i) AS last_state FROM {v["poll_observations"]}
        WHERE NOT blind AND {live} GROUP BY session_id
    ),
    per_session AS (
        SELECT session_id,
               bool_or(state = {literal(st.AGENT)}) AS reached_agent,
               min(first_seen) FILTER (WHERE state = {label}) AS first_waiting,
               max(last_seen) FILTER (WHERE state = {label}) AS last_waiting,
               arg_max(state, k) FILTER (WHERE {live}) = {label} AS last_waiting_island,
               arg_max_null(after, k) FILTER (WHERE {live}) AS after,
               arg_max(lower_s, k) FILTER (WHERE state = {label}) AS lower_s,
               arg_max_null(upper_s, k) FILTER (WHERE state = {label}) AS upper_s
        FROM {v["poll_wait_islands"]} GROUP BY session_id
        HAVING bool_or(state = {label})
    ),
    classified AS (
        SELECT p.*, l.last_state,
               CASE WHEN reached_agent THEN 'answered'
                    WHEN NOT last_waiting_island THEN 'left_queue'
                    WHEN after IS NULL THEN 'ongoing'
                    WHEN l.last_state = {literal(st.WAITING_FOR_AGENT)} THEN 'offered'
                    ELSE 'abandoned' END AS outcome
        FROM per_session p JOIN last_seen l USING (session_id)
    )
    SELECT session_id, first_waiting, last_waiting, reached_agent, last_state, outcome,
           CASE WHEN outcome IN ('abandoned', 'offered') THEN after END AS ended_by,
           lower_s, upper_s
    FROM classified ORDER BY first_waiting, session_id"""
    return frame(con, sql)


def agent_concurrency_per_poll(
    con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET
) -> pd.DataFrame:
    """Chats per agent at each complete run, zero-filled for every agent ever seen (no NA;
    no rows at all when no agent was ever seen).

    chats: sessions in ``agent`` with this agent; pending: sessions in ``waiting_for_agent``
    offered to it. An agent who never had a chat never appears: the API names agents only
    through sessions. A zero does not say whether the agent was idle or off shift.
    """
    v = _views(con, dataset)
    sql = f"""WITH chats AS MATERIALIZED (SELECT * FROM {v["poll_agent_chats"]}),
    agents AS (SELECT DISTINCT agent_id FROM chats)
    SELECT r.run_id, r.snapshot_at, a.agent_id,
           coalesce(c.chats, 0) AS chats, coalesce(c.pending, 0) AS pending
    FROM {v["poll_runs"]} r CROSS JOIN agents a LEFT JOIN chats c USING (run_id, agent_id)
    ORDER BY r.i, a.agent_id"""
    return frame(con, sql)


@contextmanager
def _relation(
    con: duckdb.DuckDBPyConnection, table: pd.DataFrame | str | None
) -> Iterator[str | None]:
    """A SQL name for a DataFrame (registered for the call) or a [schema.]table name."""
    if table is None or isinstance(table, str):
        yield table and qualified(*table.split("."))
        return
    name = f"_roster_{uuid.uuid4().hex}"
    con.register(name, table)
    try:
        yield ident(name)
    finally:
        con.unregister(name)


def agent_occupancy(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
    interval: str | timedelta | float = "1h",
    chats_per_agent: float = 3.0,
    roster: pd.DataFrame | str | None = None,
) -> pd.DataFrame:
    """Per agent and interval: concurrency, busy share and occupancy against a capacity.

    Averages are over the agent's counted polls in the interval (polls are evenly spaced):
    mean_chats, max_chats, busy_share (share of polls with at least one chat), occupancy
    (chats / capacity, per poll, averaged).

    Without a roster the API shows an agent only while it has chats, so idle time cannot be
    told from time off shift: every poll of the interval counts, and only intervals where the
    agent was seen appear; idle agents are missing entirely. A roster (DataFrame or table with
    agent_id, capacity, shift_start, shift_end; naive times read in the connection's time
    zone) fixes that for the agents on it: polls within a shift count, plus any poll where they
    had a chat, every interval of a shift appears even with zero chats, and capacity comes from
    the shift (off shift: the agent's largest; ``chats_per_agent`` when NULL). Agents seen but
    not on the roster are counted as without one, with ``on_roster`` false. No NA: an
    interval without a complete run has no row (a gap, for charts to reindex).
    """
    w = interval_seconds(interval)
    v = _views(con, dataset)
    with _relation(con, roster) as rel:
        roster_sql = (
            f"SELECT agent_id, capacity::DOUBLE AS capacity, shift_start::TIMESTAMPTZ AS "
            f"shift_start, shift_end::TIMESTAMPTZ AS shift_end FROM {rel} "
            "WHERE agent_id IS NOT NULL"
            if rel else
            "SELECT NULL::VARCHAR AS agent_id, NULL::DOUBLE AS capacity, "
            "NULL::TIMESTAMPTZ AS shift_start, NULL::TIMESTAMPTZ AS shift_end WHERE FALSE"
        )
        sql = f"""WITH chats AS MATERIALIZED (SELECT * FROM {v["poll_agent_chats"]}),
        roster AS ({roster_sql}),
        agents AS (SELECT agent_id FROM chats UNION SELECT agent_id FROM roster),
        grid AS (
            SELECT r.run_id, {bucket_sql('r.ts', w)} AS b0, a.agent_id,
                   coalesce(c.chats, 0) AS chats, coalesce(c.pending, 0) AS pending,
                   max(ro.capacity) AS shift_capacity, count(ro.agent_id) > 0 AS on_shift
            FROM {v["poll_runs"]} r CROSS JOIN agents a
            LEFT JOIN chats c USING (run_id, agent_id)
            LEFT JOIN roster ro ON ro.agent_id = a.agent_id
                 AND r.snapshot_at >= ro.shift_start AND r.snapshot_at < ro.shift_end
            GROUP BY ALL
        ),
        agent_capacity AS (SELECT agent_id, max(capacity) AS capacity FROM roster GROUP BY ALL),
        counted AS (
            SELECT g.*, ac.agent_id IS NOT NULL AS on_roster,
                   coalesce(g.shift_capacity, ac.capacity, {float(chats_per_agent)}) AS capacity
            FROM grid g LEFT JOIN agent_capacity ac USING (agent_id)
        )
        SELECT agent_id, to_timestamp(b0) AS interval_start, on_roster,
               count(*) AS n_polls, avg(chats) AS mean_chats, max(chats) AS max_chats,
               avg((chats > 0)::DOUBLE) AS busy_share, avg(capacity) AS capacity,
               avg(chats / capacity) AS occupancy
        FROM counted
        WHERE NOT on_roster OR on_shift OR chats + pending > 0
        GROUP BY agent_id, b0, on_roster
        HAVING on_roster OR sum(chats + pending) > 0
        ORDER BY agent_id, b0"""
        return frame(con, sql)


def _load_cte(load: str, w: int) -> str:
    """CTE ``load``: per ``w``-second interval, the complete runs in it and the mean number
    of chats with an agent at them."""
    return f"""
    load AS (
        SELECT {bucket_sql("ts", w)} AS b0, count(*) AS n_polls, avg(chats) AS load_erlangs
        FROM {load} GROUP BY ALL
    )"""


def load_per_interval(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
    interval: str | timedelta | float = "1h",
) -> pd.DataFrame:
    """``demand_per_interval``'s ``n_polls`` and ``load_erlangs`` alone, at a fraction of its
    cost (no sessions' histories to follow): what Little's law needs from the polls."""
    w = interval_seconds(interval)
    v = _views(con, dataset)
    return frame(con, f"""WITH {_buckets_cte(v["poll_runs"], w)},
    {_load_cte(v["poll_agent_load"], w)}
    SELECT to_timestamp(b0) AS interval_start, coalesce(l.n_polls, 0) AS n_polls,
           l.load_erlangs
    FROM buckets LEFT JOIN load l USING (b0) ORDER BY b0""")


def demand_per_interval(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
    interval: str | timedelta | float = "1h",
) -> pd.DataFrame:
    """Arrivals, handling time and load per interval: the inputs of a staffing model.

    arrivals: sessions first seen waiting or with an agent in the interval. answered:
    ``agent`` islands that began in it. aht_s: their mean length, each estimated by the middle
    of its bounds (lower and upper means alongside; islands touching the first or last
    complete run have no upper bound and are left out). load_erlangs: mean number of chats in
    ``agent`` at its polls, which needs no per-chat timing and is unbiased even for chats
    shorter than a poll.
    Sessions shorter than a poll interval are mostly unseen, so arrivals are too low and
    aht_s too high by roughly the same factor; the first and last intervals of a stretch of
    polls may be partial. NA: every column but n_polls in a gap (no complete run: n_polls 0;
    arrivals and answered are ``Int64``); aht_s and its bounds also in an interval with no
    ``agent`` island bounded on both sides (e.g. none began, or all touch a long gap).
    """
    label, agent = literal(WAIT_LABEL), literal(st.AGENT)
    w = interval_seconds(interval)
    v = _views(con, dataset)
    sql = f"""WITH islands AS MATERIALIZED (SELECT * FROM {v["poll_wait_islands"]}),
    {_buckets_cte(v["poll_runs"], w)},
    arrived AS (
        SELECT b0, count(*) AS arrivals
        FROM (SELECT {bucket_sql("min(first_ts)", w)} AS b0 FROM islands
              WHERE state IN ({label}, {agent}) GROUP BY session_id)
        GROUP BY b0
    ),
    handled AS (
        SELECT {bucket_sql("first_ts", w)} AS b0, count(*) AS answered,
               avg((lower_s + upper_s) / 2) FILTER (WHERE upper_s IS NOT NULL) AS aht_s,
               avg(lower_s) FILTER (WHERE upper_s IS NOT NULL) AS aht_lower_s,
               avg(upper_s) AS aht_upper_s
        FROM islands WHERE state = {agent} GROUP BY ALL
    ),
    {_load_cte(v["poll_agent_load"], w)}
    SELECT to_timestamp(b0) AS interval_start, {w} AS interval_s,
           coalesce(l.n_polls, 0) AS n_polls,
           CASE WHEN l.n_polls > 0 THEN coalesce(a.arrivals, 0) END AS arrivals,
           CASE WHEN l.n_polls > 0 THEN coalesce(h.answered, 0) END AS answered,
           h.aht_s, h.aht_lower_s, h.aht_upper_s, l.load_erlangs
    FROM buckets LEFT JOIN load l USING (b0) LEFT JOIN arrived a USING (b0)
    LEFT JOIN handled h USING (b0)
    ORDER BY b0"""
    return frame(con, sql)
