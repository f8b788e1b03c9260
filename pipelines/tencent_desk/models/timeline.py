"""One row per session, fused from every source: ``session_timeline``.

Each time of a session (began, queued, offered, answered, ended) comes from the best source
that has it: Desk's callbacks (``session_events``, exact to the millisecond), else its
session records (``session_records``, exact to the second, under the Timestamp/Duration
assumption of ``record_rows``), else the polls (``session_states``): a time between the
last poll that had not seen it happen and the first that had, kept as both bounds with
the midpoint as its value. ``<time>_source`` says which; ``<time>_lo``/``<time>_hi`` are
the bounds (equal to the time for exact sources). The agent group, end status and rating
come from records first (the richest), then events, then polls.

Upkeep follows the new data, not the history: a run recomputes only the sessions its loads
touched, from their sources' rows within ``LOOKBACK`` of the new data (zone maps skip the
rest), and replaces their rows. Polls alone keep working: a user with no callbacks and no
records gets a timeline of bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
from tencent_desk.api import states
from tencent_desk.core.sql import ident, literal, literals
from tencent_desk.intake import events
from tencent_desk.models import snapshot

TABLE = "session_timeline"
STATE_TABLE = "_timeline_state"  # the upkeep's watermark: the last run it saw
TIMES = ("began", "queued", "offered", "answered", "ended")
# A session's rows lie within this span of the newest: older rows are not read on upkeep.
LOOKBACK_DAYS = 2
LOOKBACK = f"{LOOKBACK_DAYS} days"

# Polls: a time has happened by a poll that answered one of these states. An agent answering
# implies the session was queued and offered before (Desk routes through the queue).
_LIVE = (states.CHATBOT, states.QUEUING, states.WAITING_FOR_AGENT, states.AGENT)
_OVER = (states.ENDED, states.NOT_IN_SESSION)
POLL_STATES: dict[str, tuple[str, ...]] = {
    "began": _LIVE + _OVER,
    "queued": (states.QUEUING, states.WAITING_FOR_AGENT, states.AGENT),
    "offered": (states.WAITING_FOR_AGENT, states.AGENT),
    "answered": (states.AGENT,),
    "ended": _OVER,
}


@dataclass(frozen=True)
class Sources:
    """Which source tables exist in the dataset (``with_app``: the runs' logs that have the
    ``app`` column, see ``snapshot.logged_runs_sql``)."""

    tables: frozenset[str]
    with_app: frozenset[str] = frozenset()

    @property
    def events(self) -> bool:
        return "session_events" in self.tables

    @property
    def records(self) -> bool:
        return "session_records" in self.tables

    @property
    def polls(self) -> bool:
        return {"session_states", "runs"} <= self.tables


def _same(a: str, b: str) -> str:
    """The same session of the same app; NULL apps (rows older than the sdkappid column that
    no app could be given) are one app of their own."""
    return f"{a}.session_id = {b}.session_id AND {a}.sdkappid IS NOT DISTINCT FROM {b}.sdkappid"


def touched(alias: str) -> str:
    """Rows of ``alias`` whose session is in the temp table ``touched``."""
    return f"EXISTS (SELECT 1 FROM touched WHERE {_same('touched', alias)})"


def _names(meaning: str) -> str:
    return literals([n for n, e in events.EVENT_NAMES.items() if e.meaning == meaning])


def _from_events(ds: str, since: str) -> str:
    """Per session from its callbacks. A named event gives a time exactly (``_x``); without
    it (a lost callback, a name we do not know) the events still bound it: the first event
    is no earlier than the start, the first one carrying an ``AgentId`` no earlier than
    the answer, and the last one no later than the end (``_ub``, ``_lb``)."""
    return f"""
    ev AS (
        SELECT sdkappid, session_id,
            min(event_time) FILTER (WHERE event IN ({_names("start")})) AS began_x,
            min(event_time) AS began_ub,
            min(event_time) FILTER (WHERE event IN ({_names("transfer_started")})) AS queued_x,
            min(event_time) FILTER (WHERE event IN ({_names("transfer_succeeded")})
                                    OR coalesce(agent_id, '') <> '') AS queued_ub,
            NULL::TIMESTAMPTZ AS offered_x,
            min(event_time) FILTER (WHERE event IN ({_names("transfer_succeeded")})
                                    OR coalesce(agent_id, '') <> '') AS offered_ub,
            min(event_time) FILTER (WHERE event IN ({_names("transfer_succeeded")}))
                AS answered_x,
            min(event_time) FILTER (WHERE coalesce(agent_id, '') <> '') AS answered_ub,
            min(event_time) FILTER (WHERE event IN ({_names("closed")})) AS ended_x,
            max(event_time) AS ended_lb,
            arg_max(agent_id, event_time) FILTER (WHERE coalesce(agent_id, '') <> '')
                AS agent_id,
            any_value(client_user_id) FILTER (WHERE client_user_id IS NOT NULL)
                AS client_user_id,
            arg_min(event, event_time) FILTER (WHERE event IN ({_names("closed")}))
                AS end_status,
            arg_max(satisfaction, event_time) FILTER (WHERE satisfaction > 0) AS satisfaction
        FROM {ds}.session_events AS x
        WHERE {touched("x")}
            AND event_time >= {since}
        GROUP BY sdkappid, session_id
    )"""


def _from_records(ds: str, since: str) -> str:
    return f"""
    rec AS (
        SELECT sdkappid, session_id, started_at AS began_x, NULL::TIMESTAMPTZ AS queued_x,
               NULL::TIMESTAMPTZ AS offered_x, NULL::TIMESTAMPTZ AS answered_x,
               ended_at AS ended_x, agent_id, client_user_id, agent_group_id,
               agent_group_name, end_status, nullif(satisfaction, 0) AS satisfaction
        FROM {ds}.session_records AS x
        WHERE {touched("x")}
            AND started_at >= {since}
    )"""


# When the polls last saw each session, and how often they saw it (its own polls' mean
# gap; NULL when seen once). A session that leaves the seed stops being polled while others
# go on: the figures (analysis.timeline_metrics) then stop counting it as waiting. Its own
# polls only, so that the row is the same whichever run last touched it.
SEEN = ("max(t) AS last_seen_at, CASE WHEN count(*) > 1 THEN epoch(max(t) - min(t)) / "
        "(count(*) - 1) END AS poll_every_s")
SEEN_COLUMNS = {"last_seen_at": "TIMESTAMPTZ", "poll_every_s": "DOUBLE"}


def _from_polls(ds: str, since: str) -> str:
    """Per session from the polls of complete runs: for each time, the first poll that saw
    it happened (hi) and the poll before it, or the run before when the session was not
    seen earlier (lo); when it was last seen (:data:`SEEN`)."""
    firsts = ",\n".join(
        f"min(t) FILTER (WHERE state IN ({literals(s)})) AS {name}_hi,\n"
        f"arg_min_null(lo, t) FILTER (WHERE state IN ({literals(s)})) AS {name}_lo"
        for name, s in POLL_STATES.items())
    return f"""
    complete_runs AS (
        SELECT run_id, started_at,
               lag(started_at) OVER (ORDER BY started_at, run_id) AS before
        FROM {ds}.runs WHERE status = 'complete'
            AND started_at >= {since} - INTERVAL {LOOKBACK}
    ),
    obs AS (
        SELECT s.sdkappid, s.session_id, s.polled_at AS t, s.state, s.agent_id,
               s.client_user_id,
               coalesce(lag(s.polled_at) OVER (PARTITION BY s.sdkappid, s.session_id
                                                ORDER BY s.polled_at), r.before) AS lo
        FROM {ds}.session_states s JOIN complete_runs r USING (run_id)
        WHERE {touched("s")}
            AND s.polled_at >= {since}
            AND s.state NOT IN ('error', 'unknown')
    ),
    po AS (
        SELECT sdkappid, session_id, {firsts},
            arg_max(agent_id, t) FILTER (WHERE state = 'agent') AS agent_id,
            any_value(client_user_id) FILTER (WHERE client_user_id IS NOT NULL)
                AS client_user_id,
            {SEEN}
        FROM obs GROUP BY sdkappid, session_id
    )"""


def _time(name: str, src: Sources) -> str:
    """A time, its source and bounds. Exact first: a named event, then a record. Else the
    bounds of the polls, narrowed by what the events bound (an ended time only for a
    session the polls saw over: the last event of a live session is no end)."""
    null = "NULL::TIMESTAMPTZ"
    exact = [f"{p}.{name}_x" for p, use in (("ev", src.events), ("rec", src.records)) if use]
    first = f"coalesce({', '.join(exact)})" if exact else null
    kind = (f"CASE WHEN ev.{name}_x IS NOT NULL THEN 'event' ELSE 'record' END"
            if src.events and src.records else ("'event'" if src.events else "'record'"))
    p_lo, p_hi = (f"po.{name}_lo", f"po.{name}_hi") if src.polls else (null, null)
    e_lo = f"ev.{name}_lb" if src.events and name == "ended" else null
    e_hi = f"ev.{name}_ub" if src.events and name != "ended" else null
    if name == "ended":
        lo, hi = f"CASE WHEN {p_hi} IS NOT NULL THEN greatest({p_lo}, {e_lo}) END", p_hi
    else:
        lo, hi = p_lo, f"least({p_hi}, {e_hi})"
    guess = f"CASE WHEN {lo} IS NOT NULL AND {hi} IS NOT NULL THEN {lo} + ({hi} - {lo}) / 2 " \
            f"ELSE coalesce({hi}, {lo}) END"
    return f"""
        coalesce({first}, {guess}) AS {name}_at,
        CASE WHEN {first} IS NOT NULL THEN {kind} WHEN {p_hi} IS NOT NULL THEN 'poll'
             WHEN {guess} IS NOT NULL THEN 'event' END AS {name}_source,
        CASE WHEN {first} IS NOT NULL THEN {first} ELSE {lo} END AS {name}_lo,
        CASE WHEN {first} IS NOT NULL THEN {first} ELSE {hi} END AS {name}_hi"""


def _pick(column: str, order: Sequence[str]) -> str:
    return f"coalesce({', '.join(f'{s}.{column}' for s in order)}, NULL::VARCHAR) AS {column}"


def since_sql(horizon: datetime | None) -> str:
    """The horizon as a constant of the SQL (a parameter or subquery would be applied only
    after reading every block)."""
    return (f"TIMESTAMPTZ {literal(horizon.isoformat())}" if horizon is not None
            else "NULL::TIMESTAMPTZ")


def select_sql(ds: str, src: Sources, since: str) -> str:
    """The timeline rows of the sessions in temp table ``touched``, from source rows since
    ``since`` (a constant: DuckDB then skips older row groups by their zone maps)."""
    ctes = [c for use, c in ((src.events, _from_events(ds, since)),
                             (src.records, _from_records(ds, since)),
                             (src.polls, _from_polls(ds, since))) if use]
    parts = [n for n, use in (("ev", src.events), ("rec", src.records), ("po", src.polls))
             if use]
    joins = " ".join(f"LEFT JOIN {p} ON {_same(p, 'touched')}" for p in parts)
    times = ",".join(_time(n, src) for n in TIMES)
    group = "rec.agent_group_id" if src.records else "NULL::VARCHAR"
    group_name = "rec.agent_group_name" if src.records else "NULL::VARCHAR"
    rich = [p for p in ("rec", "ev", "po") if p in parts]
    agents = [p for p in ("ev", "rec", "po") if p in parts]
    ended_by_poll = "CASE WHEN po.ended_hi IS NOT NULL THEN 'ended' END" if src.polls \
        else "NULL"
    status = [f"{p}.end_status" for p in ("rec", "ev") if p in parts]
    satisfaction = [f"{p}.satisfaction" for p in ("rec", "ev") if p in parts]
    seen = ", ".join(f"po.{c}" if src.polls else f"NULL::{kind} AS {c}"
                     for c, kind in SEEN_COLUMNS.items())
    return f"""
    WITH {",".join(ctes)}
    SELECT touched.sdkappid, touched.session_id,
        {_pick("client_user_id", rich)},
        {group} AS agent_group_id, {group_name} AS agent_group_name,
        {_pick("agent_id", agents)},
        {times},
        coalesce({", ".join([*status, ended_by_poll])}) AS end_status,
        coalesce({", ".join([*satisfaction, "NULL::INTEGER"])}) AS satisfaction,
        {seen}
    FROM touched {joins}
    """


def tables_sql(param: str) -> str:
    """The tables of a dataset, named by the parameter ``param`` (DuckDB's ``?``, a dlt
    sql_client's ``%s``): the same SQL on DuckDB and PostgreSQL."""
    return ("SELECT table_name FROM information_schema.tables WHERE table_schema = "
            f"{param} AND table_catalog = current_database() AND table_type = 'BASE TABLE'")


def sources(con: duckdb.DuckDBPyConnection, dataset: str) -> Sources:
    return Sources(
        frozenset(r[0] for r in con.execute(tables_sql("?"), [dataset]).fetchall()),
        frozenset(r[0] for r in con.execute(snapshot.APP_LOGS_SQL.format(param="?"),
                                            [dataset]).fetchall()))


def finished_sql(ds: str, logs: Sequence[str], with_app: Sequence[str] = ()) -> str:
    """Runs (and their load ids) no longer loading, from the runs' logs; with ``with_app``
    (the logs that have the ``app`` column) the runs their apps' rows stand for too."""
    return snapshot.logged_runs_sql(ds, logs, "status <> 'loading'", with_app)


def new_data_sql(ds: str, src: Sources, new: Sequence[str]) -> str:
    """Per source, the sessions the runs ``new`` brought rows of, with their earliest time
    (``sdkappid``, ``session_id``, ``t``)."""
    # constants, not parameters: the range lets DuckDB skip the history by its zone maps
    runs = (f"run_id BETWEEN {literal(new[0])} AND {literal(new[-1])} "
            f"AND run_id IN ({literals(new)})")
    parts = []
    if src.polls:
        parts.append(f"SELECT sdkappid, session_id, min(polled_at) AS t FROM "
                     f"{ds}.session_states WHERE {runs} AND coalesce(session_id, '') <> '' "
                     "GROUP BY 1, 2")
    if src.records:
        parts.append(f"SELECT sdkappid, session_id, min(started_at) AS t FROM "
                     f"{ds}.session_records WHERE {runs} GROUP BY 1, 2")
    if src.events:
        parts.append(f"SELECT sdkappid, session_id, min(event_time) AS t FROM "
                     f"{ds}.session_events WHERE {runs} GROUP BY 1, 2")
    return " UNION ALL ".join(parts)


# The rows to write: ``fresh`` with the day each session was first filed under (readers'
# files are cut by it) from ``kept``, and the run that wrote them (parameter).
# In order of start: the table's row groups then hold ranges of it, so a range of starts
# (the interval tables' upkeep, readers' windows) skips the others by their zone maps.
ROWS_SQL = ("SELECT fresh.*, coalesce(kept.day, strftime(fresh.began_at, '%Y-%m-%d'), "
            "'undated') AS day, ? AS run_id FROM fresh LEFT JOIN kept ON " + _same("fresh", "kept")
            + " ORDER BY fresh.began_at")


def upkeep(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
    """Bring ``session_timeline`` up to date with the runs loaded since the last upkeep;
    returns the sessions (re)written. Every source row carries the ``run_id`` of the run
    that loaded it, so what is new is what the newly complete runs brought."""
    src = sources(con, dataset)
    logs = [t for t in snapshot.RUN_LOGS if t in src.tables]
    if not logs or not (src.events or src.records or src.polls):
        return 0
    ds = ident(dataset)
    con.execute(f"CREATE TABLE IF NOT EXISTS {ds}.{STATE_TABLE} (load_id VARCHAR)")
    (watermark,) = con.execute(f"SELECT max(load_id) FROM {ds}.{STATE_TABLE}").fetchone() or (
        None,)
    finished = finished_sql(ds, logs, sorted(src.with_app))
    new = [r for (r,) in con.execute(
        f"SELECT run_id FROM ({finished}) AS f WHERE _dlt_load_id > ? ORDER BY run_id",
        [watermark or ""]).fetchall()]
    if not new:
        return 0
    con.execute("CREATE OR REPLACE TEMP TABLE new_data AS " + new_data_sql(ds, src, new))
    con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT sdkappid, "
                "session_id FROM new_data")
    (horizon,) = con.execute(f"SELECT min(t) - INTERVAL {LOOKBACK} FROM new_data"
                             ).fetchone() or (None,)
    since = since_sql(horizon)
    con.execute("CREATE OR REPLACE TEMP TABLE fresh AS " + select_sql(ds, src, since))
    table = f"{ds}.{TABLE}"
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT *, NULL::VARCHAR AS day, "
                "NULL::VARCHAR AS run_id FROM fresh WHERE false")
    for column, kind in SEEN_COLUMNS.items():  # a table from before they were kept
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
    # A session keeps the day it was first filed under: readers' files are cut by it.
    # A touched session's row: its began_hi is one of its source rows' times, so within
    # LOOKBACK of its new rows (none at all for a session with no time).
    filed = (f"{touched('x')} AND (x.began_hi >= {since} - INTERVAL {LOOKBACK} "
             "OR x.began_hi IS NULL)")
    con.execute("CREATE OR REPLACE TEMP TABLE kept AS SELECT sdkappid, session_id, day FROM "
                f"{table} AS x WHERE {filed}")
    con.execute(f"DELETE FROM {table} AS x WHERE {filed}")
    (n,) = con.execute(f"INSERT INTO {table} BY NAME {ROWS_SQL}", [new[-1]]).fetchone() or (0,)
    con.execute(f"DELETE FROM {ds}.{STATE_TABLE}")
    con.execute(f"INSERT INTO {ds}.{STATE_TABLE} SELECT max(_dlt_load_id) FROM ({finished})")
    return int(n)
