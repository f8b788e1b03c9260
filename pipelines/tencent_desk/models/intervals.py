"""Interval tables, as contact-centre platforms keep history: ``queue_intervals``,
``agent_intervals`` and ``interval_sketches``, one row per 15 minutes (see docs/intervals.md).

Each event counts in the interval where it happened (Genesys' convention): a session counts
as begun where it began, as queued where it asked for a human, and as answered where an
agent accepted it, with its wait (speed of answer, service level) and its handling time
(known once it ends: the row is redone then); as abandoned where it ended unanswered; its
queue exit (answered or abandoned: abandonment's denominator) where it left the queue.
Everything kept adds up over any range of intervals: counts, sums, maxima, counts within
fixed thresholds (Cisco's bucket edges), and log-spaced counts of waits and handling
times (``interval_sketches``, a DDSketch: any quantile within ``SKETCH_ALPHA`` of its true
value).

Upkeep follows the timeline's: the rows ``session_timeline`` (re)wrote since the last upkeep
are the changed sessions; the intervals their old versions (kept in ``_interval_sessions``)
and their new ones touch are computed again, and only those, from the timeline rows of the
sessions whose reach (first to last time, kept in the ledger) overlaps them.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import duckdb
from tencent_desk.core.sql import ident, literal, literals
from tencent_desk.models import snapshot, timeline

QUEUE = "queue_intervals"
AGENT = "agent_intervals"
SKETCH = "interval_sketches"
TABLES = (QUEUE, AGENT, SKETCH)
LEDGER = "_interval_sessions"  # each session as last counted: the intervals to redo on change
# The timeline's watermark (a dlt load id) as of the last upkeep: the runs loaded after it
# and up to the timeline's current one are those whose id the rows it rewrote carry (run
# ids alone are no order: two runs of the same second sort by a random suffix).
STATE_TABLE = "_intervals_watermark"
WIDTH_S = 900  # 15 minutes: sums to 30 min, hours, days and weeks
# The service-level target the desk reports against (seconds); kept as a bucket edge too.
SERVICE_TARGET_S = 60
# Cisco UCCE's default bucket edges for answer and abandon waits, plus the target.
WAIT_EDGES_S = tuple(sorted({8, 30, 60, 90, 120, 180, 300, 600, 1200, SERVICE_TARGET_S}))
HANDLE_EDGES_S = (60, 120, 300, 600, 900, 1200, 1800, 3600)
# A quantile from the sketch is within this relative error of the exact one (DDSketch).
SKETCH_ALPHA = 0.01
GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA)
ZERO_BUCKET = -(2 ** 31)  # spans of exactly 0 s (a log has no bucket for them)
EXACT = "('event', 'record')"
GROUP = ("sdkappid", "agent_group_id", "agent_group_name")
# What the ledger keeps of a session: enough to know the intervals it counted in.
LEDGER_COLUMNS = ("sdkappid", "session_id", "agent_group_id", "agent_group_name", "agent_id",
                  "began_at", "queued_at", "answered_at", "ended_at")
# The timeline's columns the figures read (:func:`facts_sql`): the others are not decompressed.
READ_COLUMNS = (*LEDGER_COLUMNS, "run_id", *(f"{t}_{k}" for t in timeline.TIMES
                                             for k in ("source", "lo", "hi")))
# The ledger keeps each session's reach too: a session counts only in intervals from its
# first time to its last, so the sessions an interval needs are those whose reach overlaps
# it. The ledger's rows are appended as sessions change, so a range on ``last_at`` skips
# all but its newest row groups by their zone maps (an index on PostgreSQL): the rows read
# follow the sessions active in the intervals redone, not the history.
_TIMES = "began_at, queued_at, answered_at, ended_at"
REACH = {"first_at": f"least({_TIMES})", "last_at": f"greatest({_TIMES})"}
REACH_SELECT = ", ".join(f"{v} AS {k}" for k, v in REACH.items())
LEDGER_SELECT = f"{', '.join(LEDGER_COLUMNS)}, {REACH_SELECT}"


def _k(ts: str) -> str:
    """The start of the 15-minute interval holding ``ts`` (UTC, integer arithmetic)."""
    return f"to_timestamp(((epoch_us({ts}) // {WIDTH_S * 10 ** 6}) * {WIDTH_S})::DOUBLE)"


def _same(a: str, b: str, columns: tuple[str, ...]) -> str:
    return " AND ".join(f"{a}.{c} IS NOT DISTINCT FROM {b}.{c}" for c in columns)


def _exact(*names: str) -> str:
    return " AND ".join(f"{n}_source IN {EXACT}" for n in names)


def seconds(end: str, start: str) -> str:
    """SQL: seconds from ``start`` to ``end`` (timestamps) as a DOUBLE. The difference of
    their epoch_us, not epoch() of an interval: the same value, a third of the time."""
    return f"(epoch_us({end}) - epoch_us({start})) / 1e6"


# A timeline row's spans (seconds) with their bounds and whether exact: the one definition
# of speed of answer, handling time and abandonment (``timeline_metrics.sessions`` too).
SPANS_SQL = f"""
    {seconds("answered_at", "queued_at")} AS wait_s,
    greatest({seconds("answered_lo", "queued_hi")}, 0) AS wait_lo_s,
    {seconds("answered_hi", "queued_lo")} AS wait_hi_s,
    {_exact("queued", "answered")} AS wait_exact,
    {seconds("ended_at", "answered_at")} AS handle_s,
    greatest({seconds("ended_lo", "answered_hi")}, 0) AS handle_lo_s,
    {seconds("ended_hi", "answered_lo")} AS handle_hi_s,
    {_exact("answered", "ended")} AS handle_exact,
    queued_at IS NOT NULL AND answered_at IS NULL AND ended_at IS NOT NULL AS abandoned,
    CASE WHEN answered_at IS NULL THEN {seconds("ended_at", "queued_at")} END
        AS abandon_wait_s,
    CASE WHEN answered_at IS NULL THEN greatest({seconds("ended_lo", "queued_hi")}, 0) END
        AS abandon_wait_lo_s,
    CASE WHEN answered_at IS NULL THEN {seconds("ended_hi", "queued_lo")} END
        AS abandon_wait_hi_s,
    coalesce({_exact("queued", "ended")}, false) AS abandon_exact"""


def facts_sql(rel: str) -> str:
    """Per session of ``rel`` (timeline rows) the spans the figures read (``SPANS_SQL``),
    and the queue exit (answered, else ended)."""
    return f"""
    SELECT sdkappid, session_id, agent_group_id, agent_group_name, agent_id,
        began_at, queued_at, answered_at, ended_at,
        coalesce({_exact("began")}, false) AS began_exact,
        coalesce({_exact("queued")}, false) AS queued_exact, {SPANS_SQL},
        CASE WHEN queued_at IS NOT NULL THEN coalesce(answered_at, ended_at) END AS exit_at,
        least(answered_at, ended_at) AS queue_out
    FROM {rel}"""


def _span_keys(start: str, end: str) -> str:
    """Every interval start a span ``[start, end)`` overlaps (a list; empty for no span)."""
    return (f"CASE WHEN {start} IS NOT NULL AND {end} > {start} THEN "
            f"generate_series({_k(start)}, {_k(f'{end} - INTERVAL 1 MICROSECOND')}, "
            f"INTERVAL {WIDTH_S} SECOND) ELSE [] END")


def queue_keys_sql(rel: str) -> str:
    """The (app, group, interval) keys the sessions of ``rel`` count in (``rel``: rows with
    the ledger's columns)."""
    points = ", ".join(_k(t) for t in ("began_at", "queued_at", "answered_at", "ended_at"))
    return f"""
    SELECT DISTINCT sdkappid, agent_group_id, agent_group_name, k AS interval_start
    FROM (SELECT *, unnest(list_concat([{points}],
                                       {_span_keys("queued_at", "least(answered_at, ended_at)")}
                                       )) AS k FROM {rel})
    WHERE k IS NOT NULL"""


def agent_keys_sql(rel: str) -> str:
    """The (app, agent, interval) keys the chats of ``rel`` count in."""
    points = ", ".join(_k(t) for t in ("answered_at", "ended_at"))
    return f"""
    SELECT DISTINCT sdkappid, agent_id, k AS interval_start
    FROM (SELECT *, unnest(list_concat([{points}], {_span_keys("answered_at", "ended_at")}
                                       )) AS k FROM {rel} WHERE agent_id IS NOT NULL
                                                           AND answered_at IS NOT NULL)
    WHERE k IS NOT NULL"""


def _within(prefix: str, value: str, edges: tuple[int, ...], where: str) -> str:
    return ", ".join(f"count(*) FILTER (WHERE {where} AND {value} <= {e}) AS {prefix}_{e}"
                     for e in edges)


def _span_sums(span: str, where: str) -> str:
    """A span's sums (value, lower and upper bounds), the count with no upper bound, and
    its maximum, over the rows of ``where``."""
    sums = ", ".join(f"coalesce(sum({span}_{v}s) FILTER (WHERE {where}), 0) AS {span}_{v}sum_s"
                     for v in ("", "lo_", "hi_"))
    return (f"{sums}, count(*) FILTER (WHERE {where} AND {span}_hi_s IS NULL) AS "
            f"{span}_hi_open, max({span}_s) FILTER (WHERE {where}) AS {span}_max_s")


def _pieces(spans: str, keys: str, owner: tuple[str, ...]) -> str:
    """``spans`` (``s``, ``e``) joined to each key of ``keys`` whose interval they overlap:
    each span cut into its intervals first, so the join is on equality (a range join of
    every span with every interval of its owner cost n x k on a first upkeep)."""
    return (f"(SELECT *, unnest({_span_keys('s', 'e')}) AS piece FROM {spans}) AS sp "
            f"JOIN {keys} AS k ON {_same('sp', 'k', owner)} AND sp.piece = k.interval_start")


def _events(facts: str, keys: str, owner: tuple[str, ...], times: tuple[str, ...]) -> str:
    """The rows of ``facts`` joined to the keys of the intervals their ``times`` lie in."""
    points = ", ".join(_k(t) for t in times)
    return (f"(SELECT *, unnest(list_distinct([{points}])) AS piece FROM {facts}) AS f "
            f"JOIN {keys} AS k ON {_same('f', 'k', owner)} AND f.piece = k.interval_start")


def _peak(spans: str, keys: str, owner: tuple[str, ...]) -> str:
    """Per key of ``keys`` the most spans of ``spans`` (``owner`` columns, ``s``, ``e``:
    [s, e)) held at once within the interval: a sweep over the spans overlapping it, each
    entering at max(s, interval start) and leaving at e when inside (leaving first at a tie:
    spans are half-open)."""
    own = ", ".join(owner)
    keyed = ", ".join(f"k.{c}" for c in owner)
    join = _pieces(spans, keys, owner)
    return f"""
    SELECT {own}, interval_start, max(level)::BIGINT AS peak FROM (
        SELECT {own}, interval_start,
            sum(d) OVER (PARTITION BY {own}, interval_start ORDER BY t, d
                         ROWS UNBOUNDED PRECEDING) AS level
        FROM (
            SELECT {keyed}, k.interval_start, greatest(sp.s, k.interval_start) AS t, 1 AS d
            FROM {join}
            UNION ALL
            SELECT {keyed}, k.interval_start, sp.e AS t, -1 AS d
            FROM {join} WHERE sp.e < k.interval_start + INTERVAL {WIDTH_S} SECOND))
    GROUP BY ALL"""


def _overlap_s(s: str, e: str) -> str:
    return seconds(f"least({e}, k.interval_start + INTERVAL {WIDTH_S} SECOND)",
                   f"greatest({s}, k.interval_start)")


def queue_sql(facts: str, keys: str, run_id: str) -> str:
    """``queue_intervals`` rows for every key of ``keys`` (zeros where nothing is left),
    from the per-session ``facts`` (:func:`facts_sql`)."""
    at = {n: _k(f"{n}_at") for n in ("began", "queued", "answered", "ended")}
    g = ", ".join(GROUP)
    events = f"""
    SELECT f.* EXCLUDE (piece), k.interval_start FROM {_events(
        facts, keys, GROUP, ("began_at", "queued_at", "answered_at", "ended_at", "exit_at"))}"""
    ans = f"{at['answered']} = interval_start"
    waited = f"{ans} AND wait_s IS NOT NULL"
    handled = f"{ans} AND handle_s IS NOT NULL"
    exits = (f"{_k('exit_at')} = interval_start "
             "AND (ended_at IS NOT NULL OR answered_at IS NOT NULL)")
    gone = f"{at['ended']} = interval_start AND abandoned"
    counts = f"""
    SELECT {g}, interval_start,
        count(*) FILTER (WHERE {at["began"]} = interval_start) AS began,
        count(*) FILTER (WHERE {at["began"]} = interval_start AND began_exact) AS began_exact,
        count(*) FILTER (WHERE {at["queued"]} = interval_start) AS queued,
        count(*) FILTER (WHERE {at["queued"]} = interval_start AND queued_exact) AS queued_exact,
        count(*) FILTER (WHERE {ans}) AS answered,
        count(*) FILTER (WHERE {waited}) AS waits,
        count(*) FILTER (WHERE {waited} AND wait_exact) AS waits_exact,
        {_span_sums("wait", waited)},
        {_within("within", "wait_s", WAIT_EDGES_S, waited)},
        {_within("within_lo", "wait_hi_s", WAIT_EDGES_S, waited)},
        {_within("within_hi", "coalesce(wait_lo_s, 0)", WAIT_EDGES_S, waited)},
        count(*) FILTER (WHERE {exits}) AS exits,
        count(*) FILTER (WHERE {exits} AND queued_exact) AS exits_exact,
        count(*) FILTER (WHERE {gone}) AS abandoned,
        {_within("abandoned_within", "abandon_wait_s", WAIT_EDGES_S, gone)},
        {_within("abandoned_within_lo", "abandon_wait_hi_s", WAIT_EDGES_S, gone)},
        {_within("abandoned_within_hi", "coalesce(abandon_wait_lo_s, 0)", WAIT_EDGES_S, gone)},
        count(*) FILTER (WHERE {handled}) AS handled,
        count(*) FILTER (WHERE {handled} AND handle_exact) AS handled_exact,
        {_span_sums("handle", handled)},
        {_within("handled_within", "handle_s", HANDLE_EDGES_S, handled)}
    FROM ({events}) GROUP BY ALL"""
    spans = f"(SELECT {g}, queued_at AS s, queue_out AS e FROM {facts} WHERE queue_out > queued_at)"
    queue = f"""
    SELECT {", ".join(f"k.{c}" for c in GROUP)}, k.interval_start,
        sum({_overlap_s("s", "e")}) AS queue_s
    FROM {_pieces(spans, keys, GROUP)} GROUP BY ALL"""
    names = [c for c in _queue_columns() if c not in ("queue_s", "queue_max")]
    filled = ", ".join(f"coalesce(c.{n}, 0) AS {n}" if not n.endswith("_max_s") else f"c.{n}"
                       for n in names)
    return f"""
    SELECT {", ".join(f"k.{c}" for c in GROUP)}, k.interval_start, {filled},
        coalesce(q.queue_s, 0) AS queue_s, coalesce(p.peak, 0) AS queue_max,
        {run_id} AS run_id
    FROM {keys} AS k
    LEFT JOIN ({counts}) AS c ON {_same("c", "k", (*GROUP, "interval_start"))}
    LEFT JOIN ({queue}) AS q ON {_same("q", "k", (*GROUP, "interval_start"))}
    LEFT JOIN ({_peak(spans, keys, GROUP)}) AS p ON {_same("p", "k", (*GROUP, "interval_start"))}
    """


def _queue_columns() -> list[str]:
    base = ["began", "began_exact", "queued", "queued_exact", "answered", "waits",
            "waits_exact", "wait_sum_s", "wait_lo_sum_s", "wait_hi_sum_s", "wait_hi_open",
            "wait_max_s"]
    base += [f"{p}_{e}" for p in ("within", "within_lo", "within_hi") for e in WAIT_EDGES_S]
    base += ["exits", "exits_exact", "abandoned"]
    base += [f"{p}_{e}" for p in ("abandoned_within", "abandoned_within_lo",
                                  "abandoned_within_hi") for e in WAIT_EDGES_S]
    base += ["handled", "handled_exact", "handle_sum_s", "handle_lo_sum_s", "handle_hi_sum_s",
             "handle_hi_open", "handle_max_s"]
    base += [f"handled_within_{e}" for e in HANDLE_EDGES_S]
    return [*base, "queue_s", "queue_max"]


def agent_sql(facts: str, keys: str, run_id: str) -> str:
    """``agent_intervals`` rows for every key of ``keys``: chat-seconds held (chats that
    ended; an open chat counts once it ends), the most chats held at once, chats answered
    and ended. ``logged_in_s`` stays NULL: neither polls, callbacks nor records tell when
    an agent logged in (no roster is loaded)."""
    own = ("sdkappid", "agent_id")
    o = ", ".join(own)
    spans = (f"(SELECT {o}, answered_at AS s, ended_at AS e FROM {facts} "
             "WHERE agent_id IS NOT NULL AND ended_at > answered_at)")
    held = f"""
    SELECT k.sdkappid, k.agent_id, k.interval_start, sum({_overlap_s("s", "e")}) AS held_s
    FROM {_pieces(spans, keys, own)} GROUP BY ALL"""
    counts = f"""
    SELECT k.sdkappid, k.agent_id, k.interval_start,
        count(*) FILTER (WHERE {_k("answered_at")} = k.interval_start) AS answered,
        count(*) FILTER (WHERE {_k("ended_at")} = k.interval_start) AS ended
    FROM {_events(facts, keys, own, ("answered_at", "ended_at"))}
    WHERE f.answered_at IS NOT NULL
    GROUP BY ALL"""
    on = (*own, "interval_start")
    return f"""
    SELECT k.sdkappid, k.agent_id, k.interval_start, coalesce(h.held_s, 0) AS held_s,
        coalesce(p.peak, 0) AS max_chats, coalesce(c.answered, 0) AS answered,
        coalesce(c.ended, 0) AS ended, NULL::DOUBLE AS logged_in_s, {run_id} AS run_id
    FROM {keys} AS k
    LEFT JOIN ({held}) AS h ON {_same("h", "k", on)}
    LEFT JOIN ({_peak(spans, keys, own)}) AS p ON {_same("p", "k", on)}
    LEFT JOIN ({counts}) AS c ON {_same("c", "k", on)}"""


def bucket_sql(x: str) -> str:
    """The sketch bucket of a span of ``x`` seconds: i with gamma^(i-1) < x <= gamma^i."""
    return (f"CASE WHEN {x} <= 0 THEN {ZERO_BUCKET} "
            f"ELSE ceil(ln({x}) / {math.log(GAMMA)!r})::INTEGER END")


def bucket_value(bucket: int) -> float:
    """What a bucket stands for: the value within ``SKETCH_ALPHA`` of all it holds."""
    return 0.0 if bucket == ZERO_BUCKET else 2 * GAMMA ** bucket / (GAMMA + 1)


def sketch_sql(facts: str, keys: str, run_id: str) -> str:
    """``interval_sketches`` rows of the keys: waits and handling times by the interval
    the chat was answered in, counted per log bucket."""
    g = ", ".join(GROUP)
    parts = " UNION ALL ".join(
        f"SELECT {g}, {_k(at)} AS interval_start, '{span}' AS span, {bucket_sql(value)} "
        f"AS bucket FROM {facts} WHERE {value} IS NOT NULL"
        for span, at, value in (("wait", "answered_at", "wait_s"),
                                ("handle", "answered_at", "handle_s")))
    return f"""
    SELECT s.{g.replace(", ", ", s.")}, s.interval_start, span, bucket, count(*) AS n,
        {run_id} AS run_id
    FROM ({parts}) AS s JOIN {keys} AS k ON {_same("s", "k", (*GROUP, "interval_start"))}
    GROUP BY ALL"""


def compute(con: duckdb.DuckDBPyConnection, cand: str, run_id: str) -> None:
    """Temp tables ``new_queue``, ``new_agent`` and ``new_sketch``: the rows of the keys in
    temp tables ``dirty_queue`` and ``dirty_agent``, from the timeline rows of ``cand``."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE interval_facts AS {facts_sql(cand)}")
    run = f"{literal(run_id)}::VARCHAR"
    con.execute("CREATE OR REPLACE TEMP TABLE new_queue AS "
                + queue_sql("interval_facts", "dirty_queue", run))
    con.execute("CREATE OR REPLACE TEMP TABLE new_agent AS "
                + agent_sql("interval_facts", "dirty_agent", run))
    con.execute("CREATE OR REPLACE TEMP TABLE new_sketch AS "
                + sketch_sql("interval_facts", "dirty_queue", run))


def dirty(con: duckdb.DuckDBPyConnection, old: str, new: str) -> tuple[Any, Any] | None:
    """Temp tables ``dirty_queue``/``dirty_agent``: the keys the sessions' old rows (``old``)
    and new ones (``new``) count in; returns the first and last interval start (None: none)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE dirty_queue AS {queue_keys_sql(old)} "
                f"UNION {queue_keys_sql(new)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE dirty_agent AS {agent_keys_sql(old)} "
                f"UNION {agent_keys_sql(new)}")
    first, last = con.execute(
        "SELECT min(interval_start), max(interval_start) FROM (SELECT interval_start FROM "
        "dirty_queue UNION ALL SELECT interval_start FROM dirty_agent)").fetchone() or (None,
                                                                                       None)
    return None if first is None else (first, last)


def reaching_sql(ledger: str, since: str, until: str) -> str:
    """The sessions of ``ledger`` (rows with the reach columns) that may count in the
    intervals from ``since`` to ``until`` (SQL: constants on DuckDB, for its zone maps;
    placeholders on a server, for the index on ``last_at``)."""
    return (f"SELECT sdkappid, session_id, began_at FROM {ledger} "
            f"WHERE last_at >= {since} AND first_at < {until}")


def reach_bounds(first: Any, last: Any) -> tuple[Any, Any]:
    """From the first dirty interval's start to the last one's end."""
    return first, last + timedelta(seconds=WIDTH_S)


def reach_migration(ds: str, columns: set[str]) -> list[str]:
    """The statements giving a ledger made before the reach columns (``columns``: the ones
    it has) those columns (the same SQL on DuckDB and PostgreSQL)."""
    return [sql for name, value in REACH.items() if name not in columns
            for sql in (f"ALTER TABLE {ds}.{LEDGER} ADD COLUMN {name} TIMESTAMPTZ",
                        f"UPDATE {ds}.{LEDGER} SET {name} = {value}")]


def outdated(columns: set[str]) -> bool:
    """A ``queue_intervals`` with ``columns`` (none: no table) lacks a column the SQL now
    counts: made by an earlier version."""
    return bool(columns) and not set(_queue_columns()) <= columns


def outdated_sql(ds: str, columns: set[str]) -> list[str]:
    """The statements dropping interval tables made by an earlier version (:func:`outdated`),
    so they are made anew and the next upkeep counts every session again: a count's history
    cannot be added after the fact (the same SQL on DuckDB and PostgreSQL)."""
    if not outdated(columns):
        return []
    return [f"DROP TABLE IF EXISTS {ds}.{t}" for t in (*TABLES, LEDGER, STATE_TABLE)]


def _columns(con: duckdb.DuckDBPyConnection, ds: str, table: str) -> set[str]:
    return {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = ?", [ds.strip('"'), table]).fetchall()}


def _create(con: duckdb.DuckDBPyConnection, ds: str) -> None:
    """The tables, empty, with the types the SQL makes (once; again when outdated)."""
    for sql in outdated_sql(ds, _columns(con, ds, QUEUE)):
        con.execute(sql)
    have = {t for (t,) in con.execute(timeline.tables_sql("?"),
                                      [ds.strip('"')]).fetchall()}
    if {*TABLES, LEDGER, STATE_TABLE} <= have:
        for sql in reach_migration(ds, _columns(con, ds, LEDGER)):
            con.execute(sql)
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE empty_tl AS SELECT * FROM {ds}.{timeline.TABLE} "
                "WHERE false")
    con.execute(f"CREATE OR REPLACE TEMP TABLE dirty_queue AS {queue_keys_sql('empty_tl')}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE dirty_agent AS {agent_keys_sql('empty_tl')}")
    compute(con, "empty_tl", "")
    for table, made in ((QUEUE, "new_queue"), (AGENT, "new_agent"), (SKETCH, "new_sketch")):
        con.execute(f"CREATE TABLE IF NOT EXISTS {ds}.{table} AS SELECT * FROM {made}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {ds}.{LEDGER} AS SELECT {LEDGER_SELECT} "
                "FROM empty_tl")
    con.execute(f"CREATE TABLE IF NOT EXISTS {ds}.{STATE_TABLE} (load_id VARCHAR)")


def replace_sql(ds: str, table: str, made: str, keys: str, columns: tuple[str, ...],
                first: Any) -> str:
    """Delete the rows of ``keys`` from ``table`` (the range first, for zone maps)."""
    since = f"TIMESTAMPTZ {literal(first.isoformat())}"
    return (f"DELETE FROM {ds}.{table} AS x WHERE x.interval_start >= {since} AND EXISTS "
            f"(SELECT 1 FROM {keys} AS k WHERE {_same('x', 'k', (*columns, 'interval_start'))})")


def upkeep(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
    """Bring the interval tables up to date with the timeline rows written since the last
    upkeep; returns the interval rows (re)written."""
    ds = ident(dataset)
    if timeline.TABLE not in timeline.sources(con, dataset).tables:
        return 0
    _create(con, ds)
    (mark,) = con.execute(f"SELECT max(load_id) FROM {ds}.{STATE_TABLE}").fetchone() or (None,)
    (now,) = con.execute(f"SELECT max(load_id) FROM {ds}.{timeline.STATE_TABLE}").fetchone() \
        or (None,)
    if now is None or now == mark:
        return 0
    logs = [t for t in snapshot.RUN_LOGS if t in timeline.sources(con, dataset).tables]
    runs = [r for (r,) in con.execute(new_runs_sql(ds, logs, mark, now)).fetchall()]
    cols = ", ".join(LEDGER_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE changed AS SELECT {cols}, run_id FROM "
                f"{ds}.{timeline.TABLE} WHERE {rewritten(runs, mark)}")
    (top, oldest) = con.execute("SELECT max(run_id), min(began_at) FROM changed").fetchone() \
        or (None, None)
    if top is None:
        _done(con, ds, now)
        return 0
    # their rows as last counted (a session's start moves by less than LOOKBACK)
    old_filter = "TRUE" if oldest is None else (
        f"began_at >= TIMESTAMPTZ {literal(oldest.isoformat())} - INTERVAL "
        f"{timeline.LOOKBACK}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE counted AS SELECT * FROM {ds}.{LEDGER} AS x "
                f"WHERE ({old_filter}) AND EXISTS (SELECT 1 FROM changed AS c WHERE "
                f"{_same('x', 'c', ('sdkappid', 'session_id'))})")
    span = dirty(con, "counted", "changed")
    written = 0
    if span is not None:
        first, last = span
        # the sessions that may count there: unchanged ones from the ledger, changed ones
        # as they are now; their timeline rows found by the range of their starts
        since, until = (f"TIMESTAMPTZ {literal(t.isoformat())}" for t in reach_bounds(first, last))
        con.execute(f"CREATE OR REPLACE TEMP TABLE reaching AS "
                    f"{reaching_sql(f'{ds}.{LEDGER}', since, until)} UNION ALL "
                    f"{reaching_sql(f'(SELECT *, {REACH_SELECT} FROM changed)', since, until)}")
        (lo, hi) = con.execute("SELECT min(began_at), max(began_at) FROM reaching"
                               ).fetchone() or (None, None)
        con.execute(f"CREATE OR REPLACE TEMP TABLE cand AS SELECT {', '.join(READ_COLUMNS)} "
                    f"FROM {ds}.{timeline.TABLE} AS x WHERE {starts_between(lo, hi)} AND EXISTS "
                    f"(SELECT 1 FROM reaching AS r WHERE "
                    f"{_same('x', 'r', ('sdkappid', 'session_id'))})")
        compute(con, "cand", top)
        for table, made, keys, columns in (
                (QUEUE, "new_queue", "dirty_queue", GROUP),
                (SKETCH, "new_sketch", "dirty_queue", GROUP),
                (AGENT, "new_agent", "dirty_agent", ("sdkappid", "agent_id"))):
            con.execute(replace_sql(ds, table, made, keys, columns, first))
            (n,) = con.execute(f"INSERT INTO {ds}.{table} BY NAME SELECT * FROM {made}"
                               ).fetchone() or (0,)
            written += int(n) if table != SKETCH else 0
    con.execute(f"DELETE FROM {ds}.{LEDGER} AS x WHERE ({old_filter}) AND EXISTS (SELECT 1 "
                f"FROM changed AS c WHERE {_same('x', 'c', ('sdkappid', 'session_id'))})")
    con.execute(f"INSERT INTO {ds}.{LEDGER} BY NAME SELECT {LEDGER_SELECT} FROM changed "
                "WHERE began_at IS NOT NULL ORDER BY last_at")
    _done(con, ds, now)
    return written


def starts_between(lo: Any, hi: Any) -> str:
    """Rows begun in ``[lo, hi]`` (none when ``lo`` is None), as constants for zone maps."""
    if lo is None:
        return "FALSE"
    return (f"began_at BETWEEN TIMESTAMPTZ {literal(lo.isoformat())} "
            f"AND TIMESTAMPTZ {literal(hi.isoformat())}")


def _done(con: duckdb.DuckDBPyConnection, ds: str, now: str) -> None:
    con.execute(f"DELETE FROM {ds}.{STATE_TABLE}")
    con.execute(f"INSERT INTO {ds}.{STATE_TABLE} VALUES (?)", [now])


def new_runs_sql(ds: str, logs: list[str], mark: str | None, now: str) -> str:
    """The runs loaded after the last upkeep's timeline watermark ``mark`` and up to the
    current one ``now``: the ids the timeline rows rewritten since then carry. Constants,
    so DuckDB skips the runs' history (appended in load order) by its zone maps."""
    return (f"SELECT run_id FROM ({timeline.finished_sql(ds, logs)}) AS f "
            f"WHERE _dlt_load_id > {literal(mark or '')} AND _dlt_load_id <= {literal(now)} "
            "ORDER BY run_id")


def rewritten(runs: list[str], mark: str | None) -> str:
    """Timeline rows written by the upkeeps of ``runs`` (every row on a first upkeep); the
    range first, for zone maps."""
    if mark is None:
        return "TRUE"
    return (f"run_id BETWEEN {literal(runs[0])} AND {literal(runs[-1])} AND run_id IN "
            f"({literals(runs)})" if runs else "FALSE")
