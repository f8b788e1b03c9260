"""Erlang C against published figures; Erlang A against its limits, itself and a simulation."""

from __future__ import annotations

import heapq
import math
import random
from datetime import UTC, datetime

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from tencent_desk.analysis import erlang as e

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

# The textbook example: 100 contacts per 30 minutes, AHT 3 minutes, 80% answered in 20 s.
LOAD = e.offered_load(100, 180, 1800)


def test_published_example() -> None:
    assert LOAD == 10
    assert e.erlang_c(14, LOAD) == pytest.approx(0.1741, abs=5e-5)
    assert e.service_level(14, LOAD, 180, 20) == pytest.approx(0.8884, abs=5e-5)
    assert e.service_level(13, LOAD, 180, 20) == pytest.approx(0.7956, abs=5e-5)
    assert e.average_speed_of_answer(14, LOAD, 180) == pytest.approx(7.84, abs=5e-3)
    assert e.occupancy(14, LOAD) == pytest.approx(10 / 14)
    assert e.agents_needed(LOAD, 180, 20, 0.8) == 14
    assert e.agents_needed(LOAD, 180, 20, 0.8, shrinkage=0.3) == 20


def test_erlang_b_recurrence_and_edges() -> None:
    assert e.erlang_b(0, 5) == 1
    assert e.erlang_b(1, 1) == pytest.approx(0.5)
    assert e.erlang_b(2, 1) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)
    assert e.erlang_c(5, 0) == 0 and e.erlang_c(10, 10) == 1 and e.erlang_c(9, 10) == 1
    assert e.service_level(10, 10, 180, 20) == 0
    assert e.average_speed_of_answer(10, 10, 180) == math.inf
    assert e.agents_needed(0, 180, 20) == 0
    with pytest.raises(ValueError):
        e.erlang_b(-1, 1)
    with pytest.raises(ValueError):
        e.agents_needed(10, 180, 20, 1.0)
    with pytest.raises(ValueError):
        e.with_shrinkage(10, 1.0)


def test_large_loads_stay_finite() -> None:
    # A direct A^N / N! would overflow long before this.
    c = e.erlang_c(2100, 2000)
    assert 0 < c < 1
    assert e.agents_needed(2000, 180, 20, 0.8) > 2000
    a = e.erlang_a(2100, 2000, 180, 60, 20)
    assert 0 < a.p_wait < 1 and 0 <= a.p_abandon < 0.01
    # ... and a load far below the agents, where B(N, A) underflows, is simply no wait
    assert e.erlang_c(400, 0.1) == 0
    far = e.erlang_a(400, 0.1, 180, 60, 20)
    assert far.p_wait < 1e-300 and far.service_level == 1


@given(agents=hs.integers(1, 60), load=hs.floats(0.05, 55), target=hs.floats(1, 300))
def test_service_level_rises_with_agents(agents: int, load: float, target: float) -> None:
    if agents > load:
        assert e.service_level(agents + 1, load, 180, target) >= e.service_level(
            agents, load, 180, target)
        assert e.erlang_c(agents + 1, load) <= e.erlang_c(agents, load)


def test_erlang_a_tends_to_erlang_c_with_endless_patience() -> None:
    a = e.erlang_a(14, LOAD, 180, 1e8, 20)
    assert a.p_wait == pytest.approx(e.erlang_c(14, LOAD), abs=1e-5)
    assert a.service_level == pytest.approx(e.service_level(14, LOAD, 180, 20), abs=1e-5)
    assert a.p_abandon < 1e-5
    # its ASA is over answered contacts, all of them here
    assert a.asa_s == pytest.approx(e.average_speed_of_answer(14, LOAD, 180), abs=1e-3)


@settings(max_examples=30, deadline=None)
@given(agents=hs.integers(0, 20), load=hs.floats(0.2, 25), patience=hs.floats(10, 1000))
def test_erlang_a_is_self_consistent(agents: int, load: float, patience: float) -> None:
    """Answered share two ways, ASA as the integral of the waiting-time tail, and the
    field's service level at its limits."""
    aht = 180.0
    never = e.erlang_a(agents, load, aht, patience, 1e9)
    now = e.erlang_a(agents, load, aht, patience, 0)
    # P(answered at all) = 1 - theta E[queue] / lambda, computed from the answer probabilities
    assert never.answered_in_time == pytest.approx(1 - never.p_abandon, abs=1e-9)
    assert now.answered_in_time == pytest.approx(1 - never.p_wait, abs=1e-12)
    # every abandonment is within an endless target, none within 0 s
    assert never.abandoned_in_time == pytest.approx(never.p_abandon, abs=1e-9)
    assert now.abandoned_in_time == 0 and now.service_level == now.answered_in_time
    if never.p_abandon < 1 - 1e-9:
        assert never.service_level == pytest.approx(1.0, abs=1e-6)
    # E[wait; answered] = integral over t of P(answered) - P(answered within t)
    step, total, t = 0.5, 0.0, 0.0
    prev = never.answered_in_time - now.answered_in_time
    gave_up = 0.0
    while prev > 1e-7 and t < 20_000:
        t += step
        at = e.erlang_a(agents, load, aht, patience, t)
        assert at.abandoned_in_time >= gave_up - 1e-12  # more give up within a longer target
        gave_up = at.abandoned_in_time
        cur = never.answered_in_time - at.answered_in_time
        total += (prev + cur) / 2 * step
        prev, step = cur, min(step * 1.05, 60.0)
    if never.answered_in_time > 1e-9:
        assert total / never.answered_in_time == pytest.approx(never.asa_s, rel=2e-3, abs=1e-3)


def _simulate(agents: int, load: float, aht: float, patience: float, target: float,
              n: int = 200_000) -> tuple[float, float, float, float]:
    """FCFS M/M/N+M: (P(wait), P(abandon), P(answered within target), the field's service
    level: answered within target / (answered + abandoned after it))."""
    rng = random.Random(7)
    lam = load / aht
    free = [0.0] * agents
    t = waited = abandoned = in_time = abandoned_in_time = 0
    for _ in range(n):
        t += rng.expovariate(lam)
        start = max(t, free[0])
        if start > t:
            waited += 1
        gives_up = rng.expovariate(1 / patience)
        if start - t > gives_up:
            abandoned += 1  # gave up before an agent was free: takes no agent
            abandoned_in_time += gives_up <= target
            continue
        in_time += start - t <= target
        heapq.heapreplace(free, start + rng.expovariate(1 / aht))
    return waited / n, abandoned / n, in_time / n, in_time / (n - abandoned_in_time)


@pytest.mark.parametrize(("agents", "patience"), [(8, 120.0), (11, 300.0), (10, 60.0)])
def test_erlang_a_matches_a_simulation(agents: int, patience: float) -> None:
    a = e.erlang_a(agents, LOAD, 180, patience, 20)
    p_wait, p_abandon, in_time, sl = _simulate(agents, LOAD, 180, patience, 20)
    assert a.p_wait == pytest.approx(p_wait, abs=0.01)
    assert a.p_abandon == pytest.approx(p_abandon, abs=0.01)
    assert a.answered_in_time == pytest.approx(in_time, abs=0.01)
    assert a.service_level == pytest.approx(sl, abs=0.01)
    assert a.service_level > a.answered_in_time + 0.01  # the two variants differ here


def test_erlang_a_staffs_below_the_load_and_less_than_erlang_c() -> None:
    # With patience 2 minutes, abandonment keeps the queue short.
    needed = e.agents_needed(LOAD, 180, 20, 0.8, patience_s=120)
    assert needed < e.agents_needed(LOAD, 180, 20, 0.8)
    assert e.erlang_a(needed, LOAD, 180, 120, 20).service_level >= 0.8
    assert e.erlang_a(needed - 1, LOAD, 180, 120, 20).service_level < 0.8
    overloaded = e.erlang_a(5, LOAD, 180, 120, 20)
    assert 0.3 < overloaded.p_abandon < 1 and overloaded.p_wait > 0.9


def test_staffing_table() -> None:
    hours = pd.date_range(datetime(2026, 1, 1, 8, tzinfo=UTC), periods=4, freq="h")
    demand = pd.DataFrame({
        "interval_start": hours,
        "interval_s": 3600,
        "arrivals": [200.0, 0.0, None, 50.0],
        "aht_s": [180.0, None, None, None],
    })
    t = e.staffing_table(demand, target_s=20, target_sl=0.8, shrinkage=0.3)
    assert list(t.columns[:4]) == ["interval_start", "interval_s", "arrivals", "aht_s"]
    first = t.iloc[0]  # 200 per hour at 3 minutes: the published example
    assert (first.offered_load, first.slots, first.agents, first.scheduled) == (10, 14, 14, 20)
    assert first.service_level == pytest.approx(0.8884, abs=5e-5)
    assert (t.iloc[1].agents, t.iloc[1].scheduled) == (0, 0)
    assert t.iloc[2:][["slots", "agents", "scheduled"]].isna().all().all()
    chats = e.staffing_table(demand.iloc[:1], chats_per_agent=3)
    assert (chats.slots[0], chats.agents[0]) == (14, 5)
    patient = e.staffing_table(demand.iloc[:1], patience_s=120)
    assert patient.slots[0] == e.agents_needed(10, 180, 20, 0.8, patience_s=120)
