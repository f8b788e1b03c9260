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

import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
from tencent_desk.api import states as st
from tencent_desk.core.frames import frame
from tencent_desk.core.settings import DEFAULT_DATASET
from tencent_desk.core.sql import ident as _ident
from tencent_desk.core.sql import literals as _lit

# A customer waits for an answer in both: queued, then offered to an agent who has not accepted.
WAIT_STATES = (st.QUEUING, st.WAITING_FOR_AGENT)
# ``before``/``after`` of an island when the neighbouring complete run had no row for the session.
ABSENT = "absent"
_BLIND = (st.ERROR, st.UNKNOWN)
_OVER = (st.ENDED, st.NOT_IN_SESSION, ABSENT)
# A gap between complete runs longer than this many median gaps is an outage or a night: no
# snapshot stands for more than this, and no state is bounded by a run across such a gap.
LONG_GAP = 2
# Identity of a row for counting: its session, or its (user, service account) pair.
_KEY = "coalesce(nullif(session_id, ''), client_user_id || chr(31) || customer_service_id)"


def _label(states: Sequence[str]) -> str:
    """SQL literal naming ``states`` merged into one, e.g. 'queuing+waiting_for_agent'."""
    return _lit(["+".join(states)])


def _seconds(interval: str | timedelta | float) -> int:
    seconds = (
        float(interval) if isinstance(interval, int | float)
        else pd.Timedelta(interval).total_seconds()
    )
    if seconds <= 0 or seconds != int(seconds):
        raise ValueError(f"interval must be a positive whole number of seconds, got {interval!r}")
    return int(seconds)


def _runs_cte(ds: str) -> str:
    # i numbers complete runs 0..n-1 in time order; ts is the snapshot time in epoch seconds;
    # typical_gap is the median gap; period counts the long gaps before the run.
    return f"""
    run_gaps AS (
        SELECT run_id, started_at AS snapshot_at, epoch(started_at) AS ts,
               row_number() OVER w - 1 AS i, epoch(started_at) - lag(epoch(started_at)) OVER w
                   AS gap_before
        FROM {ds}.runs WHERE status = 'complete'
        WINDOW w AS (ORDER BY started_at, run_id)
    ),
    runs AS (
        SELECT run_id, snapshot_at, ts, i, typical_gap,
               sum(coalesce(gap_before > {LONG_GAP} * typical_gap, FALSE)::INT)
                   OVER (ORDER BY i) AS period
        FROM run_gaps, (SELECT median(gap_before) AS typical_gap FROM run_gaps)
    )"""


def _bucket(epoch_s: str, w: int) -> str:
    """SQL for the start (epoch seconds) of the ``w``-second interval holding ``epoch_s``."""
    return f"CAST(floor({epoch_s} / {w}) * {w} AS BIGINT)"


def _buckets_cte(w: int) -> str:
    # Every interval from the first complete run's to the last's, including empty ones (gaps).
    return f"""
    buckets AS (
        SELECT b AS b0, b + {w} AS b1
        FROM (SELECT unnest(range({_bucket("min(ts)", w)}, {_bucket("max(ts)", w)} + 1, {w}))
                     AS b
              FROM runs)
    )"""


def _islands_cte(ds: str, merge: Sequence[str] = ()) -> str:
    """CTEs ending in ``islands``: one row per island; ``merge`` states count as one state."""
    merged = f"CASE WHEN state IN ({_lit(merge)}) THEN {_label(merge)} ELSE state END"
    state = merged if merge else "state"
    blind = f"state IN ({_lit(_BLIND)})"
    return _runs_cte(ds) + f""",
    pairs AS (
        SELECT DISTINCT session_id, client_user_id, customer_service_id FROM {ds}.session_states
        WHERE coalesce(session_id, '') <> '' AND client_user_id IS NOT NULL
    ),
    keyed AS (
        SELECT s.session_id, r.i, s.state, s.agent_id, s.polled_at
        FROM {ds}.session_states s JOIN runs r USING (run_id)
        WHERE coalesce(s.session_id, '') <> ''
        UNION ALL
        -- A failed call keyed by (user, service account) names no session: it blinds the
        -- sessions of that pair for that run rather than making them look absent.
        SELECT p.session_id, r.i, s.state, NULL, s.polled_at
        FROM {ds}.session_states s JOIN runs r USING (run_id)
        JOIN pairs p ON p.client_user_id = s.client_user_id
                    AND p.customer_service_id = s.customer_service_id
        WHERE coalesce(s.session_id, '') = '' AND s.{blind}
    ),
    obs AS (  -- one row per session and complete run; a real state beats a failure
        SELECT session_id, i, state, agent_id, {blind} AS blind FROM keyed
        QUALIFY row_number() OVER (
            PARTITION BY session_id, i ORDER BY {blind}, polled_at DESC) = 1
    ),
    blocks AS (  -- a block: consecutive complete runs that all have a row for the session
        SELECT *, i - row_number() OVER (PARTITION BY session_id ORDER BY i) AS block FROM obs
    ),
    spans AS (
        SELECT session_id, block, min(i) AS b_first, max(i) AS b_last FROM blocks GROUP BY ALL
    ),
    seq AS (
        SELECT session_id, block, i, agent_id, {state} AS state,
               lag(i) OVER w AS prev_i, lag({state}) OVER w AS prev_state,
               lead(i) OVER w AS next_i, lead({state}) OVER w AS next_state,
               row_number() OVER w - row_number() OVER (
                   PARTITION BY session_id, block, {state} ORDER BY i) AS grp
        FROM blocks WHERE NOT blind
        WINDOW w AS (PARTITION BY session_id, block ORDER BY i)
    ),
    isl AS (
        SELECT session_id, block, state, grp, min(i) AS k, max(i) AS m, count(*) AS n_polls,
               arg_min_null(prev_i, i) AS prev_i, arg_min_null(prev_state, i) AS prev_state,
               arg_max_null(next_i, i) AS next_i, arg_max_null(next_state, i) AS next_state,
               arg_min(agent_id, i) AS agent_id
        FROM seq GROUP BY ALL
    ),
    islands AS (
        SELECT isl.session_id, isl.block, isl.grp, isl.state, isl.agent_id, isl.n_polls,
               isl.k, isl.m, ra.i AS after_i, rk.ts AS first_ts,
               -- a neighbour across a long gap still names the state, but bounds nothing
               CASE WHEN rb.period = rk.period THEN rb.ts END AS before_ts,
               rk.snapshot_at AS first_seen, rm.snapshot_at AS last_seen,
               CASE WHEN rb.i IS NOT NULL THEN coalesce(isl.prev_state, '{ABSENT}') END AS before,
               CASE WHEN ra.i IS NOT NULL THEN coalesce(isl.next_state, '{ABSENT}') END AS after,
               rm.ts - rk.ts AS lower_s,
               CASE WHEN rb.period = rk.period AND ra.period = rm.period
                    THEN ra.ts - rb.ts END AS upper_s
        FROM isl JOIN spans USING (session_id, block)
        JOIN runs rk ON rk.i = isl.k
        JOIN runs rm ON rm.i = isl.m
        LEFT JOIN runs rb ON rb.i = coalesce(isl.prev_i, spans.b_first - 1)
        LEFT JOIN runs ra ON ra.i = coalesce(isl.next_i, spans.b_last + 1)
    )"""


def complete_runs(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """The snapshots: complete runs in time order, with the gap to the next one in seconds
    (NA for the last)."""
    sql = f"""WITH {_runs_cte(_ident(dataset))}
    SELECT run_id, snapshot_at, lead(ts) OVER (ORDER BY i) - ts AS gap_s FROM runs ORDER BY i"""
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
        COLUMNS(lambda c: c IN ('status', 'error', 'not_asked')) FROM {_ident(dataset)}.runs
    WHERE status IS DISTINCT FROM 'complete' ORDER BY started_at, run_id"""
    return frame(con, sql)


def poll_interval_s(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> float | None:
    """The median gap between consecutive complete runs; None with fewer than two."""
    gaps = complete_runs(con, dataset)["gap_s"].dropna()
    return float(gaps.median()) if len(gaps) else None


def state_islands(
    con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET, merge: Sequence[str] = ()
) -> pd.DataFrame:
    """Every island of every session, with the bounds on how long it lasted.

    ``merge`` states count as one state named by joining them with ``+``, e.g.
    ``queuing+waiting_for_agent``. Columns: session_id, state, agent_id (first seen),
    n_polls, first_seen, last_seen, before and after (the neighbouring state, ``absent``, or
    NULL with no complete run there), lower_s, upper_s (NULL: unbounded, with no complete run
    before or after, or only across a long gap).
    """
    sql = f"""WITH {_islands_cte(_ident(dataset), merge)}
    SELECT session_id, state, agent_id, n_polls, first_seen, last_seen, before, after,
           lower_s, upper_s
    FROM islands ORDER BY session_id, first_seen"""
    return frame(con, sql)


def _counts_cte(ds: str) -> str:
    """CTE ``counts``: sessions queuing and waiting for an agent at each complete run (of
    the CTE ``runs``)."""
    return f"""
    counts AS (
        SELECT r.i, r.run_id, r.snapshot_at, r.ts,
               count(s.key) FILTER (WHERE s.state = '{st.QUEUING}') AS queuing,
               count(s.key) FILTER (WHERE s.state = '{st.WAITING_FOR_AGENT}')
                   AS waiting_for_agent,
               count(DISTINCT s.key) AS waiting
        FROM runs r
        -- the waiting rows only, each (run, state, key) once: 4x faster than DISTINCT counts
        -- over every row
        LEFT JOIN (SELECT DISTINCT run_id, state, {_KEY} AS key FROM {ds}.session_states
                   WHERE state IN ({_lit(WAIT_STATES)})) s USING (run_id)
        GROUP BY ALL
    )"""


def _queue_poll_cte(ds: str) -> str:
    label = _label(WAIT_STATES)
    return _islands_cte(ds, WAIT_STATES) + "," + _counts_cte(ds) + f""",
    current AS (  -- each waiting session at each poll: how long it has waited so far
        SELECT q.i, r.ts - isl.first_ts AS lower_s, r.ts - isl.before_ts AS upper_s
        FROM seq q JOIN islands isl USING (session_id, block, grp, state)
        JOIN runs r ON r.i = q.i
        WHERE q.state = {label}
    ),
    longest AS (
        SELECT i, max(lower_s) AS lower_s,
               CASE WHEN bool_and(upper_s IS NOT NULL) THEN max(upper_s) END AS upper_s
        FROM current GROUP BY i
    ),
    qpoll AS (
        SELECT c.run_id, c.snapshot_at, c.ts, c.queuing, c.waiting_for_agent, c.waiting,
               coalesce(l.lower_s, 0) AS longest_wait_lower_s,
               CASE WHEN l.i IS NULL THEN 0 ELSE l.upper_s END AS longest_wait_upper_s
        FROM counts c LEFT JOIN longest l USING (i)
    )"""


def queue_per_poll(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Sessions waiting at each complete run, zero when none, and the longest wait so far.

    ``waiting`` = ``queuing`` + ``waiting_for_agent``. The longest wait is over the sessions
    waiting at that poll: at least the time since their wait was first seen, at most the time
    since the poll before it (NA when a wait began before the first complete run or a long
    gap). Only complete runs have rows, so a run that did not complete is no row, not a zero.
    """
    sql = f"""WITH {_queue_poll_cte(_ident(dataset))}
    SELECT run_id, snapshot_at, queuing, waiting_for_agent, waiting,
           longest_wait_lower_s, longest_wait_upper_s
    FROM qpoll ORDER BY ts"""
    return frame(con, sql)


def waiting_per_poll(con: duckdb.DuckDBPyConnection,
                     dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Sessions waiting at each complete run, zero when none: ``queue_per_poll`` without
    the longest wait, at a fraction of its cost (no sessions' histories to follow)."""
    ds = _ident(dataset)
    return frame(con, f"""WITH {_runs_cte(ds)},{_counts_cte(ds)}
    SELECT run_id, snapshot_at, queuing, waiting_for_agent, waiting FROM counts ORDER BY ts""")


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
    w = _seconds(interval)
    sql = f"""WITH {_queue_poll_cte(_ident(dataset))}, {_buckets_cte(w)},
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
    states: Sequence[str] = WAIT_STATES,
) -> pd.DataFrame:
    """Every wait, as an island of ``states`` (merged), with bounds on its length.

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
    label = _label(states)
    sql = f"""WITH {_islands_cte(_ident(dataset), states)},
    first_agent AS (
        SELECT session_id, min(k) AS k FROM islands WHERE state = '{st.AGENT}' GROUP BY ALL
    ),
    agent_islands AS (
        SELECT a.*, a.k = f.k AS is_first
        FROM islands a JOIN first_agent f USING (session_id) WHERE a.state = '{st.AGENT}'
    )
    SELECT w.session_id, w.first_seen, w.last_seen, w.n_polls, w.lower_s, w.upper_s,
           CASE WHEN w.after IS NULL THEN 'ongoing'
                WHEN w.after = '{st.AGENT}' THEN 'answered'
                WHEN w.after IN ({_lit(_OVER)}) THEN 'ended'
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


@dataclass(frozen=True)
class ServiceLevel:
    """Share of waits within ``target_s``: a range, or None with the reason it is unknowable."""

    target_s: float
    n: int
    lower: float | None
    upper: float | None
    reason: str | None = None


def service_level(
    waits: pd.DataFrame, target_s: float, poll_interval_s: float | None
) -> ServiceLevel:
    """Share of ``waits`` answered within ``target_s``, bounded from both sides.

    Surely within: upper_s <= target; possibly within: lower_s <= target. Unknowable when the
    poll interval is longer than the target: a wait no poll saw lies anywhere in [0, interval],
    so whether it beat the target cannot be told, nor can the share.
    """
    n = len(waits)
    if poll_interval_s is None or n == 0:
        return ServiceLevel(target_s, n, None, None, "no waits measured between two polls")
    if poll_interval_s > target_s:
        return ServiceLevel(
            target_s, n, None, None,
            f"polls are {poll_interval_s:.0f} s apart, longer than the {target_s:.0f} s target: "
            "a wait between two polls may be shorter or longer than the target",
        )
    lower = float((waits["upper_s"].astype(float).fillna(np.inf) <= target_s).mean())
    upper = float((waits["lower_s"].astype(float) <= target_s).mean())
    return ServiceLevel(target_s, n, lower, upper)


def abandonment(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
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
    label = _label(WAIT_STATES)
    live = f"state NOT IN ({_lit(_OVER)})"
    sql = f"""WITH {_islands_cte(_ident(dataset), WAIT_STATES)},
    last_seen AS (
        SELECT session_id, arg_max(state, i) AS last_state FROM blocks
        WHERE NOT blind AND {live} GROUP BY session_id
    ),
    per_session AS (
        SELECT session_id,
               bool_or(state = '{st.AGENT}') AS reached_agent,
               min(first_seen) FILTER (WHERE state = {label}) AS first_waiting,
               max(last_seen) FILTER (WHERE state = {label}) AS last_waiting,
               arg_max(state, k) FILTER (WHERE {live}) = {label} AS last_waiting_island,
               arg_max_null(after, k) FILTER (WHERE {live}) AS after,
               arg_max(lower_s, k) FILTER (WHERE state = {label}) AS lower_s,
               arg_max_null(upper_s, k) FILTER (WHERE state = {label}) AS upper_s
        FROM islands GROUP BY session_id
        HAVING bool_or(state = {label})
    ),
    classified AS (
        SELECT p.*, l.last_state,
               CASE WHEN reached_agent THEN 'answered'
                    WHEN NOT last_waiting_island THEN 'left_queue'
                    WHEN after IS NULL THEN 'ongoing'
                    WHEN l.last_state = '{st.WAITING_FOR_AGENT}' THEN 'offered'
                    ELSE 'abandoned' END AS outcome
        FROM per_session p JOIN last_seen l USING (session_id)
    )
    SELECT session_id, first_waiting, last_waiting, reached_agent, last_state, outcome,
           CASE WHEN outcome IN ('abandoned', 'offered') THEN after END AS ended_by,
           lower_s, upper_s
    FROM classified ORDER BY first_waiting, session_id"""
    return frame(con, sql)


def abandonment_rates(abandon: pd.DataFrame, waits: pd.DataFrame) -> tuple[float, float]:
    """The abandoned share two ways, from ``abandonment`` and ``waits``: against every
    answered session (too low: short abandons are unseen) and among sessions seen waiting
    (too high: short waits are rarely seen, and they are mostly answered). The truth usually
    lies between. Either is NaN when it has nothing to divide by (nobody waited or was
    answered): an empty queue has no abandonment rate, not a zero one."""
    abandoned = int((abandon["outcome"] == "abandoned").sum())
    seen = abandoned + int((abandon["outcome"] == "answered").sum())
    every = abandoned + int(waits["first_answer"].sum())
    return (abandoned / every if every else math.nan, abandoned / seen if seen else math.nan)


def _agent_poll_cte(ds: str) -> str:
    return _runs_cte(ds) + f""",
    chats AS (
        SELECT s.run_id, s.agent_id,
               count(DISTINCT {_KEY}) FILTER (WHERE s.state = '{st.AGENT}') AS chats,
               count(DISTINCT {_KEY}) FILTER (WHERE s.state = '{st.WAITING_FOR_AGENT}')
                   AS pending
        FROM {ds}.session_states s JOIN runs USING (run_id)
        WHERE coalesce(s.agent_id, '') <> '' AND s.state IN ({_lit(sorted(st.WITH_AGENT))})
        GROUP BY ALL
    )"""


def agent_concurrency_per_poll(
    con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET
) -> pd.DataFrame:
    """Chats per agent at each complete run, zero-filled for every agent ever seen (no NA;
    no rows at all when no agent was ever seen).

    chats: sessions in ``agent`` with this agent; pending: sessions in ``waiting_for_agent``
    offered to it. An agent who never had a chat never appears: the API names agents only
    through sessions. A zero does not say whether the agent was idle or off shift.
    """
    sql = f"""WITH {_agent_poll_cte(_ident(dataset))},
    agents AS (SELECT DISTINCT agent_id FROM chats)
    SELECT r.run_id, r.snapshot_at, a.agent_id,
           coalesce(c.chats, 0) AS chats, coalesce(c.pending, 0) AS pending
    FROM runs r CROSS JOIN agents a LEFT JOIN chats c USING (run_id, agent_id)
    ORDER BY r.i, a.agent_id"""
    return frame(con, sql)


@contextmanager
def _relation(
    con: duckdb.DuckDBPyConnection, table: pd.DataFrame | str | None
) -> Iterator[str | None]:
    """A SQL name for a DataFrame (registered for the call) or a [schema.]table name."""
    if table is None or isinstance(table, str):
        yield table and ".".join(_ident(part) for part in table.split("."))
        return
    name = f"_roster_{uuid.uuid4().hex}"
    con.register(name, table)
    try:
        yield _ident(name)
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
    w = _seconds(interval)
    with _relation(con, roster) as rel:
        roster_sql = (
            f"SELECT agent_id, capacity::DOUBLE AS capacity, shift_start::TIMESTAMPTZ AS "
            f"shift_start, shift_end::TIMESTAMPTZ AS shift_end FROM {rel} "
            "WHERE agent_id IS NOT NULL"
            if rel else
            "SELECT NULL::VARCHAR AS agent_id, NULL::DOUBLE AS capacity, "
            "NULL::TIMESTAMPTZ AS shift_start, NULL::TIMESTAMPTZ AS shift_end WHERE FALSE"
        )
        sql = f"""WITH {_agent_poll_cte(_ident(dataset))},
        roster AS ({roster_sql}),
        agents AS (SELECT agent_id FROM chats UNION SELECT agent_id FROM roster),
        grid AS (
            SELECT r.run_id, {_bucket('r.ts', w)} AS b0, a.agent_id,
                   coalesce(c.chats, 0) AS chats, coalesce(c.pending, 0) AS pending,
                   max(ro.capacity) AS shift_capacity, count(ro.agent_id) > 0 AS on_shift
            FROM runs r CROSS JOIN agents a
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


def _load_cte(ds: str, w: int) -> str:
    """CTE ``load``: per ``w``-second interval, the complete runs in it and the mean number
    of chats with an agent at them."""
    return f"""
    load AS (
        SELECT {_bucket("r.ts", w)} AS b0, count(*) AS n_polls,
               avg(coalesce(c.chats, 0)) AS load_erlangs
        FROM runs r LEFT JOIN (
            SELECT run_id, count(DISTINCT {_KEY}) AS chats FROM {ds}.session_states
            WHERE state = '{st.AGENT}' GROUP BY ALL
        ) c USING (run_id)
        GROUP BY ALL
    )"""


def load_per_interval(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
    interval: str | timedelta | float = "1h",
) -> pd.DataFrame:
    """``demand_per_interval``'s ``n_polls`` and ``load_erlangs`` alone, at a fraction of its
    cost (no sessions' histories to follow): what Little's law needs from the polls."""
    w = _seconds(interval)
    ds = _ident(dataset)
    return frame(con, f"""WITH {_runs_cte(ds)}, {_buckets_cte(w)}, {_load_cte(ds, w)}
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
    label = _label(WAIT_STATES)
    w = _seconds(interval)
    ds = _ident(dataset)
    sql = f"""WITH {_islands_cte(ds, WAIT_STATES)}, {_buckets_cte(w)},
    arrived AS (
        SELECT b0, count(*) AS arrivals
        FROM (SELECT {_bucket("min(first_ts)", w)} AS b0 FROM islands
              WHERE state IN ({label}, '{st.AGENT}') GROUP BY session_id)
        GROUP BY b0
    ),
    handled AS (
        SELECT {_bucket("first_ts", w)} AS b0, count(*) AS answered,
               avg((lower_s + upper_s) / 2) FILTER (WHERE upper_s IS NOT NULL) AS aht_s,
               avg(lower_s) FILTER (WHERE upper_s IS NOT NULL) AS aht_lower_s,
               avg(upper_s) AS aht_upper_s
        FROM islands WHERE state = '{st.AGENT}' GROUP BY ALL
    ),
    {_load_cte(ds, w)}
    SELECT to_timestamp(b0) AS interval_start, {w} AS interval_s,
           coalesce(l.n_polls, 0) AS n_polls,
           CASE WHEN l.n_polls > 0 THEN coalesce(a.arrivals, 0) END AS arrivals,
           CASE WHEN l.n_polls > 0 THEN coalesce(h.answered, 0) END AS answered,
           h.aht_s, h.aht_lower_s, h.aht_upper_s, l.load_erlangs
    FROM buckets LEFT JOIN load l USING (b0) LEFT JOIN arrived a USING (b0)
    LEFT JOIN handled h USING (b0)
    ORDER BY b0"""
    return frame(con, sql)


# --- Session events (desk-sessions listen): exact times, no poll-interval bounds. ---------


def has_events(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> bool:
    """Whether the job has loaded received session events (the ``session_event_times`` view)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name = 'session_event_times'", [dataset]).fetchone()
    return bool(found and found[0])


def events_per_interval(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
    interval: str | timedelta | float = "1h",
) -> pd.DataFrame:
    """Per interval, from session events: ``began`` (sessions whose first event is in it),
    ``reached_agent`` (of those, how many had an event with an agent) and
    ``time_to_agent_s`` (their mean time from first event to first event with an agent).
    Exact to the millisecond, whatever the event names; a lost callback can only make a
    session begin late or reach its agent late."""
    w = _seconds(interval)
    sql = f"""
    SELECT to_timestamp({_bucket("epoch(began_at)", w)}) AS interval_start, {w} AS interval_s,
           count(*) AS began, count(agent_at) AS reached_agent,
           avg(epoch(agent_at) - epoch(began_at)) AS time_to_agent_s
    FROM {_ident(dataset)}.session_event_times GROUP BY ALL ORDER BY 1"""
    return frame(con, sql)
