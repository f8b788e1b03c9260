"""A plan made from simulated weeks, replayed in the simulator on the next day's customers:
the glue the rolling-origin benchmark (benchmarks/bench_plan_replay.py) runs 14 times."""

from __future__ import annotations

import pandas as pd
import pytest
from tencent_desk.planning import plan as pl
from tencent_desk.planning.summary import Summary
from tencent_desk.simulator import weeks as wk
from tencent_desk.simulator.replay import replay

from tests.support import plan_replay as glue

HISTORY_DAYS = 21  # three weeks: the forecast needs two of every weekday
PARAMS = pl.Params(interval_min=30, target_sl=0.8, target_s=60.0, max_occupancy=0.85)


@pytest.fixture(scope="module")
def planned() -> tuple[wk.WeeksConfig, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cfg = wk.WeeksConfig(seed=3, days=HISTORY_DAYS + 1)
    history = wk.simulate(wk.WeeksConfig(seed=3, days=HISTORY_DAYS))
    sessions = glue.as_sessions(history.customers, cfg)
    summed = Summary.of(sessions, PARAMS.target_s)
    day = pd.Timestamp(cfg.day_start(HISTORY_DAYS), unit="s", tz="UTC")
    plan = pl.make_plan(summed, [day], PARAMS)
    rates = wk.expected_rates(cfg, PARAMS.interval_min * 60)
    return cfg, sessions, plan, glue.oracle_plan(summed, rates, day, PARAMS)


def service_level(cfg: wk.WeeksConfig, plan: pd.DataFrame, column: str = "agents",
                  factor: float = 1.0) -> float:
    """Answered within 60 s of all who asked, the day's customers under ``plan``."""
    day = pd.Timestamp(cfg.day_start(HISTORY_DAYS), unit="s", tz="UTC")
    schedule = glue.schedule_of(plan, column, day, cfg, PARAMS).scaled(factor)
    got = replay(wk.day_customers(cfg, HISTORY_DAYS), schedule, threshold_s=PARAMS.target_s,
                 slowdown=wk.slowdowns(cfg))
    return float(got.answered_within.sum() / got.offered.sum())


def test_history_as_the_planner_reads_it(planned) -> None:
    cfg, sessions, plan, _ = planned
    assert sorted(plan.group.unique()) == sorted(g.name for g in cfg.groups)
    assert sessions.abandoned.any() and sessions.assigned_at.notna().any()
    # The concurrency the agents really kept is the desk's chat slots.
    slots = plan.groupby("group").slots_per_agent.max().to_dict()
    assert slots == {g.name: g.slots_per_agent for g in cfg.groups}


def test_planned_day_meets_the_target_on_replay(planned) -> None:
    cfg, _, plan, oracle = planned
    got = service_level(cfg, plan)
    # One day carries its own random volume: a generous bound around the target (the
    # occupancy cap staffs above it at the peak).
    assert PARAMS.target_sl - 0.1 <= got <= 0.99
    assert abs(got - service_level(cfg, oracle)) <= 0.05
    assert plan.agents.sum() <= 1.1 * oracle.agents.sum()


def test_more_staff_never_lowers_the_service_level(planned) -> None:
    cfg, _, plan, _ = planned
    levels = [service_level(cfg, plan, factor=f) for f in (0.7, 1.0, 1.5)]
    assert levels == sorted(levels) and levels[0] < levels[2]
