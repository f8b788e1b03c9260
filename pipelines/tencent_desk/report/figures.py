"""Every figure a report shows, fetched in this one module: from the window of the data the
notebooks read (the published snapshot, or a destination server; never the job's own
file), through the notebooks' own functions (:mod:`~tencent_desk.analysis.timeline_metrics`,
:mod:`~tencent_desk.analysis.poll_metrics`), so the page and a notebook never disagree.
Interval tables, once they exist, replace the reads here and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
from tencent_desk.analysis import poll_metrics
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.core.errors import JobError
from tencent_desk.core.sql import qualified
from tencent_desk.readers.snapshot import Reader
from tencent_desk.readers.window import app_id, reader

from .period import Period
from .targets import Targets

HOUR = "1h"
# key -> (the row of timeline_metrics.key_figures, or None: computed here; unit; the
# direction a target holds the value to: "min" at least, "max" at most, None none)
FIGURES: dict[str, tuple[str | None, str, str | None]] = {
    "service_level": (None, "share", "min"),  # its row's name carries the threshold
    "speed_of_answer_s": ("speed of answer, mean (s)", "s", "max"),
    "abandonment": ("abandonment", "share", "max"),
    "handling_time_s": ("handling time, mean (s)", "s", "max"),
    "arrivals": ("arrivals (asked for a human)", "count", None),
    "occupancy": (None, "share", "max"),
}
TITLES = {"service_level": "Service level", "speed_of_answer_s": "Speed of answer (mean)",
          "abandonment": "Abandonment", "handling_time_s": "Handling time (mean)",
          "arrivals": "Arrivals (asked for a human)", "occupancy": "Occupancy"}



@dataclass(frozen=True)
class Source:
    """Where the data is: a DuckDB file (its published snapshot) or a server by name."""

    where: Path | str
    dataset: str
    app: str | None = None  # a name or an sdkappid, as --app gives it

    def check(self) -> None:
        if isinstance(self.where, Path):
            if not self.where.exists():
                raise JobError(f"{self.where} not found: give the job's DuckDB file "
                               "(desk-sessions run --database FILE)")
            if not Reader.available(self.where):  # reading the job's file would block it
                raise JobError(f"{self.where} has never been published for readers: run "
                               f"`desk-sessions run` on it, or `desk-sessions publish "
                               f"--database {self.where}` once")


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
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.sessions == 0 and not self.coverage.get("complete_runs")


def _tables(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    return {t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
        [dataset]).fetchall()}


def _read(source: Source, sdkappid: int | None, since: datetime, until: datetime
          ) -> tuple[pd.DataFrame, pd.DataFrame, set[str], duckdb.DuckDBPyConnection, object]:
    """The window's sessions, those around it (chats begun the day before may still be held
    at its start, as the notebooks read them), its tables, and its open connection."""
    found = reader(source.where, source.dataset, since - timedelta(days=1), until, sdkappid)
    try:
        con = found.connection()
    except Exception:
        found.close()
        raise
    tables = _tables(con, source.dataset)
    if tm.TABLE not in tables:
        return pd.DataFrame(), pd.DataFrame(), tables, con, found
    around = tm.sessions(con, since - timedelta(days=1), until, source.dataset)
    window = around[(around["began_at"] >= pd.Timestamp(since))
                    & (around["began_at"] < pd.Timestamp(until))]
    return window, around, tables, con, found


def key_values(window: pd.DataFrame, occupancy: float, targets: Targets
               ) -> dict[str, tuple[float, float]]:
    """key -> (value, exact share): timeline_metrics.key_figures' rows, and occupancy."""
    if window.empty:
        return {k: (float("nan"), float("nan")) for k in FIGURES}
    rows = tm.key_figures(window, targets.service_level_s)
    level = f"service level ({targets.service_level_s:g} s)"
    out = {k: (float(rows.loc[row or level, "value"]), float(rows.loc[row or level,
                                                                      "exact_share"]))
           for k, (row, _, _) in FIGURES.items() if k != "occupancy"}
    handled = window["handle_exact"].dropna().astype(float)
    out["occupancy"] = (occupancy, float(handled.mean()) if len(handled) else float("nan"))
    return out


def occupancy(around: pd.DataFrame, since: datetime, until: datetime, capacity: float,
              by: str | None) -> pd.DataFrame:
    """Occupancy over the hours with a chat (the agent occupancy notebook's table)."""
    if around.empty:
        return tm.occupancy_over_intervals(pd.DataFrame(), HOUR, capacity, by)
    hourly = tm.occupancy_per_interval(around, since, until, HOUR, capacity,
                                       by=by or "agent_id")
    return tm.occupancy_over_intervals(hourly, HOUR, capacity, by)


def _desk_occupancy(around: pd.DataFrame, since: datetime, until: datetime,
                    capacity: float) -> float:
    desk = occupancy(around, since, until, capacity, None)
    return float(desk["occupancy"].iloc[0]) if len(desk) else float("nan")


def over_time(window: pd.DataFrame, period: Period, end: datetime,
              threshold_s: float) -> pd.DataFrame:
    """Arrivals (asked for a human, by when they queued) and service level per interval of
    the period up to ``end``: intervals without a session are there, empty."""
    step = period.interval
    starts = pd.date_range(period.since, max(end, period.since + pd.Timedelta(step)),
                           freq=step, inclusive="left")
    out = pd.DataFrame(index=starts.rename("interval_start"))
    if window.empty:
        return out.assign(arrivals=0, answered=0, service_level=float("nan")).reset_index()
    demand = tm.demand(window, step)
    out["arrivals"] = demand.set_index("interval_start")["arrivals"].reindex(starts).fillna(
        0).astype(int).to_numpy()
    queued = pd.to_datetime(window["queued_at"], utc=True).dt.floor(step)
    level = tm.measured_service_level(window.assign(interval=queued.astype(str)),
                                      threshold_s, by="interval")
    if level.empty:
        out["answered"], out["service_level"] = 0, float("nan")
    else:
        level = level[level["group"] != "NaT"].set_index(
            pd.to_datetime(level.loc[level["group"] != "NaT", "group"], utc=True))
        out["answered"] = level["n"].reindex(starts).fillna(0).astype(int).to_numpy()
        out["service_level"] = level["value"].reindex(starts).to_numpy()
    return out.reset_index()


def groups(window: pd.DataFrame, around: pd.DataFrame, since: datetime, until: datetime,
           targets: Targets) -> pd.DataFrame:
    """The key figures of each agent group side by side (no group: ``(none)``)."""
    if window.empty:
        return pd.DataFrame()
    by = "agent_group_name"
    occupied = occupancy(around, since, until, targets.chats_per_agent, by).set_index(by)
    rows = []
    for name, g in window.groupby(window[by].fillna("(none)"), sort=True):
        values = key_values(g, float("nan"), targets)
        row = {"group": str(name), "sessions": len(g)}
        row.update({k: v for k, (v, _) in values.items()})
        row["occupancy"] = float(occupied["occupancy"].get(name, float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)


def agents(window: pd.DataFrame, around: pd.DataFrame, since: datetime, until: datetime,
           capacity: float) -> pd.DataFrame:
    """Per agent: sessions served and rated in the period, mean rating, occupancy."""
    columns = ["agent_id", "served", "rated", "mean_rating", "occupancy"]
    if window.empty or window["agent_id"].notna().sum() == 0:
        return pd.DataFrame(columns=columns)
    rated = tm.ratings(window, "agent_id").set_index("agent_id")
    busy = occupancy(around, since, until, capacity, "agent_id").set_index("agent_id")
    out = rated.join(busy[["occupancy"]], how="outer")
    out["served"] = out["served"].fillna(0).astype(int)
    out["rated"] = out["rated"].fillna(0).astype(int)
    return out.rename_axis("agent_id").reset_index()[columns]


def no_data_hours(con: duckdb.DuckDBPyConnection, dataset: str, tables: set[str],
                  since: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Spans of whole hours in ``[since, end)`` with neither a complete run nor a callback:
    nothing was seen of the desk then (a quiet hour that was polled is not a gap)."""
    hours = pd.date_range(since, max(end, since), freq=HOUR, inclusive="left")
    seen: set[pd.Timestamp] = set()
    if "runs" in tables:
        runs = poll_metrics.complete_runs(con, dataset)
        seen |= set(pd.to_datetime(runs["snapshot_at"], utc=True).dt.floor(HOUR))
    if "session_events" in tables:
        seen |= {pd.Timestamp(t).tz_convert("UTC") for (t,) in con.execute(
            "SELECT DISTINCT date_trunc('hour', event_time) FROM "
            f"{qualified(dataset, 'session_events')} "
            "WHERE event_time >= ? AND event_time < ?", [since, end]).fetchall()}
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


def plan(con: duckdb.DuckDBPyConnection, dataset: str, tables: set[str],
         window: pd.DataFrame, around: pd.DataFrame, period: Period, end: datetime,
         capacity: float) -> tuple[pd.DataFrame | None, str]:
    """Plan against actual per interval of the latest plan covering the period: forecast
    arrivals against arrivals, agents required against agents with a chat."""
    if "staffing_plan" not in tables:
        return None, "No staffing plan in the database (table staffing_plan): nothing to " \
                     "compare with."
    # the columns planning/store.py writes; the newest plan is the one made last
    rows = con.execute(
        "SELECT plan_id, created_at, interval_start, agents AS agents_required, forecast "
        f"FROM {qualified(dataset, 'staffing_plan')} "
        "WHERE interval_start >= ? AND interval_start < ?", [period.since, period.until]).df()
    if rows.empty:
        return None, "No staffing plan covers this period."
    latest = str(rows.loc[rows["created_at"].idxmax(), "plan_id"])
    chosen = rows[rows["plan_id"].astype(str) == latest]
    starts = pd.to_datetime(chosen["interval_start"], utc=True)
    width = starts.sort_values().diff().dropna().min() if len(starts) > 1 else pd.Timedelta(
        HOUR)
    step = f"{int(width.total_seconds())}s"
    planned = chosen.assign(interval_start=starts).groupby("interval_start")[
        ["forecast", "agents_required"]].sum()
    actual = tm.demand(window, step).set_index("interval_start")["arrivals"] if len(
        window) else pd.Series(dtype=int)
    staffed = (tm.occupancy_per_interval(around, period.since, end, step, capacity)
               .groupby("interval_start")["agent_id"].nunique() if len(around)
               else pd.Series(dtype=int))
    out = planned.assign(arrivals=actual.reindex(planned.index).fillna(0).astype(int),
                         agents=staffed.reindex(planned.index).fillna(0).astype(int))
    return out.reset_index(), f"Plan {latest}, intervals of {width}."


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
        sdkappid = None if source.app is None else app_id(source.where, source.dataset,
                                                          source.app, "--app")
        return _gather(source, sdkappid, period, targets, now)
    except fix as exc:
        raise JobError(str(exc)) from None


def _gather(source: Source, sdkappid: int | None, period: Period, targets: Targets,
            now: datetime) -> Figures:
    end = min(period.until, now)  # nothing is counted or shown past now
    window, around, tables, con, opened = _read(source, sdkappid, period.since, period.until)
    try:
        cap = targets.chats_per_agent
        values = key_values(window, _desk_occupancy(around, period.since, end, cap), targets)
        before = period.previous
        prior, prior_around, _, _, prior_opened = _read(source, sdkappid, before.since,
                                                        before.until)
        try:
            # a period with no session at all is a gap in the data, not a desk with nothing
            earlier = key_values(prior, _desk_occupancy(prior_around, before.since,
                                                        before.until, cap), targets)
        finally:
            prior_opened.close()  # type: ignore[attr-defined]
        key = [Figure(k, TITLES[k], unit, value, earlier[k][0],
                      getattr(targets, k), direction, share)
               for k, (_, unit, direction) in FIGURES.items()
               for value, share in [values[k]]]
        runs = poll_metrics.complete_runs(con, source.dataset) if "runs" in tables else \
            pd.DataFrame(columns=["snapshot_at"])
        ran = pd.to_datetime(runs["snapshot_at"], utc=True)
        began = window["began_source"] if len(window) else pd.Series(dtype=str)
        coverage: dict[str, object] = {
            "sessions": len(window),
            "exact_share": float(began.isin(tm.EXACT).mean()) if len(began) else float("nan"),
            "complete_runs": int(((ran >= pd.Timestamp(period.since))
                                  & (ran < pd.Timestamp(period.until))).sum()),
            "callbacks": "session_events" in tables, "records": "session_records" in tables,
        }
        plan_rows, plan_note = plan(con, source.dataset, tables, window, around, period, end,
                                    cap)
        return Figures(
            period=period, source=source, sdkappid=sdkappid, targets=targets,
            sessions=len(window), key=key,
            over_time=over_time(window, period, end, targets.service_level_s),
            groups=groups(window, around, period.since, end, targets),
            agents=agents(window, around, period.since, end, cap),
            coverage=coverage,
            failed_runs=failed_runs(con, source.dataset, tables, period.since, period.until),
            no_data_hours=no_data_hours(con, source.dataset, tables, period.since, end),
            plan=plan_rows, plan_note=plan_note)
    finally:
        opened.close()  # type: ignore[attr-defined]
