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
from tencent_desk.planning.choices import PER, PlanError
from tencent_desk.planning.summary import Summary

MAX_PATIENCE_S = 86_400.0  # nobody abandoned: patience taken as a day (close to Erlang C)
COLUMNS = [
    "group", "interval_start", "interval_min", "forecast", "forecast_lo", "forecast_hi",
    "aht_s", "patience_s", "slots_per_agent", "agents", "scheduled", "service_level",
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


def check_history(days: pd.DatetimeIndex, before: pd.Timestamp) -> None:
    """Enough days of data before ``before`` for the forecast (``fc.MIN_DAYS``)."""
    have = days[days < before.normalize()]
    if len(have) < fc.MIN_DAYS:
        span = (f" ({have.min():%Y-%m-%d} to {have.max():%Y-%m-%d})" if len(have) else "")
        raise PlanError(
            f"too little history before {before:%Y-%m-%d}: {len(have)} day"
            f"{'' if len(have) == 1 else 's'} with sessions{span}; the forecast needs at "
            f"least {fc.MIN_DAYS} (two of every weekday): load more history first")


def make_plan(history: Summary, days: list[pd.Timestamp], params: Params,
              groups: list[str] | None = None, now: pd.Timestamp | None = None,
              history_until: pd.Timestamp | None = None, erlang_too: bool = True
              ) -> pd.DataFrame:
    """The plan for ``days`` (UTC midnights) from the sessions of ``history`` before the
    first of them (or before ``history_until``, a midnight: whole days only, as a day still
    going on would look quiet in its evening); with ``now`` (intraday, on the first day):
    the rest of that day, updated from the arrivals between its midnight and ``now``.
    ``erlang_too``: Erlang C's and A's agents too (without, their columns are empty)."""
    origin = min(days[0], history_until) if history_until is not None else days[0]
    data_days = history.data_days(before=origin)
    check_history(data_days, origin)
    known = history.groups(before=origin)
    for g in groups or []:
        if g not in known:
            raise PlanError(f"--group {g!r}: no such agent group in the history; known: "
                            f"{', '.join(known) or 'none'}")
    counts = history.counts(params.freq, data_days)
    at = pd.DatetimeIndex([t for d in days for t in pd.date_range(
        d, d + pd.Timedelta(days=1), freq=params.freq, inclusive="left")])
    out = []
    day_one = days[0]
    # intraday: today's arrivals so far, every group's, counted once
    so_far = None if now is None else _arrived(history, day_one, now, params.freq)
    for group in groups or known:
        series = counts[group] if group in counts else pd.Series(np.nan, counts.index)
        cv2 = fc.day_variance(series)
        pred = fc.forecast(series, at, params.method, params.weeks, cv2)
        if so_far is not None:
            observed = so_far[group] if group in so_far else pd.Series(0.0, so_far.index)
            pred, _ = fc.intraday(pred[pred.index < day_one + pd.Timedelta(days=1)],
                                  observed, cv2)
        out.append(staff(history, group, pred, params, origin, erlang_too))
    frame = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=COLUMNS)
    return frame[COLUMNS]


def _arrived(history: Summary, day: pd.Timestamp, now: pd.Timestamp,
             freq: str) -> pd.DataFrame:
    """Each group's arrivals on ``day`` before ``now`` (floored to the interval): what the
    rest of an intraday plan is updated from."""
    counts = history.counts(freq, pd.DatetimeIndex([day]))
    return counts[counts.index < now.floor(freq)]


def recent(history: Summary, group: str, origin: pd.Timestamp, params: Params) -> Summary:
    """The sessions a plan from ``origin`` measures a group's handling and patience on:
    those of the ``params.weeks`` weeks before it."""
    return history.window(group, origin - pd.Timedelta(weeks=params.weeks), origin)


def slot_handling(mine: Summary, params: Params
                  ) -> Callable[[pd.Timestamp], tuple[float, list[float]] | None]:
    """From one group's recent sessions: for an interval's start, its interval of the day's
    mean handling time, and that at 1 .. slots chats held (shaped by how handling slows
    with concurrency); None without any handled chat."""
    _, aht_by_chats = mine.handling_by_chats()
    overall, per_slot = mine.handling_per_slot(params.interval_min)

    def at(t: pd.Timestamp) -> tuple[float, list[float]] | None:
        if pd.isna(overall):
            return None
        aht = float(per_slot.get(t - t.normalize(), overall))
        return aht, [h * aht / overall for h in aht_by_chats]
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
    handling = slot_handling(mine, params)
    rows: list[dict[str, object]] = []
    demands: dict[int, _Demand] = {}
    for t, f in pred.iterrows():
        known = handling(t)
        aht, aht_by_chats = known if known else (math.nan, [])
        row: dict[str, object] = {
            "group": group, "interval_start": t, "interval_min": params.interval_min,
            "forecast": f.forecast, "forecast_lo": f.lo, "forecast_hi": f.hi,
            "aht_s": aht, "patience_s": patience_s,
            "slots_per_agent": len(aht_by_chats) or math.nan}
        if not pd.isna(f.forecast) and aht_by_chats:
            demand = _Demand(f.forecast / (params.interval_min * 60.0), aht,
                             tuple(aht_by_chats), patience_s)
            demands[len(rows)] = demand
            row.update(_requirement(demand, params, erlang_too))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if params.target_per == "day":
        _over_days(frame, demands, params, MODELS if erlang_too else MODELS[:1])
    return frame


@dataclass(frozen=True)
class _Demand:
    """One interval's arrivals (per s), handling (overall and at 1 .. slots chats held) and
    patience: what each staffing model reads."""

    rate: float
    aht_s: float
    aht_by_chats: tuple[float, ...]
    patience_s: float

    @property
    def load(self) -> float:
        return self.rate * self.aht_s


def _requirement(d: _Demand, params: Params, erlang_too: bool) -> dict[str, object]:
    """The concurrency model's agents for one interval, and Erlang C's and A's."""
    o = concurrency.agents_required(d.rate, d.aht_by_chats, d.patience_s, params.target_s,
                                    params.target_sl, params.max_occupancy)
    if not erlang_too:
        return _predicted(o, params)
    slots = len(d.aht_by_chats)
    return {**_predicted(o, params),
            "erlang_c_agents": erlang.agents_needed(
                d.load, d.aht_s, params.target_s, params.target_sl, servers_per_agent=slots),
            "erlang_a_agents": erlang.agents_needed(
                d.load, d.aht_s, params.target_s, params.target_sl, patience_s=d.patience_s,
                servers_per_agent=slots)}


def _predicted(o: concurrency.Outcome, params: Params) -> dict[str, object]:
    return {"agents": o.agents, "scheduled": erlang.with_shrinkage(o.agents, params.shrinkage),
            "service_level": o.service_level, "asa_s": o.asa_s, "abandonment": o.p_abandon,
            "occupancy": o.occupancy, "busy_share": o.busy_share,
            "concurrency": o.concurrency}


def _concurrency_level(d: _Demand, agents: int, target_s: float) -> tuple[float, float]:
    o = concurrency.outcome(agents, d.rate, d.aht_by_chats, d.patience_s, target_s)
    return o.service_level, o.occupancy


def _erlang_c_level(d: _Demand, agents: int, target_s: float) -> tuple[float, float]:
    servers = agents * len(d.aht_by_chats)
    return (erlang.service_level(servers, d.load, d.aht_s, target_s),
            erlang.occupancy(servers, d.load))


def _erlang_a_level(d: _Demand, agents: int, target_s: float) -> tuple[float, float]:
    servers = agents * len(d.aht_by_chats)
    a = erlang.erlang_a(servers, d.load, d.aht_s, d.patience_s, target_s)
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
                                    d.patience_s, params.target_s)
            for column, value in _predicted(o, params).items():
                plan.at[k, column] = value
