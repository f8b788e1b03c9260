"""What a plan reads of the sessions, summed where they are stored.

Every figure a plan takes adds up over any days and over intervals of 15, 30 or 60 minutes:
the sessions asking for a human per group and interval (with those answered within the
target and those abandoned), the time waited and the abandonments that estimate patience,
handling per interval of the day and by the chats an agent held. So eight weeks of a busy
desk (2.8 M sessions) become a few thousand rows, summed by DuckDB (one SQL model, over the
timeline or over a frame of sessions) instead of held in pandas: a plan no longer costs
with the sessions behind it.

The rules, in one place:
- a session counts in the 15-minute interval in which it asked for a human
  (``queued_at``), and in the day on which it began for patience and handling;
- it ``waited`` from asking until an agent took it (``assigned_at``: the offer where the
  data time it exactly, else the answer), or until it left when it abandoned;
- it ``held`` its agent's slot from assigned to ended; the chats its agent held just after
  taking it (itself included) are the concurrency agents really keep.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow.compute as pc
from tencent_desk.core import frames
from tencent_desk.core.settings import NO_GROUP
from tencent_desk.core.spans import held_at_starts
from tencent_desk.models.intervals import seconds

GRAIN_MIN = 15  # minutes: the plan's intervals (15, 30, 60) are whole numbers of these
MIN_CHATS = 30  # fewer chats in an interval of the day: the group's mean handling time
_US_GRAIN = GRAIN_MIN * 60_000_000
US_DAY = 86_400_000_000
_NEVER = 2**62  # a chat not ended (yet), a session without a start: after any time

# What the summary reads of each session (a frame of these columns, or DERIVED_SQL).
COLUMNS = ["began_at", "queued_at", "assigned_at", "answered_at", "ended_at", "agent_id",
           "agent_group_name", "hold_s", "abandoned"]

# The timeline's sessions as the plan reads them: the offer ends a wait where the data time
# it exactly (events, records); polls only bound it, and there the answer does.
ASSIGNED_SQL = ("CASE WHEN offered_source IN ('event', 'record') AND offered_at >= queued_at "
                "THEN offered_at ELSE answered_at END")
# An agent id is an app's: the same id in two apps read together is two agents.
DERIVED_SQL = f"""SELECT began_at, queued_at, assigned_at, answered_at, ended_at,
    CASE WHEN agent_id IS NOT NULL THEN concat_ws('/', sdkappid, agent_id) END AS agent_id,
    agent_group_name,
    {seconds("ended_at", "assigned_at")} AS hold_s, abandoned
    FROM (SELECT *, {ASSIGNED_SQL} AS assigned_at FROM ({{rows}}))"""


def _sessions(sessions: str) -> str:
    """Each session of the relation ``sessions`` (COLUMNS) as the sums read it: times in
    microseconds since the epoch, its day, its group."""
    return f"""(SELECT epoch_us(began_at) // {US_DAY} AS day,
                coalesce(agent_group_name, '{NO_GROUP}') AS "group",
                epoch_us(queued_at) AS queued_us, epoch_us(assigned_at) AS assigned_us,
                epoch_us(answered_at) AS answered_us,
                epoch_us(ended_at) AS ended_us,
                -- an agent of a group as a 64-bit hash: 8 bytes a row rather than its text
                -- (two of 10,000 agents share one with a chance near 3e-12)
                CASE WHEN agent_id IS NOT NULL
                     THEN hash(coalesce(agent_group_name, '{NO_GROUP}'), agent_id) END AS agent,
                CASE WHEN isnan(hold_s) THEN NULL ELSE hold_s END AS hold_s,
                coalesce(abandoned, false) AS abandoned
             FROM {sessions})"""


def _sums(s: str, target_s: float) -> str:
    """The query summing ``s`` (:func:`_sessions`) per group, day begun and 15-minute
    interval asked in: one pass over the sessions, fine enough for every table but
    ``held`` to be summed from it (:func:`_split`)."""
    waited = "(coalesce(assigned_us, CASE WHEN abandoned THEN ended_us END) - queued_us) / 1e6"
    return f"""
        SELECT "group", day, queued_us // {_US_GRAIN} AS grain, count(*) AS sessions,
            count(queued_us) AS queued,
            count(*) FILTER ((coalesce(answered_us, assigned_us) - queued_us) / 1e6
                             <= {float(target_s)!r}) AS in_time,
            count(*) FILTER (queued_us IS NOT NULL AND abandoned) AS abandoned,
            count(*) FILTER (queued_us IS NOT NULL AND abandoned
                             AND w <= {float(target_s)!r}) AS abandoned_in_time,
            count(w) AS waited, sum(greatest(w, 0)) AS waited_s,
            count(w) FILTER (abandoned) AS gave_up,
            coalesce(sum(greatest(w, 0)) FILTER (abandoned), 0) AS gave_up_s,
            -- answered, the offer's ringing inside the wait (no exact offer before the answer)
            count(w) FILTER (NOT abandoned AND assigned_us >= answered_us) AS rang_in_wait,
            coalesce(sum((answered_us - assigned_us) / 1e6) FILTER (
                w IS NOT NULL AND NOT abandoned AND assigned_us < answered_us), 0) AS rang_s,
            count(hold_s) FILTER (queued_us IS NOT NULL) AS chats,
            sum(hold_s) FILTER (queued_us IS NOT NULL) AS hold_s
        FROM (SELECT *, {waited} AS w FROM {s}) GROUP BY ALL"""


# per group and interval: asked, answered within the target, abandoned, and abandoned
# within it (counted out of the service level, the field's definition)
_QUEUE = ["queued", "in_time", "abandoned", "abandoned_in_time"]


def _split(sums: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """:func:`_sums` summed into the tables of a :class:`Summary` (but ``held``)."""
    sums = sums.assign(slot=sums.grain % (US_DAY // _US_GRAIN))

    def table(keys: list[str], kept: list[str], count: str) -> pd.DataFrame:
        rows = sums.dropna(subset=keys)
        out = rows.groupby(keys, as_index=False)[kept + ([count] if count not in kept
                                                          else [])].sum()
        return out[out[count] > 0][keys + kept].reset_index(drop=True).astype(
            {k: "int64" for k in keys if k != "group"})
    return {"days": table(["day"], ["sessions"], "sessions"),
            "queue": table(["group", "grain"], _QUEUE, "queued"),
            "waits": table(["group", "day"], ["waited", "waited_s", "gave_up", "gave_up_s",
                                              "rang_in_wait", "rang_s"], "waited"),
            "handling": table(["group", "day", "slot"], ["chats", "hold_s"], "chats")}


def _takes(con: duckdb.DuckDBPyConnection, s: str, params: list[object] | None
           ) -> tuple[list[str], dict[str, np.ndarray]]:
    """The groups, and each take of a chat by an agent (agent, g: its group's index in
    them, its start and end, its session's day and hold_s) as NumPy arrays, from ``s``
    (:func:`_sessions`)."""
    got = con.sql(f"""
        SELECT agent, "group", assigned_us, coalesce(ended_us, {_NEVER}) AS ended_us,
               coalesce(day, {_NEVER}) AS day, coalesce(hold_s, 'NaN'::DOUBLE) AS hold_s
        FROM {s} WHERE assigned_us IS NOT NULL AND agent IS NOT NULL""",
                  params=params or None).to_arrow_table()
    group = pc.dictionary_encode(got["group"]).combine_chunks()
    arrays = {c: got[c].to_numpy() for c in ("agent", "assigned_us", "ended_us", "day",
                                              "hold_s")}
    return group.dictionary.to_pylist(), {**arrays, "g": group.indices.to_numpy()}


# per group and day: the polls' sightings of ringing chats (``seen``; ``seen_s``, each
# weighted by the time since the run before) and the chats answered in the spans they cover
# (``covered``): see planning/ringing.py
RINGING_COLUMNS = ["group", "day", "seen", "seen_s", "covered"]
MIN_SEEN = 20  # fewer sightings say too little: the ringing is then taken as none


def _no_ringing() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "group" else "datetime64[ns, UTC]"
                                      if c == "day" else float) for c in RINGING_COLUMNS})


@dataclass(frozen=True)
class Ringing:
    """The offer's ringing (an agent offered the chat and has not yet accepted it), which
    customers do not leave during and which holds the agent's slot."""

    mean_s: float  # per answered chat: from the offer to the answer
    hidden_s: float  # in total, inside the waits that ran to the answer (no exact offer)
    unheld_s: float  # per answered chat, what its handling time (from the answer) leaves out


_NO_TAKES = pd.DataFrame({"group": [], "day": [], "held": [], "chats": [], "hold_s": []})


def _held(names: list[str], takes: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per group, day and chats held by the agent just after a take (its takes so far minus
    its ends so far, ties included): chats and their hold_s. In NumPy over the takes sorted
    by agent and time, where DuckDB's window (or its sort) over millions of them took
    seconds and hundreds of MB."""
    if not len(takes["assigned_us"]):
        return _NO_TAKES.copy()
    order = np.lexsort((takes["assigned_us"], takes["agent"]))
    by_agent = takes["agent"][order]
    agent = np.concatenate([[0], np.cumsum(by_agent[1:] != by_agent[:-1])])
    del by_agent
    held = held_at_starts(agent, takes["assigned_us"][order], takes["ended_us"][order])
    del agent
    hold = takes["hold_s"].astype(float)[order]
    day = takes["day"].astype(np.int64)[order]
    g = takes["g"].astype(np.int64)[order]
    ok = ~np.isnan(hold) & (day != _NEVER)
    g, day, held, hold = g[ok], day[ok], held[ok], hold[ok]
    if not len(hold):
        return _NO_TAKES.copy()
    # summed per (group, day, held) by one integer key: a few thousand cells, counted
    d0, h0 = int(day.min()), int(held.min())
    nd, nh = int(day.max()) - d0 + 1, int(held.max()) - h0 + 1
    key = (g * nd + (day - d0)) * nh + (held - h0)
    chats = np.bincount(key)
    cells = np.flatnonzero(chats)
    return pd.DataFrame({
        "group": np.asarray(names, dtype=object)[cells // (nd * nh)],
        "day": cells // nh % nd + d0, "held": cells % nh + h0, "chats": chats[cells],
        "hold_s": np.bincount(key, weights=hold)[cells]})


@dataclass(frozen=True)
class Summary:
    """Sessions summed for planning (see the module): ``days``, sessions begun per UTC day;
    ``queue`` per group and 15-minute interval (queued, in_time: answered within
    ``target_s``, abandoned, abandoned_in_time: abandoned within it); ``waits`` per group
    and day (waited_s, gave_up: abandoned); ``handling`` per group, day and 15-minute slot
    of the day (chats, hold_s); ``held`` per group, day and chats held at the take (chats,
    hold_s); ``latest_start``, where the data ends: the latest session start the source
    holds before the end of the sessions summed (before their start too: the data may end
    before them), None without any; ``sdkappids``, the apps of the sessions summed (their
    ``sdkappid``, NULL left out; empty where the source does not say); ``ringing_seen``,
    what polls saw of the offers' ringing (:data:`RINGING_COLUMNS`)."""

    target_s: float
    days: pd.Series
    queue: pd.DataFrame
    waits: pd.DataFrame
    handling: pd.DataFrame
    held: pd.DataFrame
    latest_start: pd.Timestamp | None = None
    sdkappids: tuple[int, ...] = ()
    ringing_seen: pd.DataFrame = field(default_factory=_no_ringing)

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, sessions: str, target_s: float,
             params: list[object] | None = None,
             latest_start: pd.Timestamp | None = None) -> Summary:
        """Summed by ``con`` over the relation ``sessions`` (SQL with ``?`` ``params``);
        ``latest_start``: where the source's data ends (its own query: the data may end
        before ``sessions``)."""
        rows = _sessions(f"({sessions})")
        # the takes (and the sort that counts chats held) on a cursor of their own while
        # the sums run: each leaves a core idle for part of its time (weeks of a busy desk:
        # 1.7 s one after the other)
        cursor = con.cursor()
        try:
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(lambda: _held(*_takes(cursor, rows, params)))
                tables = _split(frames.frame(con, _sums(rows, target_s), params or None))
                tables["held"] = held.result()
        finally:
            cursor.close()
        days = tables.pop("days")
        day_index = pd.to_datetime(days.day.astype("int64") * US_DAY, unit="us", utc=True)
        queue = tables.pop("queue")
        queue.insert(1, "interval_start", pd.to_datetime(
            queue.pop("grain").astype("int64") * _US_GRAIN, unit="us", utc=True))
        for name in ("waits", "handling", "held"):
            t = tables[name]
            t["day"] = pd.to_datetime(t.day.astype("int64") * US_DAY, unit="us", utc=True)
        return cls(float(target_s), pd.Series(days.sessions.to_numpy(), index=day_index),
                   queue, tables["waits"], tables["handling"], tables["held"], latest_start)

    @classmethod
    def of(cls, sessions: pd.DataFrame, target_s: float) -> Summary:
        """A frame of sessions (:data:`COLUMNS`) summed: the replayed days, and tests.
        Without ``answered_at``, each was answered when assigned (the offer not timed)."""
        if "answered_at" not in sessions:
            sessions = sessions.assign(answered_at=sessions.assigned_at)
        con = duckdb.connect(":memory:")
        try:
            # a table, not a registered frame: the read's second cursor sees tables only
            con.register("frame", sessions[COLUMNS])
            con.execute("CREATE TABLE sessions AS SELECT * FROM frame")
            latest = sessions.began_at.max()
            return cls.read(con, "SELECT * FROM sessions", target_s,
                            latest_start=None if pd.isna(latest) else pd.Timestamp(latest))
        finally:
            con.close()

    def __add__(self, other: Summary) -> Summary:
        """Two summaries of different sessions as one."""
        if other.target_s != self.target_s:
            raise ValueError("summaries of different service targets cannot be added")

        def both(a: pd.DataFrame, b: pd.DataFrame, key: list[str]) -> pd.DataFrame:
            return pd.concat([a, b], ignore_index=True).groupby(key, as_index=False).sum()
        return Summary(
            self.target_s, pd.concat([self.days, other.days]).groupby(level=0).sum(),
            both(self.queue, other.queue, ["group", "interval_start"]),
            both(self.waits, other.waits, ["group", "day"]),
            both(self.handling, other.handling, ["group", "day", "slot"]),
            both(self.held, other.held, ["group", "day", "held"]),
            max((t for t in (self.latest_start, other.latest_start) if t is not None),
                default=None), tuple(sorted({*self.sdkappids, *other.sdkappids})),
            both(self.ringing_seen, other.ringing_seen, ["group", "day"]))

    @property
    def sessions(self) -> int:
        return int(self.days.sum())

    def data_days(self, before: pd.Timestamp | None = None) -> pd.DatetimeIndex:
        """The UTC days on which any session began (before ``before``)."""
        days = self.days.index[self.days.to_numpy() > 0]
        return pd.DatetimeIndex(days[days < before] if before is not None else days)

    def groups(self, before: pd.Timestamp) -> list[str]:
        """The groups of sessions that asked for a human before ``before``."""
        q = self.queue
        return sorted(q.group[(q.interval_start < before) & (q.queued > 0)].unique())

    def counts(self, freq: str, days: pd.DatetimeIndex) -> pd.DataFrame:
        """Sessions asking for a human per ``freq`` interval and group: one column per
        group, one row per interval of ``days`` (UTC midnights); days without data NaN."""
        grid = pd.date_range(days.min(), days.max() + pd.Timedelta(days=1), freq=freq,
                             inclusive="left") if len(days) else pd.DatetimeIndex([], tz="UTC")
        q = self.queue
        at = q.interval_start.dt.floor(freq)
        counts = (q.queued.groupby([at, q.group]).sum().unstack("group", fill_value=0)
                  if len(q) else pd.DataFrame())
        counts = counts.reindex(grid, fill_value=0).astype(float)
        counts.index.name = "interval_start"
        counts.columns.name = None
        has_data = pd.Series(counts.index.normalize().isin(days), index=counts.index)
        return counts.where(has_data, axis=0)

    def actuals(self, freq: str, target_s: float) -> pd.DataFrame:
        """Per group and ``freq`` interval: ``arrivals`` (asked for a human), the
        ``service_level_actual`` reached (answered within the target / (answered +
        abandoned after it): the field's definition, the plan's target) and
        ``abandonment_actual``; with the counts behind them, which add up over intervals."""
        if target_s != self.target_s:
            raise ValueError(f"this summary counts answers within {self.target_s:g} s, "
                             f"not {target_s:g} s")
        q = self.queue.assign(interval_start=self.queue.interval_start.dt.floor(freq))
        out = q.groupby(["group", "interval_start"], as_index=False)[_QUEUE].sum()
        kept = out.queued - out.abandoned_in_time
        return pd.DataFrame({
            "group": out.group, "interval_start": out.interval_start,
            "arrivals": out.queued.astype(float),
            "service_level_actual": (out.in_time / kept).where(kept > 0),
            "abandonment_actual": out.abandoned / out.queued,
            "in_time": out.in_time, "kept": kept})

    def window(self, group: str, since: pd.Timestamp, until: pd.Timestamp) -> Summary:
        """One group's sessions begun in ``[since, until)``, as far as the per-day tables
        go (``waits``, ``handling``, ``held``): what a plan's staffing reads."""
        def cut(t: pd.DataFrame) -> pd.DataFrame:
            return t[(t.group == group) & (t.day >= since) & (t.day < until)]
        seen = self.ringing_seen  # every group's: one ringing for the desk (ringing.py)
        return Summary(self.target_s, self.days, self.queue, cut(self.waits),
                       cut(self.handling), cut(self.held), self.latest_start,
                       ringing_seen=seen[(seen.day >= since) & (seen.day < until)])

    def ringing(self) -> Ringing:
        """The offers' ringing: timed where the data time the offer, else as the polls saw
        it in every group summed (none without polls, or with fewer than MIN_SEEN
        sightings)."""
        w, r = self.waits, self.ringing_seen
        answered = float((w.waited - w.gave_up).sum())
        hidden = float(w.rang_in_wait.sum())
        seen_s = (float(r.seen_s.sum()) / float(r.covered.sum())
                  if r.seen.sum() >= MIN_SEEN and r.covered.sum() > 0 else 0.0)
        if not answered:
            return Ringing(0.0, 0.0, 0.0)
        return Ringing((float(w.rang_s.sum()) + seen_s * hidden) / answered, seen_s * hidden,
                       seen_s * hidden / answered)

    def waited(self) -> tuple[float, float]:
        """Total time waited by everyone who asked (the exposure) and the abandonments.
        The ringing the answered's waits hold is not waiting: nobody leaves during it."""
        w = self.waits
        answered_s = float(w.waited_s.sum() - w.gave_up_s.sum())
        exposure = float(w.gave_up_s.sum()) + max(answered_s - self.ringing().hidden_s, 0.0)
        return exposure, float(w.gave_up.sum())

    def handling_per_slot(self, interval_min: int) -> tuple[float, pd.Series]:
        """Mean handling time (s) overall and per interval of the day (time since
        midnight); an interval of the day with fewer than MIN_CHATS chats takes the
        overall mean."""
        h = self.handling
        chats = int(h.chats.sum())
        if not chats:
            return math.nan, pd.Series(dtype=float)
        overall = float(h.hold_s.sum()) / chats
        slot = pd.to_timedelta((h.slot // (interval_min // GRAIN_MIN)) * interval_min,
                               unit="min")
        by = h.groupby(slot.to_numpy())[["chats", "hold_s"]].sum()
        mean = by.hold_s / by.chats
        return overall, mean.where(by.chats >= MIN_CHATS, overall)

    def handling_by_chats(self, quantile: float = 0.99) -> tuple[int, list[float]]:
        """Slots per agent (the ``quantile``, lower, of chats held at the take; at least
        1) and the mean handling time of a chat taken while its agent held j = 1 .. slots
        chats (the overall mean where fewer than MIN_CHATS chats say)."""
        h = self.held.groupby("held")[["chats", "hold_s"]].sum().sort_index()
        n = int(h.chats.sum())
        if not n:
            return 1, [math.nan]
        # numpy's "lower" quantile of the held counts, read from their histogram
        k = math.floor(quantile * (n - 1))
        value = int(h.index[np.searchsorted(np.cumsum(h.chats.to_numpy()), k, "right")])
        slots = max(1, value)
        overall = float(h.hold_s.sum()) / n
        top = h[h.index >= slots].sum()
        means = []
        for j in range(1, slots + 1):
            chats, hold = (top.chats, top.hold_s) if j == slots else (
                (h.chats.get(j, 0), h.hold_s.get(j, 0.0)))
            means.append(float(hold) / chats if chats >= MIN_CHATS else overall)
        return slots, means
