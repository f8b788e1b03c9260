"""The service target over a day (planning/day_target.py): agents taken away where the day
loses the least, checked by hand on Erlang C's closed forms, against an exhaustive search,
and through the plan (fewer agent-hours than the per-interval rule, the day's target met,
the maximum occupancy never exceeded)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from tencent_desk.analysis import erlang as e
from tencent_desk.planning import day_target as dt
from tencent_desk.planning.plan import Params, make_plan, staff

from .support import seasonal
from .test_planning import _summed


def erlang_c_level(loads: list[float], aht_s: float = 60.0, target_s: float = 0.0
                   ) -> dt.Level:
    """Interval i with load ``loads[i]`` served by n agents, Erlang C: (service level,
    occupancy). With a target of 0 s the service level is 1 - P(wait)."""
    return lambda i, n: (e.service_level(n, loads[i], aht_s, target_s),
                         e.occupancy(n, loads[i]))


def test_erlang_c_figures_by_hand() -> None:
    """Two intervals: 2 Erlangs with 100 arrivals, 1 Erlang with 50. Published M/M/c:
    P(wait) = 4/9 at 3 agents and 4/23 at 4 (2 Erlangs), 1/3 at 2 agents (1 Erlang); one
    agent at 1 Erlang never keeps up (service level 0)."""
    level = erlang_c_level([2.0, 1.0])
    assert level(0, 3)[0] == pytest.approx(5 / 9) and level(0, 4)[0] == pytest.approx(19 / 23)
    assert level(1, 2)[0] == pytest.approx(2 / 3) and level(1, 1)[0] == 0.0
    arrivals = [100.0, 50.0]
    # 4 and 2 agents: the day gives (100 x 19/23 + 50 x 2/3) / 150 = 77.3%.
    day = (100 * 19 / 23 + 50 * 2 / 3) / 150
    assert dt.day_service_level([4, 2], arrivals, level) == pytest.approx(day)
    # At a 58% target the day can give up 150 x (77.3% - 58%) = 29.0 arrivals answered;
    # the 4th agent of the busy interval answers 100 x (19/23 - 5/9) = 27.1 of them, the
    # 2nd of the quiet one 50 x 2/3 = 33.3: the busy interval goes to 3 (55.6%, below the
    # target), and the day keeps (100 x 5/9 + 50 x 2/3) / 150 = 59.3%.
    assert dt.trim_to_day([4, 2], arrivals, level, 0.58) == [3, 2]
    assert dt.day_service_level([3, 2], arrivals, level) == pytest.approx(
        (100 * 5 / 9 + 50 * 2 / 3) / 150)
    # At 60% the day has 25.9 to give: not enough for either agent.
    assert dt.trim_to_day([4, 2], arrivals, level, 0.60) == [4, 2]
    # 3 agents at 2 Erlangs are 67% occupied: a 0.6 cap keeps the 4th.
    assert dt.trim_to_day([4, 2], arrivals, level, 0.58, max_occupancy=0.6) == [4, 2]


def test_an_interval_with_arrivals_keeps_an_agent() -> None:
    # Nearly no arrivals: one agent there costs the day almost nothing, but stays.
    level = erlang_c_level([0.01, 0.02, 5.0])
    got = dt.trim_to_day([1, 2, 9], [0.2, 0.4, 150.0], level, 0.5)
    assert got[0] == 1 and got[1] == 1 and got[2] < 9
    # no arrivals expected (0 or unknown): left as they are
    assert dt.trim_to_day([0, 3, 2], [0.0, float("nan"), 10.0],
                          erlang_c_level([0.0, 0.0, 0.5]), 0.5) == [0, 3, 1]


@pytest.mark.parametrize("target", [0.7, 0.8, 0.9])
def test_as_few_agents_as_an_exhaustive_search(target: float) -> None:
    """Erlang A per interval (patience 120 s, 20 s target): no combination of fewer agents
    meets the day's target under the occupancy cap, and the day gives some up."""
    loads, aht = [1.2, 3.5, 6.0, 2.2], 300.0
    arrivals = [load * 1800 / aht for load in loads]

    def level(i: int, n: int) -> tuple[float, float]:
        a = e.erlang_a(n, loads[i], aht, 120.0, 20.0)
        return a.service_level, a.in_service / n

    start = [e.agents_needed(load, aht, 20.0, target, patience_s=120.0) for load in loads]
    got = dt.trim_to_day(start, arrivals, level, target, max_occupancy=0.9)
    assert dt.day_service_level(got, arrivals, level) >= target
    assert all(level(i, n)[1] <= 0.9 for i, n in enumerate(got))
    best = min(sum(c) for c in itertools.product(*(range(1, s + 1) for s in start))
               if all(level(i, n)[1] <= 0.9 for i, n in enumerate(c))
               and dt.day_service_level(c, arrivals, level) >= target)
    assert sum(got) == best < sum(start)


@pytest.fixture(scope="module")
def plans() -> tuple[pd.DataFrame, pd.DataFrame, Params]:
    """One group's week ahead from three weeks of a small desk (peak 12 an interval),
    under each rule."""
    counts, _ = seasonal.seasonal(3, 12.0, seed=4)
    sessions = _summed(counts)
    first = counts.index[-1].normalize() + pd.Timedelta(days=1)
    days = [first + pd.Timedelta(days=k) for k in range(2)]
    params = Params(30, 0.8, 60.0, 0.85)
    return (make_plan(sessions, days, params),
            make_plan(sessions, days, Params(30, 0.8, 60.0, 0.85, target_per="interval")),
            params)


def test_the_day_target_is_met_with_fewer_agent_hours(plans) -> None:
    day, interval, params = plans
    assert (day.forecast.to_numpy() == interval.forecast.to_numpy()).all()
    by_day = pd.to_datetime(day.interval_start).dt.normalize()
    for _, rows in day.groupby(by_day):
        staffed = rows[rows.forecast > 0]
        weighted = float((staffed.service_level * staffed.forecast).sum()
                         / staffed.forecast.sum())
        assert params.target_sl <= weighted < params.target_sl + 0.02
    # the per-interval rule meets 80% everywhere, and overshoots the day
    assert (interval.service_level[interval.forecast > 0] >= 0.8).all()
    assert day.agents.sum() < interval.agents.sum()
    assert (day.agents <= interval.agents).all()
    # some intervals now fall below the target: the day carries them
    assert (day.service_level[day.forecast > 0] < 0.8).any()
    # Erlang C's and A's columns follow the same rule
    assert day.erlang_c_agents.sum() < interval.erlang_c_agents.sum()
    assert day.erlang_a_agents.sum() <= interval.erlang_a_agents.sum()


def test_max_occupancy_is_never_exceeded_and_someone_is_there(plans) -> None:
    day, _, params = plans
    staffed = day[day.forecast > 0]
    assert (staffed.occupancy <= params.max_occupancy + 1e-12).all()
    assert (staffed.agents >= 1).all()
    assert np.array_equal(day.scheduled, day.agents)  # no shrinkage


def test_an_interval_without_arrivals_stays_empty() -> None:
    """No arrivals forecast: no agent, nothing predicted busy, while the day's other
    intervals are trimmed around it."""
    counts, _ = seasonal.seasonal(3, 12.0, seed=4)
    day = counts.index[-1].normalize() + pd.Timedelta(days=1)
    at = pd.date_range(day + pd.Timedelta(hours=9), periods=4, freq="30min")
    pred = pd.DataFrame({"forecast": [0.0, 3.0, 12.0, 12.0], "lo": np.nan, "hi": np.nan},
                        index=at)
    got = staff(_summed(counts), "G", pred, Params(30, 0.8, 60.0, 0.85), day)
    assert got.agents.tolist()[0] == 0 and got.occupancy.iloc[0] == 0.0
    assert got.service_level.iloc[0] == 1.0 and (got.agents.iloc[1:] >= 1).all()


def test_target_per_is_checked() -> None:
    with pytest.raises(ValueError, match="target_per"):
        Params(target_per="week")
