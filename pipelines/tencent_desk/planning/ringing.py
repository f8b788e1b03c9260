"""How long an offer rings (an agent was offered the chat and has not yet accepted it), as
the polls saw it.

Callbacks and records time the answer, not the offer, so a wait read from them runs to the
answer: the ringing inside it makes patience look longer and the model's queue shorter
than they are (docs/planning.md, "Patience and the offer's ringing"). Polls see a ringing
chat as ``waiting_for_agent``. Each sighting stands for the time since the app's poll run
before, a run that found nothing live included (Horvitz-Thompson: a ringing of r seconds is
seen by a run with chance r / gap), so the sightings' weights add up, in expectation, to
the ringing of the chats answered in those gaps. Gaps longer than MAX_GAP_S (nights without
runs, a failed cron) are left out: one sighting there would weigh hours.

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
         "runs": ("sdkappid", "run_id", "status", "started_at"),
         TABLE: ("sdkappid", "offered_source")}

# The runs and the answered chats both queries read (params: the runs', the chats' window).
_COMMON = """
WITH runs AS (  -- every poll run, those that found no session live too
    SELECT sdkappid, run_id, started_at AS run_at FROM {runs}
    WHERE status = 'complete' AND started_at >= ? AND started_at < ?
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
)"""

# One query each, not one of both: a quarter's polls at a run a minute peaked at 0.87 GB
# together, 0.4 GB apart.
_SEEN = """,
sightings AS (
    SELECT sdkappid, run_id, session_id FROM {states}
    WHERE state = {ringing} AND polled_at >= ? AND polled_at < ?
)
SELECT t."group", t.day, count(*) AS seen, sum(epoch(c.run_at - c.before)) AS seen_s
-- the run by its id alone (an app's run has its own): with the app in both joins the
-- optimizer joined the chats to every run of their app first, billions of rows
FROM sightings s JOIN covered c ON c.run_id = s.run_id
    JOIN rang t ON t.sdkappid = s.sdkappid AND t.session_id = s.session_id
GROUP BY ALL"""

# each chat in the gap of the first run at or after its answer (an as-of join, not a range
# join: weeks of runs against millions of chats)
_COVERED = """
SELECT t."group", t.day, count(*) AS covered
FROM rang t ASOF JOIN gaps g ON t.sdkappid = g.sdkappid AND t.answered_at <= g.run_at
WHERE epoch(g.run_at - g.before) <= {max_gap}
GROUP BY ALL"""


def seen(con: Any, dataset: str, since: Any, until: Any) -> pd.DataFrame | None:
    """Per group and day of the sessions begun in ``[since, until)``: the polls' sightings
    of ringing and the answered chats of the gaps they cover
    (:data:`summary.RINGING_COLUMNS`); None where the dataset has no polls."""
    have = {(t, c) for t, c in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = ?", [dataset]).fetchall()}
    if not all((t, c) in have for t, cols in NEEDS.items() for c in cols):
        return None
    names = {"states": qualified(dataset, "session_states"),
             "runs": qualified(dataset, "runs"), "timeline": qualified(dataset, TABLE),
             "assigned": ASSIGNED_SQL, "max_gap": MAX_GAP_S, "none": NO_GROUP,
             "us_day": US_DAY, "ringing": literal(states.WAITING_FOR_AGENT)}
    # the runs and polls of the sessions begun in the window, and of the hour before its
    # first gap
    polls = [pd.Timestamp(since) - pd.Timedelta(seconds=MAX_GAP_S),
             pd.Timestamp(until) + pd.Timedelta(days=1)]
    common = [*polls, since, until]
    key = ["group", "day"]
    seen_ = frames.frame(con, (_COMMON + _SEEN).format(**names), [*common, *polls])
    covered = frames.frame(con, (_COMMON + _COVERED).format(**names), common)
    got = covered.merge(seen_, on=key, how="left").fillna({"seen": 0, "seen_s": 0.0})
    got["day"] = pd.to_datetime(got.day.astype("int64") * US_DAY, unit="us", utc=True)
    return got[RINGING_COLUMNS].sort_values(key, ignore_index=True).astype(
        {"seen": float, "seen_s": float, "covered": float})
