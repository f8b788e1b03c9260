"""The named views the poll figures (:mod:`tencent_desk.analysis.poll_metrics`) build on.

Like dbt's or SQLMesh's models, each is one named query over the job's tables or the views
before it, made in the dataset by the job after each load (``create``), so the snapshot
it publishes carries them to readers. A reader makes them itself over rows it pulled from
a server, or over a snapshot published before they existed (``ensure``). DuckDB's SQL.

``poll_runs``: the complete runs (the snapshots) in time order: ``i`` 0..n-1, the snapshot
time ``snapshot_at`` and ``ts`` (epoch seconds: the run's start), ``typical_gap`` (the
median gap) and ``period`` (the long gaps before it: a gap longer than ``LONG_GAP`` median
gaps is a night or an outage).
``poll_observations``: one row per session and complete run where it had a row (a real
state beats a failure; ``blind``: only failures), with ``block`` numbering its stretches of
consecutive complete runs with a row, and the block's first and last run (``b_first``,
``b_last``).
``poll_wait_sequence``: a session's informative polls, the waiting states merged into one
(``WAIT_LABEL``), with its neighbours and ``grp`` numbering its islands within a block.
``poll_wait_islands``: one row per island (consecutive polls of a session in one state)
with the bounds on how long it lasted (``lower_s``, ``upper_s``: NULL when unbounded) and
the polls that saw it (``polls``: their ``i``).
``poll_queue_counts``: per complete run, the sessions queuing and waiting (zero: none).
``poll_queue``: the same with the longest wait so far.
``poll_agent_chats``: per complete run and agent, its chats and the sessions offered to it.
``poll_agent_load``: per complete run, the sessions with an agent (Erlangs at that poll).
"""

from __future__ import annotations

from typing import Any

import duckdb
from tencent_desk.api import states as st
from tencent_desk.core.sql import ident, literal, literals, qualified

WAIT_STATES = st.WAIT_STATES
# ``before``/``after`` of an island when the neighbouring complete run had no row for the session.
ABSENT = "absent"
BLIND = (st.ERROR, st.UNKNOWN)
# A gap between complete runs longer than this many median gaps is an outage or a night: no
# snapshot stands for more than this, and no state is bounded by a run across such a gap.
LONG_GAP = 2
# Identity of a row for counting: its session, or its (user, service account) pair.
KEY = "coalesce(nullif(session_id, ''), client_user_id || chr(31) || customer_service_id)"
# The columns the views read, with their types: a dataset without them has no views, but
# a reader stands an empty table in for each of these tables a dataset lacks (``for_reader``).
READS = {
    "runs": {"run_id": "VARCHAR", "started_at": "TIMESTAMPTZ", "status": "VARCHAR"},
    "session_states": {
        "run_id": "VARCHAR", "session_id": "VARCHAR", "client_user_id": "VARCHAR",
        "customer_service_id": "VARCHAR", "state": "VARCHAR", "agent_id": "VARCHAR",
        "polled_at": "TIMESTAMPTZ"},
}
# What a dataset holds of its sessions besides polls.
UNPOLLED = ("session_events", "session_records")


WAIT_LABEL = st.merged(WAIT_STATES)  # the waiting states as one, in the wait views


def _bodies(ds: str) -> dict[str, str]:
    """View name -> its query, in the order they are made (each reads only those before)."""
    def v(name: str) -> str:
        return f"{ds}.{ident(name)}"

    blind = f"state IN ({literals(BLIND)})"
    wait = f"CASE WHEN state IN ({literals(WAIT_STATES)}) THEN {literal(WAIT_LABEL)} ELSE state END"
    absent = literal(ABSENT)
    return {
        "poll_runs": f"""
    WITH run_gaps AS (
        SELECT run_id, started_at AS snapshot_at, epoch(started_at) AS ts,
               row_number() OVER w - 1 AS i, epoch(started_at) - lag(epoch(started_at)) OVER w
                   AS gap_before
        FROM {ds}.runs WHERE status = 'complete'
        WINDOW w AS (ORDER BY started_at, run_id)
    )
    SELECT run_id, snapshot_at, ts, i, typical_gap,
           sum(coalesce(gap_before > {LONG_GAP} * typical_gap, FALSE)::INT)
               OVER (ORDER BY i) AS period
    FROM run_gaps, (SELECT median(gap_before) AS typical_gap FROM run_gaps)""",
        "poll_observations": f"""
    WITH runs AS MATERIALIZED (SELECT * FROM {v("poll_runs")}),
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
    )
    , blocks AS (  -- a block: consecutive complete runs that all have a row for the session
        SELECT *, i - row_number() OVER (PARTITION BY session_id ORDER BY i) AS block FROM obs
    )
    SELECT *, min(i) OVER b AS b_first, max(i) OVER b AS b_last FROM blocks
    WINDOW b AS (PARTITION BY session_id, block)""",
        "poll_wait_sequence": f"""
    SELECT session_id, block, b_first, b_last, i, agent_id, {wait} AS state,
           lag(i) OVER w AS prev_i, lag({wait}) OVER w AS prev_state,
           lead(i) OVER w AS next_i, lead({wait}) OVER w AS next_state,
           row_number() OVER w - row_number() OVER (
               PARTITION BY session_id, block, {wait} ORDER BY i) AS grp
    FROM {v("poll_observations")} WHERE NOT blind
    WINDOW w AS (PARTITION BY session_id, block ORDER BY i)""",
        "poll_wait_islands": f"""
    -- MATERIALIZED: each computed once, not once per reference
    WITH runs AS MATERIALIZED (SELECT * FROM {v("poll_runs")}),
    isl AS (
        SELECT session_id, block, b_first, b_last, state, grp, min(i) AS k, max(i) AS m,
               count(*) AS n_polls,
               arg_min_null(prev_i, i) AS prev_i, arg_min_null(prev_state, i) AS prev_state,
               arg_max_null(next_i, i) AS next_i, arg_max_null(next_state, i) AS next_state,
               arg_min(agent_id, i) AS agent_id, list(i ORDER BY i) AS polls
        FROM {v("poll_wait_sequence")} GROUP BY ALL
    )
    SELECT isl.session_id, isl.block, isl.grp, isl.state, isl.agent_id, isl.n_polls,
           isl.k, isl.m, isl.polls, ra.i AS after_i, rk.ts AS first_ts,
           -- a neighbour across a long gap still names the state, but bounds nothing
           CASE WHEN rb.period = rk.period THEN rb.ts END AS before_ts,
           rk.snapshot_at AS first_seen, rm.snapshot_at AS last_seen,
           CASE WHEN rb.i IS NOT NULL THEN coalesce(isl.prev_state, {absent}) END AS before,
           CASE WHEN ra.i IS NOT NULL THEN coalesce(isl.next_state, {absent}) END AS after,
           rm.ts - rk.ts AS lower_s,
           CASE WHEN rb.period = rk.period AND ra.period = rm.period
                THEN ra.ts - rb.ts END AS upper_s
    FROM isl
    JOIN runs rk ON rk.i = isl.k
    JOIN runs rm ON rm.i = isl.m
    LEFT JOIN runs rb ON rb.i = coalesce(isl.prev_i, isl.b_first - 1)
    LEFT JOIN runs ra ON ra.i = coalesce(isl.next_i, isl.b_last + 1)""",
        "poll_queue_counts": f"""
    SELECT r.i, r.run_id, r.snapshot_at, r.ts,
           count(s.key) FILTER (WHERE s.state = {literal(st.QUEUING)}) AS queuing,
           count(s.key) FILTER (WHERE s.state = {literal(st.WAITING_FOR_AGENT)})
               AS waiting_for_agent,
           count(DISTINCT s.key) AS waiting
    FROM {v("poll_runs")} r
    -- the waiting rows only, each (run, state, key) once: 4x faster than DISTINCT counts
    -- over every row
    LEFT JOIN (SELECT DISTINCT run_id, state, {KEY} AS key FROM {ds}.session_states
               WHERE state IN ({literals(WAIT_STATES)})) s USING (run_id)
    GROUP BY ALL""",
        "poll_queue": f"""
    WITH current AS (  -- each waiting session at each poll: how long it has waited so far
        SELECT q.i, r.ts - q.first_ts AS lower_s, r.ts - q.before_ts AS upper_s
        FROM (SELECT unnest(polls) AS i, first_ts, before_ts FROM {v("poll_wait_islands")}
              WHERE state = {literal(WAIT_LABEL)}) q
        JOIN {v("poll_runs")} r ON r.i = q.i
    ),
    longest AS (
        SELECT i, max(lower_s) AS lower_s,
               CASE WHEN bool_and(upper_s IS NOT NULL) THEN max(upper_s) END AS upper_s
        FROM current GROUP BY i
    )
    SELECT c.run_id, c.snapshot_at, c.ts, c.queuing, c.waiting_for_agent, c.waiting,
           coalesce(l.lower_s, 0) AS longest_wait_lower_s,
           CASE WHEN l.i IS NULL THEN 0 ELSE l.upper_s END AS longest_wait_upper_s
    FROM {v("poll_queue_counts")} c LEFT JOIN longest l USING (i)""",
        "poll_agent_chats": f"""
    SELECT s.run_id, s.agent_id,
           count(DISTINCT {KEY}) FILTER (WHERE s.state = {literal(st.AGENT)}) AS chats,
           count(DISTINCT {KEY}) FILTER (WHERE s.state = {literal(st.WAITING_FOR_AGENT)})
               AS pending
    FROM {ds}.session_states s JOIN {v("poll_runs")} USING (run_id)
    WHERE coalesce(s.agent_id, '') <> '' AND s.state IN ({literals(sorted(st.WITH_AGENT))})
    GROUP BY ALL""",
        "poll_agent_load": f"""
    SELECT r.run_id, r.ts, coalesce(c.chats, 0) AS chats
    FROM {v("poll_runs")} r LEFT JOIN (
        SELECT run_id, count(DISTINCT {KEY}) AS chats FROM {ds}.session_states
        WHERE state = {literal(st.AGENT)} GROUP BY ALL
    ) c USING (run_id)""",
    }


VIEWS = tuple(_bodies(ident("dataset")))


def name(dataset: str, view: str) -> str:
    """A view's qualified name."""
    return qualified(dataset, view)


def statements(dataset: str) -> list[str]:
    """SQL (re)making every view in ``dataset``."""
    ds = ident(dataset)
    return [f"CREATE OR REPLACE VIEW {ds}.{ident(view)} AS {body}"
            for view, body in _bodies(ds).items()]


def _tables(con: Any, dataset: str) -> set[str]:
    return {t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "AND table_catalog = current_database()", [dataset]).fetchall()}


def _readable(con: Any, dataset: str) -> bool:
    """Whether the dataset has every column the views read."""
    found = set(con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND table_catalog = current_database()", [dataset]).fetchall())
    return all((t, c) in found for t, columns in READS.items() for c in columns)


def create(con: Any, dataset: str) -> bool:
    """(Re)make the views in a DuckDB connection's ``dataset``, when it has the columns they
    read; returns whether it did."""
    if not _readable(con, dataset):
        return False
    for sql in statements(dataset):
        con.execute(sql)
    return True


def for_reader(con: Any, dataset: str) -> None:
    """The views in a reader's own DuckDB (never the job's database, where dlt makes the
    tables). A dataset of sessions without polls (loaded by callbacks and records alone)
    gets each table of ``READS`` it lacks as an empty one first, so that its poll figures
    are empty, not an error."""
    have = _tables(con, dataset)
    if not have & {*READS, *UNPOLLED}:  # not sessions at all (the simulator's truth)
        return
    for table, columns in READS.items():
        if table not in have:
            con.execute(f"CREATE TABLE {qualified(dataset, table)} ("
                        f"{', '.join(f'{ident(c)} {t}' for c, t in columns.items())})")
    ensure(con, dataset)


def ensure(con: Any, dataset: str) -> None:
    """Make the views where they are missing (rows pulled from a server, a snapshot
    published before they existed). A database opened read-only that lacks them (a job's
    database not yet run by this version) gets a clear error."""
    if set(VIEWS) <= _tables(con, dataset):
        return
    try:
        create(con, dataset)
    except duckdb.Error as exc:
        if "read-only" not in str(exc).lower():
            raise
        raise ValueError(f"{dataset} has no poll views yet and this connection is read-only: "
                         "one run of `desk-sessions run` makes them, or read the published "
                         "snapshot (tencent_desk.readers.snapshot.Reader)") from None
