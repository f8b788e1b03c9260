"""Every figure a report shows, fetched in this one module, from the data the notebooks
read (the published snapshot, or a destination server; never the job's own file).

One rule for every figure and every period: each event counts in the period where it
happened (the interval tables' rule, docs/intervals.md): arrivals where a session asked for
a human, speed of answer, handling time and ratings where the chat was answered, service
level (answered within T ÷ (answered + abandoned after T), ``analysis.service_level``) where
the chat was answered or the customer left, abandonment over the queue exits of the period.
So a month is the sum of its days, and a day's figures do not move when a session begun the
evening before is answered after midnight. The figures come from the interval tables through
:mod:`~tencent_desk.analysis.interval_metrics`, the functions the notebooks read long
windows with, and equal ``timeline_metrics.event_figures`` of the period's sessions. Only
what the tables do not keep is read per session, in a few columns: ratings, and occupancy
per agent group (the agents' intervals carry no group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from tencent_desk.analysis import interval_metrics as im
from tencent_desk.analysis import poll_metrics
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.core import frames
from tencent_desk.core.errors import JobError
from tencent_desk.core.settings import NO_GROUP
from tencent_desk.core.sql import qualified
from tencent_desk.models import intervals
from tencent_desk.readers.window import (
    data_days,
    ends_inside,
    partly,
    reader,
    same_point,
)

from .period import Period
from .source import Source
from .targets import Targets

HOUR = "1h"
# key -> (its column of interval_metrics.figures, or None: occupancy, computed here; the
# column of the share of exact times it rests on; unit; the direction a target holds the
# value to: "min" at least, "max" at most, None none)
# (service level's share is its answers': the tables keep no exactness of abandons' waits)
FIGURES: dict[str, tuple[str | None, str, str, str | None]] = {
    "service_level": ("service_level", "wait_exact_share", "share", "min"),
    "speed_of_answer_s": ("wait_mean_s", "wait_exact_share", "s", "max"),
    "abandonment": ("abandonment", "exits_exact_share", "share", "max"),
    "handling_time_s": ("handle_mean_s", "handle_exact_share", "s", "max"),
    "arrivals": ("queued", "queued_exact_share", "count", None),
    "occupancy": (None, "handle_exact_share", "share", "max"),
}
TITLES = {"service_level": "Service level", "speed_of_answer_s": "Speed of answer (mean)",
          "abandonment": "Abandonment", "handling_time_s": "Handling time (mean)",
          "arrivals": "Arrivals (asked for a human)", "occupancy": "Occupancy"}
# What a chat is read with, per session: what the interval tables do not keep.
CHAT_COLUMNS = ("agent_id", "agent_group_name", "answered_at", "ended_at", "satisfaction")
CHATBOT_ONLY = "no agent group (chatbot only)"


@dataclass
class Figure:
    key: str
    title: str
    unit: str
    value: float
    previous: float
    target: float | None
    direction: str | None
    exact_share: float

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None: no target, or no value)."""
        if self.target is None or self.direction is None or pd.isna(self.value):
            return None
        return bool(self.value >= self.target if self.direction == "min"
                    else self.value <= self.target)


@dataclass
class Figures:
    """What one report shows."""

    period: Period
    source: Source
    sdkappid: int | None
    targets: Targets
    sessions: int
    key: list[Figure]
    over_time: pd.DataFrame       # interval_start, arrivals, service_level, answered
    groups: pd.DataFrame          # one row per agent group: the key figures side by side
    agents: pd.DataFrame          # agent_id, served, occupancy, rated, mean_rating
    coverage: dict[str, object]   # what the figures rest on
    failed_runs: pd.DataFrame     # started_at, status, error
    no_data_hours: list[tuple[datetime, datetime]]
    plan: pd.DataFrame | None     # interval_start, forecast, arrivals, agents_required, agents
    plan_note: str
    # what the key figures are compared with: the period before, cut at the same point
    # when the data ends inside this one (``so_far``); ``before_note``: which of its days
    # have data, when not all do
    before: tuple[datetime, datetime]
    so_far: datetime | None = None
    before_note: str = ""
    notes: list[str] = field(default_factory=list)
    # per group: the chats per agent its occupancy is over (timeline_metrics.chats_per_agent)
    chats_per_agent: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    @property
    def empty(self) -> bool:
        return self.sessions == 0 and not self.coverage.get("complete_runs")


def _tables(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    return {t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
        [dataset]).fetchall()}


def _open(source: Source, sdkappid: int | None, since: datetime, until: datetime,
          tables: tuple[str, ...] | None = None
          ) -> tuple[duckdb.DuckDBPyConnection, set[str], Any]:
    """The window's data as the notebooks open it, its tables, and the reader to close;
    ``tables``: only those (a server pulls nothing else)."""
    found = reader(source.where, source.dataset, since, until, sdkappid, tables)
    try:
        con = found.connection()
    except Exception:
        found.close()
        raise
    return con, _tables(con, source.dataset), found


def interval_figures(con: duckdb.DuckDBPyConnection, tables: set[str], dataset: str,
                     since: datetime, until: datetime, target_s: float,
                     by: str | None = None) -> pd.DataFrame:
    """``interval_metrics.figures`` of the window (no row: nothing happened in it)."""
    if not set(intervals.TABLES) <= tables:
        return pd.DataFrame()
    return im.figures(con, since, until, target_s, by, dataset)


def agent_hours(con: duckdb.DuckDBPyConnection, tables: set[str], dataset: str,
                since: datetime, until: datetime, every: str = HOUR) -> pd.DataFrame:
    """Chat-seconds each agent held per ``every`` in which it held a chat."""
    if intervals.AGENT not in tables:
        return pd.DataFrame(columns=["agent_id", "held_s", "agents", "interval_start"])
    return im.occupancy_per_interval(con, since, until, every, dataset)


def key_values(row: pd.Series | None, occupancy: float) -> dict[str, tuple[float, float]]:
    """key -> (value, exact share): a row of ``interval_metrics.figures``, and occupancy."""
    nan = float("nan")
    if row is None:
        return {k: (nan, nan) for k in FIGURES}
    return {k: (occupancy if column is None else float(row[column]), float(row[share]))
            for k, (column, share, _, _) in FIGURES.items()}


def occupancy(hours: pd.DataFrame, capacity: float | pd.Series, by: str | None
              ) -> pd.DataFrame:
    """Occupancy over the hours each agent held a chat (the agent occupancy notebook's
    figure): per agent (``by="agent_id"``), per group, or the desk's (``by=None``);
    ``capacity``: chats per agent, per agent or group (:func:`capacity`)."""
    return tm.occupancy_over_intervals(hours, HOUR, capacity, by)


def capacity(held: pd.DataFrame, targets: Targets) -> tuple[pd.Series, pd.Series]:
    """Chats per agent per group, read from the chats ``held`` (:func:`chats`) unless the
    ``chats_per_agent`` setting gives one for all; and so per agent."""
    per_group = tm.chats_per_agent(held, override=targets.chats_per_agent)
    return per_group, tm.agent_chats_per_agent(held, per_group)


def _desk_occupancy(hours: pd.DataFrame, capacity: float | pd.Series) -> float:
    desk = occupancy(hours, capacity, None)
    return float(desk["occupancy"].iloc[0]) if len(desk) else float("nan")


def over_time(con: duckdb.DuckDBPyConnection, tables: set[str], dataset: str,
              period: Period, end: datetime, threshold_s: float,
              gaps: list[tuple[datetime, datetime]]) -> pd.DataFrame:
    """Arrivals (asked for a human) and service level per interval of the period up to
    ``end``: an interval without a session is there with 0 arrivals, one wholly in
    ``gaps`` (:func:`no_data_hours`) with none (NaN: a gap, not a quiet time)."""
    step = period.interval
    starts = pd.date_range(period.since, max(end, period.since + pd.Timedelta(step)),
                           freq=step, inclusive="left")
    out = pd.DataFrame(index=starts.rename("interval_start"))
    per = (im.per_interval(con, period.since, end, step, dataset=dataset,
                           target_s=threshold_s, gaps=gaps) if intervals.QUEUE in tables
           else pd.DataFrame(columns=["period_start", "arrivals", "answered", "service_level"]))
    per = per.set_index(pd.to_datetime(per["period_start"], utc=True))
    seen = ~im.unseen(starts, pd.Timedelta(step), gaps)
    for column in ("arrivals", "answered"):
        values = per[column].reindex(starts).astype(float)
        out[column] = values.where(~seen, values.fillna(0)).to_numpy()
    out["service_level"] = per["service_level"].reindex(starts).astype(float).to_numpy()
    return out.reset_index()


def chats(con: duckdb.DuckDBPyConnection, tables: set[str], dataset: str, since: datetime,
          until: datetime) -> pd.DataFrame:
    """The chats an agent held in ``[since, until)`` (answered before its end, not ended
    before its start), in the few columns the interval tables do not keep."""
    if tm.TABLE not in tables:
        return pd.DataFrame(columns=list(CHAT_COLUMNS))
    return frames.frame(
        con, f"SELECT {', '.join(CHAT_COLUMNS)} FROM {qualified(dataset, tm.TABLE)} "
        "WHERE agent_id IS NOT NULL AND answered_at < ? "
        "AND (ended_at IS NULL OR ended_at >= ?) AND began_at >= ?",
        [until, since, since - tm.LOOKBACK_SPAN])


def answered_in(held: pd.DataFrame, since: datetime, until: datetime) -> pd.DataFrame:
    """The chats answered in the window: whose ratings count in it."""
    at = pd.to_datetime(held["answered_at"], utc=True)
    return held[(at >= pd.Timestamp(since)) & (at < pd.Timestamp(until))]


def groups(con: duckdb.DuckDBPyConnection, tables: set[str], dataset: str,
           held: pd.DataFrame, since: datetime, end: datetime,
           targets: Targets, per_group: pd.Series) -> pd.DataFrame:
    """The key figures of each agent group side by side (no group: ``(none)``); a
    group's occupancy from its chats that ended (as the interval tables count a chat),
    over its chats per agent (``per_group``: :func:`capacity`)."""
    by = "agent_group_name"
    rows = interval_figures(con, tables, dataset, since, end, targets.service_level_s, by)
    if rows.empty:
        return pd.DataFrame()
    ended = held[held["ended_at"].notna()]
    # names as integer codes: copying a million names costs pandas' string type a second
    group, names = pd.factorize(ended[by].fillna(NO_GROUP))
    coded = ended.assign(**{by: group, "agent_id": pd.factorize(ended["agent_id"])[0]})
    # each group's chats per agent under its code
    slots = pd.Series(per_group.reindex(names).to_numpy(), index=range(len(names)))
    hours = tm.occupancy_per_interval(coded, since, end, HOUR, slots, by=by) if len(ended) \
        else pd.DataFrame(columns=[by, "held_s", "agents", "interval_start"])
    occupied = occupancy(hours, slots, by).set_index(by)["occupancy"]
    occupied.index = names[occupied.index.astype(int)]
    out = []
    for name, row in rows.iterrows():
        values = key_values(row, float(occupied.get(name, float("nan"))))
        # its sessions are its one figure: named for what they are, not "(none)"
        label = CHATBOT_ONLY if name == NO_GROUP and row["queued"] == 0 else str(name)
        out.append({"group": label, "sessions": int(row["began"]),
                    **{k: v for k, (v, _) in values.items()},
                    "chats_per_agent": float(per_group.get(str(name), float("nan")))})
    return pd.DataFrame(out)


def agents(hours: pd.DataFrame, held: pd.DataFrame, since: datetime, until: datetime,
           capacity: float | pd.Series) -> pd.DataFrame:
    """Per agent: chats answered (``served``) and rated in the period, mean rating,
    occupancy (over its group's chats per agent: ``capacity`` per agent_id)."""
    columns = ["agent_id", "served", "rated", "mean_rating", "occupancy"]
    answered = answered_in(held, since, until)
    if answered.empty and hours.empty:
        return pd.DataFrame(columns=columns)
    rated = tm.ratings(answered, "agent_id").set_index("agent_id")
    busy = occupancy(hours, capacity, "agent_id").set_index("agent_id")
    out = rated.join(busy[["occupancy"]], how="outer")
    out["served"] = out["served"].fillna(0).astype(int)
    out["rated"] = out["rated"].fillna(0).astype(int)
    return out.rename_axis("agent_id").reset_index()[columns]


def no_data_hours(con: duckdb.DuckDBPyConnection, dataset: str, tables: set[str],
                  runs: pd.DataFrame, since: datetime, end: datetime
                  ) -> list[tuple[datetime, datetime]]:
    """Spans of whole hours in ``[since, end)`` with neither a complete run (``runs``:
    ``poll_metrics.complete_runs``) nor a callback: nothing was seen of the desk then (a
    quiet hour that was polled is not a gap)."""
    hours = pd.date_range(since, max(end, since), freq=HOUR, inclusive="left")
    seen = set(pd.to_datetime(runs["snapshot_at"], utc=True).dt.floor(HOUR))
    unpolled = [h for h in hours if h not in seen]
    if unpolled and "session_events" in tables:
        # callbacks within the hours the polls missed only: a month holds millions
        seen |= {pd.Timestamp(t).tz_convert("UTC") for (t,) in con.execute(
            "SELECT DISTINCT date_trunc('hour', event_time) FROM "
            f"{qualified(dataset, 'session_events')} "
            "WHERE event_time >= ? AND event_time < ?",
            [unpolled[0].to_pydatetime(),
             (unpolled[-1] + pd.Timedelta(HOUR)).to_pydatetime()]).fetchall()}
    spans: list[list[datetime]] = []
    for hour in hours:
        if hour in seen:
            continue
        start = hour.to_pydatetime()
        if spans and spans[-1][1] == start:
            spans[-1][1] = start + timedelta(hours=1)
        else:
            spans.append([start, start + timedelta(hours=1)])
    return [(a, b) for a, b in spans]


def failed_runs(con: duckdb.DuckDBPyConnection, dataset: str, tables: set[str],
                since: datetime, until: datetime) -> pd.DataFrame:
    if "runs" not in tables:
        return pd.DataFrame(columns=["run_id", "started_at", "status"])
    runs = poll_metrics.incomplete_runs(con, dataset)
    at = pd.to_datetime(runs["started_at"], utc=True)
    return runs[(at >= pd.Timestamp(since)) & (at < pd.Timestamp(until))].reset_index(drop=True)


def plan(con: duckdb.DuckDBPyConnection, dataset: str, tables: set[str], period: Period,
         end: datetime, target_s: float, held: pd.DataFrame,
         gaps: list[tuple[datetime, datetime]]) -> tuple[pd.DataFrame | None, str]:
    """Plan against actual per interval: for each group and interval, the plan made last
    that covers it (the plan in force, as a morning's plan stands where an intraday one
    does not reach); forecast arrivals against those groups' arrivals, agents required
    against the agents who held a chat of theirs (``held``: :func:`chats`); an interval
    wholly in ``gaps`` (:func:`no_data_hours`) has neither (NaN: not seen, not none)."""
    if "staffing_plan" not in tables:
        return None, "No staffing plan in the database (table staffing_plan): nothing to " \
                     "compare with."
    # the columns planning/store.py writes
    rows = con.execute(
        'SELECT plan_id, created_at, "group", interval_start, interval_min, '
        "agents AS agents_required, forecast "
        f"FROM {qualified(dataset, 'staffing_plan')} "
        "WHERE interval_start >= ? AND interval_start < ?", [period.since, period.until]).df()
    if rows.empty:
        return None, "No staffing plan covers this period."
    newest = rows.loc[rows["created_at"].idxmax()]
    minutes = int(newest["interval_min"])
    if minutes * 60 % intervals.WIDTH_S:
        return None, (f"Plan {newest['plan_id']} has intervals of {minutes} minutes: the "
                      f"actual figures are kept per {intervals.WIDTH_S // 60} minutes, so "
                      "they cannot be compared.")
    # one width in one table: the newest plan's; plans at another width are named, not mixed
    same = rows[rows["interval_min"] == minutes]
    chosen = same.assign(group=same["group"].astype(str),
                         interval_start=pd.to_datetime(same["interval_start"], utc=True)
                         ).sort_values("created_at", kind="stable").drop_duplicates(
                             ["group", "interval_start"], keep="last")
    keys = chosen[["group", "interval_start"]]
    planned = chosen.groupby("interval_start")[["forecast", "agents_required"]].sum()
    step = f"{minutes * 60}s"
    names = sorted(chosen["group"].unique())
    actual = (im.per_interval(con, period.since, end, step, by="agent_group_name",
                              dataset=dataset, target_s=target_s)
              if intervals.QUEUE in tables else pd.DataFrame(columns=["group", "period_start",
                                                                       "arrivals"]))
    actual = keys.merge(actual.assign(interval_start=pd.to_datetime(actual["period_start"],
                                                                    utc=True)))
    arrived = actual.groupby("interval_start")["arrivals"].sum()
    group = held["agent_group_name"].fillna(NO_GROUP).astype(str)
    with_chat = [tm.occupancy_per_interval(held[group == g], period.since, end, step)[
        ["agent_id", "interval_start"]].assign(group=g) for g in names if (group == g).any()]
    staffed = (keys.merge(pd.concat(with_chat).assign(interval_start=lambda f: pd.to_datetime(
        f["interval_start"], utc=True))).groupby("interval_start")["agent_id"].nunique()
        if with_chat else pd.Series(dtype=int))
    seen = ~im.unseen(pd.DatetimeIndex(planned.index), pd.Timedelta(step), gaps)
    out = planned.assign(arrivals=arrived.reindex(planned.index).fillna(0).where(seen),
                         agents=staffed.reindex(planned.index).fillna(0).where(seen))
    ids = list(dict.fromkeys(chosen.sort_values("created_at", ascending=False)["plan_id"]
                             .astype(str)))
    other = rows.loc[rows["interval_min"] != minutes, "plan_id"].astype(str).unique()
    note = (f"Plan {ids[0]}" if len(ids) == 1 else
            f"Plans {', '.join(ids)} (the one made last for each interval)")
    note += f", intervals of {minutes} minutes, for {', '.join(names)}."
    if len(other):
        note += (f" Left out, being of another interval width: plan "
                 f"{', '.join(sorted(other))}.")
    return out.reset_index(), note


def gather(source: Source, period: Period, targets: Targets,
           now: datetime | None = None) -> Figures:
    """Everything the page shows, for the period and the one before it."""
    source.check()
    now = now or datetime.now(UTC)
    # what the user must fix, one line: an unknown app; a server's own (DestinationError)
    fix: tuple[type[Exception], ...] = (ValueError,)
    if not isinstance(source.where, Path):
        from tencent_desk.readers.warehouse import DestinationError

        fix = (ValueError, DestinationError)
    try:
        return _gather(source, source.sdkappid, period, targets, now)
    except fix as exc:
        raise JobError(str(exc)) from None


def _check_intervals(source: Source, con: duckdb.DuckDBPyConnection, tables: set[str]
                     ) -> None:
    """Sessions without interval tables (kept by a version before them), or with tables an
    earlier version made: the figures would say "no data" or fail; one line saying how to
    make them instead."""
    if tm.TABLE not in tables:
        return
    where = (f"--database {source.where}" if isinstance(source.where, Path)
             else f"--destination {source.where}")
    if not set(intervals.TABLES) <= tables:
        raise JobError(f"{source.where} has sessions but no interval tables (the report's "
                       f"figures): run `desk-sessions publish {where}` once, it makes them")
    if im.made_earlier(con, source.dataset):
        raise JobError(f"the interval tables of {source.where} were made by an earlier "
                       f"version: run `desk-sessions publish {where}` once, it makes them "
                       "anew")


def _first(rows: pd.DataFrame) -> pd.Series | None:
    return rows.iloc[0] if len(rows) else None


def _previous(source: Source, sdkappid: int | None, since: datetime, until: datetime,
              targets: Targets) -> dict[str, tuple[float, float]]:
    """The key figures of ``[since, until)`` before, from its interval rows alone."""
    # the timeline too: the chats say each agent's group and its chats per agent
    con, tables, opened = _open(source, sdkappid, since, until, (*intervals.TABLES, tm.TABLE))
    try:
        # a period with no session at all is a gap in the data, not a desk with nothing
        row = _first(interval_figures(con, tables, source.dataset, since, until,
                                      targets.service_level_s))
        hours = agent_hours(con, tables, source.dataset, since, until)
        _, per_agent = capacity(chats(con, tables, source.dataset, since, until), targets)
        return key_values(row, _desk_occupancy(hours, per_agent))
    finally:
        opened.close()  # type: ignore[attr-defined]


def _gather(source: Source, sdkappid: int | None, period: Period, targets: Targets,
            now: datetime) -> Figures:
    end = min(period.until, now)  # nothing is counted or shown past now
    ds = source.dataset
    # from the timeline's lookback before: the chats still held when the period began
    con, tables, opened = _open(source, sdkappid, period.since - tm.LOOKBACK_SPAN,
                                period.until)
    try:
        _check_intervals(source, con, tables)
        row = _first(interval_figures(con, tables, ds, period.since, end,
                                      targets.service_level_s))
        hours = agent_hours(con, tables, ds, period.since, end)
        held = chats(con, tables, ds, period.since, end)
        per_group, per_agent = capacity(held, targets)
        values = key_values(row, _desk_occupancy(hours, per_agent))
        # data ending inside the period (now, or the job stopped): the period before as far
        # in, not whole (docs/analysis.md: a week so far with the week before so far)
        days = data_days(source.where, ds)
        so_far = ends_inside(con, ds, days[-1] if days else None, period.since, end)
        whole = (period.previous.since, period.previous.until)
        before = (whole[0], same_point(period.since, so_far, whole) if so_far else whole[1])
        earlier = _previous(source, sdkappid, *before, targets)
        key = [Figure(k, TITLES[k], unit, value, earlier[k][0],
                      getattr(targets, k), direction, share)
               for k, (_, _, unit, direction) in FIGURES.items()
               for value, share in [values[k]]]
        runs = poll_metrics.complete_runs(con, ds) if "runs" in tables else \
            pd.DataFrame(columns=["snapshot_at"])
        ran = pd.to_datetime(runs["snapshot_at"], utc=True)
        began = 0 if row is None else int(row["began"])
        coverage: dict[str, object] = {
            "sessions": began,
            "exact_share": float("nan") if row is None else float(row["began_exact_share"]),
            "complete_runs": int(((ran >= pd.Timestamp(period.since))
                                  & (ran < pd.Timestamp(period.until))).sum()),
            "callbacks": "session_events" in tables, "records": "session_records" in tables,
        }
        gaps = no_data_hours(con, ds, tables, runs, period.since, end)
        plan_rows, plan_note = plan(con, ds, tables, period, end, targets.service_level_s,
                                    held, gaps)
        return Figures(
            period=period, source=source, sdkappid=sdkappid, targets=targets,
            sessions=began, key=key,
            over_time=over_time(con, tables, ds, period, end, targets.service_level_s, gaps),
            groups=groups(con, tables, ds, held, period.since, end, targets, per_group),
            agents=agents(hours, held, period.since, end, per_agent),
            coverage=coverage,
            failed_runs=failed_runs(con, ds, tables, period.since, period.until),
            no_data_hours=gaps, plan=plan_rows, plan_note=plan_note, before=before,
            so_far=so_far, before_note=partly(days, *before), chats_per_agent=per_group)
    finally:
        opened.close()  # type: ignore[attr-defined]
