"""A staffing plan: for each agent group and interval of the days asked, the forecast (with
its 80% interval), handling time, patience, the agents required by the concurrency model
under the service target (over each day, or in every interval: ``Params.target_per``),
maximum occupancy and shrinkage, and what that staffing is predicted to give; Erlang C's
and Erlang A's agents beside it for comparison, under the same rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from tencent_desk.analysis import erlang
from tencent_desk.planning import concurrency, day_target
from tencent_desk.planning import forecast as fc
from tencent_desk.planning.choices import PER, PlanError, TooLittleHistory
from tencent_desk.planning.summary import GRAIN_MIN, Summary

MAX_PATIENCE_S = 86_400.0  # nobody abandoned: patience taken as a day (close to Erlang C)
COLUMNS = [
    "group", "interval_start", "interval_min", "forecast", "forecast_lo", "forecast_hi",
    "aht_s", "patience_s", "ringing_s", "slots_per_agent", "agents", "scheduled", "service_level",
    "asa_s", "abandonment", "occupancy", "busy_share", "concurrency", "erlang_c_agents",
    "erlang_a_agents",
]


@dataclass(frozen=True)
class Params:
    interval_min: int = 30
    target_sl: float = 0.8
    target_s: float = 60.0
    max_occupancy: float = 0.85
    shrinkage: float = 0.0
    method: str = "profile"
    weeks: int = fc.WEEKS
    target_per: str = "day"  # the target holds over each day per group, or in every interval

    def __post_init__(self) -> None:
        if self.target_per not in PER:
            raise ValueError(f"target_per must be one of {PER}")

    @property
    def freq(self) -> str:
        return f"{self.interval_min}min"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_history(days: pd.DatetimeIndex, before: pd.Timestamp, weeks: int,
                  ends: pd.Timestamp | None = None) -> None:
    """Enough days of data in the ``weeks`` weeks before ``before`` (what the forecast
    reads) for the forecast (``fc.MIN_DAYS``); ``ends``, where the data ends, is said when
    it ends before those weeks (an old database, a --date far past it)."""
    start = before.normalize() - pd.Timedelta(weeks=weeks)
    have = days[(days >= start) & (days < before.normalize())]
    if len(have) >= fc.MIN_DAYS:
        return
    read = (f"the {weeks} weeks the forecast reads ({start:%Y-%m-%d} to "
            f"{before.normalize() - pd.Timedelta(days=1):%Y-%m-%d})")
    if not len(have) and ends is not None and ends < start:
        raise PlanError(
            f"no history in {read}: the data ends on {ends:%Y-%m-%d}; load the days since "
            "(desk-sessions records), or plan a day nearer to it (--date with --backtest)")
    span = f" ({have.min():%Y-%m-%d} to {have.max():%Y-%m-%d})" if len(have) else ""
    raise TooLittleHistory(
        f"too little history before {before:%Y-%m-%d}: {len(have)} day"
        f"{'' if len(have) == 1 else 's'} with sessions{span} in {read}; it needs at least "
        f"{fc.MIN_DAYS} (two of every weekday): load more history first")


def make_plan(history: Summary, days: list[pd.Timestamp], params: Params,
              groups: list[str] | None = None, history_until: pd.Timestamp | None = None,
              erlang_too: bool = True) -> pd.DataFrame:
    """The plan for ``days`` (UTC midnights), every one of them from the sessions of
    ``history`` before the first (or before ``history_until``, a midnight: whole days only,
    as a day still going on would look quiet in its evening; a day the data ends in early
    is left out too: :func:`cut_short`). ``erlang_too``: Erlang C's and A's agents too
    (without, their columns are empty)."""
    origin = origin_of(days[0], history_until)
    return _frame([staff(history, group, pred, params, origin, erlang_too) for group, (
        pred, _) in _forecasts(history, days, params, groups, origin).items()])


@dataclass(frozen=True)
class Update:
    """How an intraday plan updated one group's day: the arrivals counted before ``until``
    (the as-of time's interval, or where the data ends when before it), and the day
    multiplier that scaled the rest of the day."""

    arrived: int
    multiplier: float
    until: pd.Timestamp


def intraday_plan(history: Summary, now: pd.Timestamp, params: Params,
                  groups: list[str] | None = None, history_until: pd.Timestamp | None = None
                  ) -> tuple[pd.DataFrame, dict[str, Update]]:
    """The rest of ``now``'s day from ``now``'s interval, its forecast (from the data before
    the day, or before ``history_until``) updated from the day's arrivals up to where the
    data ends (a job's lag behind ``now`` is not read as nobody coming); and each group's
    :class:`Update`. Refused when the data ends well before ``now`` (:func:`check_reach`)."""
    day = now.normalize()
    origin = origin_of(day, history_until)
    forecasts = _forecasts(history, [day], params, groups, origin)
    expected = pd.DataFrame({g: p.forecast for g, (p, _) in forecasts.items()},
                            index=_intervals([day], params.freq)).sum(axis=1)
    check_reach(history.latest_start, now, expected, params.interval_min)
    until = observed_until(history.latest_start, now, params.freq)
    so_far = _arrived(history, day, until, params.freq)  # every group's, counted once
    length = pd.Timedelta(minutes=params.interval_min)
    covered = ((until - so_far.index.to_series()) / length).clip(upper=1.0)
    parts, updates = [], {}
    for group, (pred, cv2) in forecasts.items():
        observed = so_far[group] if group in so_far else pd.Series(0.0, so_far.index)
        rest, multiplier = fc.intraday(pred, observed, cv2, covered)
        updates[group] = Update(int(observed.sum()), multiplier, until)
        parts.append(staff(history, group, rest[rest.index >= now.floor(params.freq)],
                           params, origin))
    return _frame(parts), updates


def observed_until(ends: pd.Timestamp | None, now: pd.Timestamp, freq: str) -> pd.Timestamp:
    """Where an intraday update's observed arrivals end: at the start of ``now``'s
    interval, or where the data ends (``ends``, its latest session start) when before it;
    not before the day's midnight."""
    day = now.normalize()
    return day if ends is None else max(day, min(now.floor(freq), ends))


# When the data's silence before an intraday update is the data's (a job down, records
# loaded only at night), not the customers': the data ends more than LAG_TOLERANCE (and
# more than one planning interval, which the update leaves out anyway) before the update,
# a lag the documented job (a run every 5 minutes) reaches only after failing several
# runs in a row; and more than GAP_SESSIONS sessions were expected in that gap (none
# coming where 5 were expected has a chance under 1%: Poisson, or with a day's spread).
# Shorter or quieter gaps are a working job's lag: the update reads the data to its end.
LAG_TOLERANCE = pd.Timedelta(minutes=30)
GAP_SESSIONS = 5


def check_reach(ends: pd.Timestamp | None, now: pd.Timestamp, expected: pd.Series,
                interval_min: int) -> None:
    """Refuse an intraday update at ``now`` whose data ends (``ends``: its latest session
    start) more than ``LAG_TOLERANCE`` (or an interval) before it where more than
    ``GAP_SESSIONS`` sessions of the day were ``expected`` (per interval start) in
    between: the job is not loading, and the update would read a morning it has not
    seen."""
    length = pd.Timedelta(minutes=interval_min)
    if ends is not None and now - ends <= max(LAG_TOLERANCE, length):
        return
    start = expected.index.to_series()
    since = start.clip(lower=ends)  # ends None: no session at all
    share = ((start + length).clip(upper=now) - since).clip(lower=pd.Timedelta(0)) / length
    missed = round(float((expected * share).sum()))  # said as compared: whole sessions
    if missed <= GAP_SESSIONS:
        return
    load = ("load the sessions so far first (the job's desk-sessions run, or desk-sessions "
            "records), or plan the whole day without --intraday")
    day = now.normalize()
    if ends is None or ends < day:
        end = f"on {ends:%Y-%m-%d} (at {ends:%H:%M} UTC)" if ends is not None else "nowhere"
        raise PlanError(f"the data ends {end}, before {day:%Y-%m-%d}, the update's day: "
                        f"none of its sessions is loaded; {load}")
    raise PlanError(
        f"the data ends at {ends:%Y-%m-%d %H:%M} UTC (its latest session start), "
        f"{(now - ends).total_seconds() / 60:.0f} minutes before the update's time "
        f"({now:%H:%M} UTC), in which about {missed} sessions were expected: more than a "
        f"job's lag (at most {LAG_TOLERANCE.total_seconds() / 60:.0f} minutes, or "
        f"{GAP_SESSIONS} sessions); {load}")


# A day the data ends in before the forecast's origin is left out of the history when more
# than this share of its expected arrivals falls after the end: a day missing 5% lowers its
# weekday's level (a mean over up to 8 such days) by under 1%, well inside the day-to-day
# spread, so tomorrow's plan keeps today loaded to 22:55 (1-2% after it on a simulated
# desk), while a day ending at 08:00 (over 90% after it) would read as a quiet day.
PARTIAL_SHARE = 0.05


def cut_short(history: Summary, origin: pd.Timestamp, weeks: int) -> pd.Timestamp | None:
    """Where the data ends (its latest session start) when it ends before ``origin`` early
    enough in its day for the forecast to leave that day out (``PARTIAL_SHARE`` of its
    expected arrivals after the end, by its day type's shape over the ``weeks`` weeks
    before it); None when the data runs to ``origin`` or on to the day's end."""
    ends = history.latest_start
    if ends is None or ends >= origin:
        return None
    day = ends.normalize()
    before = history.data_days(before=day)
    before = before[before >= day - pd.Timedelta(weeks=weeks)]
    counts = history.counts(f"{GRAIN_MIN}min", before).sum(axis=1, min_count=1)
    after = fc.share_after(counts, ends, pd.Timedelta(minutes=GRAIN_MIN))
    return ends if after > PARTIAL_SHARE else None


def origin_of(first: pd.Timestamp, history_until: pd.Timestamp | None) -> pd.Timestamp:
    """The forecast's origin: the first day planned, or ``history_until`` when before it."""
    return min(first, history_until) if history_until is not None else first


def _forecasts(history: Summary, days: list[pd.Timestamp], params: Params,
               groups: list[str] | None, origin: pd.Timestamp
               ) -> dict[str, tuple[pd.DataFrame, float]]:
    """Each group's forecast of the intervals of ``days`` and its day variance, from the
    sessions before ``origin``, once there are enough of them and the ``groups`` asked
    are among them."""
    data_days = history.data_days(before=origin)
    short = cut_short(history, origin, params.weeks)
    if short is not None:  # its sessions not loaded would lower its weekday's level
        data_days = data_days[data_days != short.normalize()]
    check_history(data_days, origin, params.weeks, history.latest_start)
    known = history.groups(before=origin)
    for g in groups or []:
        if g not in known:
            raise PlanError(f"--group {g!r}: no such agent group in the history; known: "
                            f"{', '.join(known) or 'none'}")
    counts = history.counts(params.freq, data_days)
    at = _intervals(days, params.freq)
    out = {}
    for group in groups or known:
        series = counts[group] if group in counts else pd.Series(np.nan, counts.index)
        cv2 = fc.day_variance(series)
        out[group] = fc.forecast(series, at, params.method, params.weeks, cv2, origin), cv2
    return out


def _intervals(days: list[pd.Timestamp], freq: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([t for d in days for t in pd.date_range(
        d, d + pd.Timedelta(days=1), freq=freq, inclusive="left")])


def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    return frame[COLUMNS]


def _arrived(history: Summary, day: pd.Timestamp, until: pd.Timestamp,
             freq: str) -> pd.DataFrame:
    """Each group's arrivals on ``day`` in its intervals that start before ``until`` (the
    last one in part when the data ends in it): what the rest of an intraday plan is
    updated from."""
    counts = history.counts(freq, pd.DatetimeIndex([day]))
    return counts[counts.index < until]


def recent(history: Summary, group: str, origin: pd.Timestamp, params: Params) -> Summary:
    """The sessions a plan from ``origin`` measures a group's handling and patience on:
    those of the ``params.weeks`` weeks before it."""
    return history.window(group, origin - pd.Timedelta(weeks=params.weeks), origin)


def slot_handling(mine: Summary, params: Params
                  ) -> Callable[[pd.Timestamp], tuple[float, list[float]] | None]:
    """From one group's recent sessions: for an interval's start, its interval of the day's
    mean time a chat holds its agent's slot, and that at 1 .. slots chats held (shaped by
    how handling slows with concurrency); None without any handled chat. The slot is held
    from the offer: the ringing a handling time from the answer leaves out is added."""
    _, aht_by_chats = mine.handling_by_chats()
    overall, per_slot = mine.handling_per_slot(params.interval_min)
    unheld = mine.ringing().unheld_s

    def at(t: pd.Timestamp) -> tuple[float, list[float]] | None:
        if pd.isna(overall):
            return None
        aht = float(per_slot.get(t - t.normalize(), overall))
        return aht + unheld, [h * aht / overall + unheld for h in aht_by_chats]
    return at


def staff(history: Summary, group: str, pred: pd.DataFrame, params: Params,
          origin: pd.Timestamp, erlang_too: bool = True) -> pd.DataFrame:
    """Agents per interval for one group's forecast ``pred`` (columns forecast, lo, hi,
    indexed by interval start), with handling and patience from the group's sessions of
    the ``params.weeks`` weeks before ``origin``; with ``erlang_too``, Erlang C's and A's
    agents beside them. Any forecast: the benchmark feeds it the simulator's expected
    rates for the oracle plan."""
    mine = recent(history, group, origin, params)
    patience_s = min(fc.patience(*mine.waited()).mean_s, MAX_PATIENCE_S)
    ring_s = mine.ringing().mean_s
    handling = slot_handling(mine, params)
    rows: list[dict[str, object]] = []
    demands: dict[int, _Demand] = {}
    for t, f in pred.iterrows():
        known = handling(t)
        aht, aht_by_chats = known if known else (math.nan, [])
        row: dict[str, object] = {
            "group": group, "interval_start": t, "interval_min": params.interval_min,
            "forecast": f.forecast, "forecast_lo": f.lo, "forecast_hi": f.hi,
            "aht_s": aht, "patience_s": patience_s, "ringing_s": ring_s,
            "slots_per_agent": len(aht_by_chats) or math.nan}
        if not pd.isna(f.forecast) and aht_by_chats:
            demand = _Demand(f.forecast / (params.interval_min * 60.0), aht,
                             tuple(aht_by_chats), patience_s, ring_s)
            demands[len(rows)] = demand
            row.update(_requirement(demand, params, erlang_too))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if params.target_per == "day":
        _over_days(frame, demands, params, MODELS if erlang_too else MODELS[:1])
    return frame


def wait_target(target_s: float, ringing_s: float) -> float:
    """The models' target: the wait to the offer that answers within ``target_s`` when the
    offer rings ``ringing_s``."""
    return max(target_s - ringing_s, 0.0)


@dataclass(frozen=True)
class _Demand:
    """One interval's arrivals (per s), the time a chat holds its slot (overall and at 1 ..
    slots chats held: the offer's ringing and the handling), patience and the ringing: what
    each staffing model reads. The models' wait ends at the offer, the service level's at
    the answer, so a wait counts in time when it ends ``ring_s`` before the target (the
    mean ringing as if every offer rang as long: a close reading for a few seconds)."""

    rate: float
    aht_s: float
    aht_by_chats: tuple[float, ...]
    patience_s: float
    ring_s: float = 0.0

    @property
    def load(self) -> float:
        return self.rate * self.aht_s

    def within(self, target_s: float) -> float:
        return wait_target(target_s, self.ring_s)


def _requirement(d: _Demand, params: Params, erlang_too: bool) -> dict[str, object]:
    """The concurrency model's agents for one interval, and Erlang C's and A's."""
    within = d.within(params.target_s)
    o = concurrency.agents_required(d.rate, d.aht_by_chats, d.patience_s, within,
                                    params.target_sl, params.max_occupancy)
    if not erlang_too:
        return _predicted(o, params)
    slots = len(d.aht_by_chats)
    return {**_predicted(o, params),
            "erlang_c_agents": erlang.agents_needed(
                d.load, d.aht_s, within, params.target_sl, servers_per_agent=slots),
            "erlang_a_agents": erlang.agents_needed(
                d.load, d.aht_s, within, params.target_sl, patience_s=d.patience_s,
                servers_per_agent=slots)}


def _predicted(o: concurrency.Outcome, params: Params) -> dict[str, object]:
    return {"agents": o.agents, "scheduled": erlang.with_shrinkage(o.agents, params.shrinkage),
            "service_level": o.service_level, "asa_s": o.asa_s, "abandonment": o.p_abandon,
            "occupancy": o.occupancy, "busy_share": o.busy_share,
            "concurrency": o.concurrency}


def _concurrency_level(d: _Demand, agents: int, target_s: float) -> tuple[float, float]:
    o = concurrency.outcome(agents, d.rate, d.aht_by_chats, d.patience_s, d.within(target_s))
    return o.service_level, o.occupancy


def _erlang_c_level(d: _Demand, agents: int, target_s: float) -> tuple[float, float]:
    servers = agents * len(d.aht_by_chats)
    return (erlang.service_level(servers, d.load, d.aht_s, d.within(target_s)),
            erlang.occupancy(servers, d.load))


def _erlang_a_level(d: _Demand, agents: int, target_s: float) -> tuple[float, float]:
    servers = agents * len(d.aht_by_chats)
    a = erlang.erlang_a(servers, d.load, d.aht_s, d.patience_s, d.within(target_s))
    return a.service_level, a.in_service / servers


# each model's (service level, occupancy) of an interval with so many agents
Model = Callable[[_Demand, int, float], tuple[float, float]]
MODELS: tuple[tuple[str, Model], ...] = (
    ("agents", _concurrency_level), ("erlang_c_agents", _erlang_c_level),
    ("erlang_a_agents", _erlang_a_level))


def _level(model: Model, day: list[_Demand], target_s: float) -> day_target.Level:
    return lambda i, n: model(day[i], n, target_s)


def _over_days(plan: pd.DataFrame, demands: dict[int, _Demand], params: Params,
               models: tuple[tuple[str, Model], ...]) -> None:
    """Each model's agents in ``plan`` trimmed to the target over each day (its rows
    ``demands`` has), weighted by the forecast (:func:`day_target.trim_to_day`); the
    predicted columns follow the concurrency model's agents."""
    staffed = pd.to_datetime(plan.interval_start, utc=True).dt.normalize().loc[list(demands)]
    for rows in staffed.groupby(staffed).groups.values():
        ks = list(rows)
        arrivals = plan.loc[ks, "forecast"].astype(float).tolist()
        day = [demands[k] for k in ks]
        before = plan.loc[ks, "agents"].copy()
        for column, model in models:
            plan.loc[ks, column] = day_target.trim_to_day(
                plan.loc[ks, column].astype(int).tolist(), arrivals,
                _level(model, day, params.target_s), params.target_sl, params.max_occupancy)
        for k in before.index[plan.loc[ks, "agents"] != before]:
            d = demands[k]
            o = concurrency.outcome(int(plan.at[k, "agents"]), d.rate, d.aht_by_chats,
                                    d.patience_s, d.within(params.target_s))
            for column, value in _predicted(o, params).items():
                plan.at[k, column] = value
