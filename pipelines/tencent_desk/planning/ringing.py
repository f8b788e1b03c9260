"""How long an offer rings (an agent was offered the chat and has not yet accepted it), as
the polls saw it.

Callbacks and records time the answer, not the offer, so a wait read from them runs to the
answer: the ringing inside it makes patience look longer and the model's queue shorter
than they are (docs/planning.md, "Patience"). Polls see a ringing chat as
``waiting_for_agent``. Each sighting stands for the time since the app's poll run before
(Horvitz-Thompson: a ringing of r seconds is seen by a run with chance r / gap), so the
sightings' weights add up, in expectation, to the ringing of the chats answered in those
gaps. Gaps longer than MAX_GAP (nights without runs, a failed cron) are left out: one
sighting there would weigh hours.

Only chats whose data do not time the offer are counted, on both sides: the ones whose wait
holds the ringing (``summary``'s rule).

The assumption, here and only here: an offer rings as long in every group (it is how agents
take an offer, in one desk client), so a plan reads one ringing from every group's
sightings. A group's own would be too few: a run every 5 minutes sees about 1 in 30 offers
ring, and on three days of the simulated weeks a group's estimate was off by up to 55%,
which moved its patience by a third (benchmarks/RESULTS.md, "Plan replayed in the
simulator").
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from tencent_desk.api import states
from tencent_desk.core import frames
from tencent_desk.core.settings import NO_GROUP
from tencent_desk.core.sql import literal, qualified
from tencent_desk.models.timeline import TABLE
from tencent_desk.planning.summary import ASSIGNED_SQL, RINGING_COLUMNS, US_DAY

MAX_GAP_S = 3_600
NEEDS = {"session_states": ("sdkappid", "run_id", "polled_at", "state", "session_id"),
         "runs": ("run_id", "status"), TABLE: ("sdkappid", "offered_source")}

_SQL = """
WITH runs AS (
    SELECT s.sdkappid, s.run_id, min(s.polled_at) AS run_at
    FROM {states} s JOIN {runs} r USING (run_id)
    WHERE r.status = 'complete' AND s.polled_at >= ? AND s.polled_at < ?
    GROUP BY ALL
),
gaps AS (
    SELECT sdkappid, run_id, run_at,
           lag(run_at) OVER (PARTITION BY sdkappid ORDER BY run_at) AS before FROM runs
),
covered AS (SELECT * FROM gaps WHERE epoch(run_at - before) <= {max_gap}),
rang AS (  -- answered, the wait running to the answer
    SELECT sdkappid, session_id, answered_at,
           coalesce(agent_group_name, '{none}') AS "group",
           epoch_us(began_at) // {us_day} AS day
    FROM {timeline}
    WHERE began_at >= ? AND began_at < ? AND answered_at IS NOT NULL
        AND {assigned} >= answered_at
),
seen AS (
    SELECT t."group", t.day, count(*) AS seen, sum(epoch(c.run_at - c.before)) AS seen_s
    FROM {states} s JOIN covered c USING (sdkappid, run_id)
        JOIN rang t USING (sdkappid, session_id)
    WHERE s.state = {ringing}
    GROUP BY ALL
),
answered AS (  -- each in the gap of the first run at or after its answer (an as-of join,
               -- not a range join: weeks of runs against millions of chats)
    SELECT t."group", t.day, count(*) AS covered
    FROM rang t ASOF JOIN gaps g ON t.sdkappid = g.sdkappid AND t.answered_at <= g.run_at
    WHERE epoch(g.run_at - g.before) <= {max_gap}
    GROUP BY ALL
)
SELECT a."group", a.day, coalesce(s.seen, 0) AS seen,
       coalesce(s.seen_s, 0) AS seen_s, a.covered
FROM answered a LEFT JOIN seen s USING ("group", day)
ORDER BY 1, 2
"""


def seen(con: Any, dataset: str, since: Any, until: Any) -> pd.DataFrame | None:
    """Per group and day of the sessions begun in ``[since, until)``: the polls' sightings
    of ringing and the answered chats of the gaps they cover
    (:data:`summary.RINGING_COLUMNS`); None where the dataset has no polls."""
    have = {(t, c) for t, c in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = ?", [dataset]).fetchall()}
    if not all((t, c) in have for t, cols in NEEDS.items() for c in cols):
        return None
    sql = _SQL.format(states=qualified(dataset, "session_states"),
                      runs=qualified(dataset, "runs"), timeline=qualified(dataset, TABLE),
                      assigned=ASSIGNED_SQL, max_gap=MAX_GAP_S, none=NO_GROUP, us_day=US_DAY,
                      ringing=literal(states.WAITING_FOR_AGENT))
    # polls of the sessions begun in the window, and of the hour before its first gap
    polls_from = pd.Timestamp(since) - pd.Timedelta(seconds=MAX_GAP_S)
    polls_until = pd.Timestamp(until) + pd.Timedelta(days=1)
    got = frames.frame(con, sql, [polls_from, polls_until, since, until])
    got["day"] = pd.to_datetime(got.day.astype("int64") * US_DAY, unit="us", utc=True)
    return got[RINGING_COLUMNS].astype({"seen": float, "seen_s": float, "covered": float})
