"""The planning maths: Erlang C and A against published results and exact identities, the
chat-concurrency model against a simulation of the routing it stands for, the patience
estimate against a known exponential, and the forecast on seasonal Poisson data whose truth
is known (all seeded)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from tencent_desk.analysis import erlang as e
from tencent_desk.planning import concurrency as cc
from tencent_desk.planning import evaluate
from tencent_desk.planning import forecast as fc
from tencent_desk.planning.choices import PlanError, parse_target
from tencent_desk.planning.plan import (
    Params,
    check_reach,
    cut_short,
    intraday_plan,
    make_plan,
)
from tencent_desk.planning.summary import Summary

from .support import seasonal


def test_erlang_c_published_m_m_3() -> None:
    # M/M/c's published closed form (Gross, Shortle, Thompson & Harris, Fundamentals of
    # Queueing Theory, the M/M/c section): at c = 3 and 2 Erlangs, P(wait) = 4/9 and the
    # mean wait is P(wait) / (c mu - lambda).
    assert e.erlang_c(3, 2.0) == pytest.approx(4 / 9, abs=1e-12)
    assert e.average_speed_of_answer(3, 2.0, 60) == pytest.approx(4 / 9 * 60 / (3 - 2))
    # the Erlang B tables' entry for 5 servers at 3 Erlangs: 0.1101
    assert e.erlang_b(5, 3.0) == pytest.approx(0.1101, abs=5e-5)


@pytest.mark.parametrize(("agents", "load"), [(3, 2.0), (10, 8.5), (40, 45.0)])
def test_erlang_a_with_patience_equal_to_service_is_an_infinite_server_queue(
        agents: int, load: float) -> None:
    """With theta = mu every customer leaves at rate mu whether served or waiting, so the
    number in the system is Poisson(A) exactly (Garnett, Mandelbaum & Reiman, M&SOM 4(3)
    2002, the case theta = mu): P(wait) = P(N >= c), P(abandon) = E[(N - c)+] / A."""
    a = e.erlang_a(agents, load, 100.0, 100.0, 30.0)
    n = np.arange(0, 400)
    log_pmf = n * math.log(load) - load - np.array([math.lgamma(k + 1) for k in n])
    pmf = np.exp(log_pmf)
    assert a.p_wait == pytest.approx(pmf[n >= agents].sum(), abs=1e-10)
    assert a.p_abandon == pytest.approx((np.maximum(n - agents, 0) * pmf).sum() / load,
                                        abs=1e-10)
    assert a.in_service == pytest.approx((np.minimum(n, agents) * pmf).sum(), abs=1e-9)


def test_concurrency_with_one_rate_is_erlang_a_over_the_slots() -> None:
    o = cc.outcome(4, 10 / 180, [180.0] * 3, 120, 20)
    a = e.erlang_a(12, 10, 180, 120, 20)
    assert o.service_level == pytest.approx(a.service_level, abs=1e-12)
    assert o.p_abandon == pytest.approx(a.p_abandon, abs=1e-12)
    assert o.occupancy == pytest.approx(a.in_service / 12, abs=1e-12)


def _simulate_chats(agents: int, lam: float, aht_by_chats: list[float], patience: float,
                    target: float, n: int, seed: int) -> tuple[float, float, float]:
    """A continuous-time simulation of the desk the model stands for: each arrival goes to
    the least-loaded agent with a free slot, else waits in one FIFO queue; a chat ends at
    rate 1 / aht_by_chats[j - 1] while its agent holds j chats; a waiting customer leaves
    at rate 1 / patience. Returns (service level: answered within the target / (answered +
    abandoned after it), abandonment, occupancy)."""
    rng = random.Random(seed)
    slots = len(aht_by_chats)
    held = [0] * agents
    queue: list[float] = []  # arrival times, FIFO
    t = held_time = 0.0
    arrived = answered_in_time = abandoned = abandoned_in_time = 0
    while arrived < n:
        ends = [h / aht_by_chats[h - 1] if h else 0.0 for h in held]
        total = lam + sum(ends) + len(queue) / patience
        dt = rng.expovariate(total)
        held_time += sum(held) * dt
        t += dt
        x = rng.random() * total
        if x < lam:
            arrived += 1
            free = min(range(agents), key=lambda a: held[a])
            if held[free] < slots and not queue:
                held[free] += 1
                answered_in_time += 1
            else:
                queue.append(t)
            continue
        x -= lam
        for a, rate in enumerate(ends):
            if x < rate:
                held[a] -= 1
                if queue:
                    free = min(range(agents), key=lambda b: held[b])
                    held[free] += 1
                    answered_in_time += t - queue.pop(0) <= target
                break
            x -= rate
        else:
            abandoned_in_time += t - queue.pop(rng.randrange(len(queue))) <= target
            abandoned += 1
    return (answered_in_time / (arrived - abandoned_in_time), abandoned / arrived,
            held_time / t / (agents * slots))


@pytest.mark.parametrize(("agents", "rate_per_min"), [(4, 2.0), (6, 3.4)])
def test_concurrency_model_matches_a_simulation(agents: int, rate_per_min: float) -> None:
    """Chats slow down as an agent takes more (300, 360, 450 s at 1, 2, 3 chats: Tezcan &
    Zhang's per-chat rate depending on the chats held)."""
    aht = [300.0, 360.0, 450.0]
    lam = rate_per_min / 60
    model = cc.outcome(agents, lam, aht, 240.0, 60.0)
    sl, ab, occ = _simulate_chats(agents, lam, aht, 240.0, 60.0, 60_000, seed=11)
    assert model.service_level == pytest.approx(sl, abs=0.02)
    assert model.p_abandon == pytest.approx(ab, abs=0.01)
    assert model.occupancy == pytest.approx(occ, abs=0.02)


def test_agents_required_is_the_fewest_meeting_target_and_occupancy() -> None:
    aht, lam = [300.0, 360.0, 450.0], 3 / 60
    o = cc.agents_required(lam, aht, 240, 60, 0.8, 0.85)
    assert o.service_level >= 0.8 and o.occupancy <= 0.85
    less = cc.outcome(o.agents - 1, lam, aht, 240, 60)
    assert less.service_level < 0.8 or less.occupancy > 0.85
    capped = cc.agents_required(lam, aht, 240, 60, 0.8, 0.6)
    assert capped.agents > o.agents and capped.occupancy <= 0.6
    assert cc.agents_required(0.0, aht, 240, 60, 0.8).agents == 0


def test_patience_mle_recovers_a_known_exponential() -> None:
    rng = np.random.default_rng(5)
    patience = rng.exponential(240.0, 40_000)
    offered = rng.exponential(90.0, 40_000)  # when an agent would have taken the chat
    waits = np.minimum(patience, offered)
    gave_up = patience < offered
    # as sessions: the answered taken after their wait, the others ending after theirs
    queued = pd.Timestamp("2026-03-02", tz="UTC") + pd.to_timedelta(
        np.arange(len(waits)) * 60.0, unit="s")
    left = queued + pd.to_timedelta(waits, unit="s")
    sessions = pd.DataFrame({
        "began_at": queued, "queued_at": queued, "assigned_at": left.where(~gave_up),
        "ended_at": left + pd.to_timedelta(np.where(gave_up, 0.0, 1.0), unit="s"),
        "agent_id": "a", "agent_group_name": "G",
        "hold_s": np.where(gave_up, np.nan, 1.0), "abandoned": gave_up})
    est = fc.patience(*Summary.of(sessions, 60.0).waited())
    assert est.abandoned == int(gave_up.sum())
    # to the microsecond, as the timeline keeps times
    assert est.waited_s == pytest.approx(waits.sum(), abs=1e-6 * len(waits))
    assert est.mean_s == pytest.approx(240.0, rel=0.03)
    # leaving the answered out (no censoring) would be badly biased low
    assert waits[gave_up].mean() < 0.5 * 240
    assert fc.patience(30.0, 0).mean_s == math.inf


def test_nb_interval() -> None:
    # Poisson(10): P(X<6)=.067, P(X<7)=.130 (nearer .1); P(X<=13)=.864, P(X<=14)=.917
    assert fc.nb_interval(10.0, 10.0) == (7.0, 14.0)
    lo, hi = fc.nb_interval(100.0, 100.0 + 0.01 * 100**2)
    assert lo < 100 - 1.28 * 10 and hi > 100 + 1.28 * 10  # wider than Poisson's
    assert fc.nb_interval(0.0, 0.0) == (0.0, 0.0)


def test_nb_interval_covers_80_percent_on_average() -> None:
    """Whole bounds on a count: each interval's coverage is near 80%, above or below, and
    80% on average over the sizes of a busy half hour (bounds at most 10% out: 83-87%)."""
    def poisson_cdf(m: float, k: float) -> float:
        return sum(math.exp(j * math.log(m) - m - math.lgamma(j + 1)) for j in range(int(k) + 1))

    covers = []
    for m in range(5, 61):
        lo, hi = fc.nb_interval(float(m), float(m))
        covers.append(poisson_cdf(m, hi) - (poisson_cdf(m, lo - 1) if lo > 0 else 0.0))
    assert all(0.74 < c < 0.86 for c in covers)
    assert sum(covers) / len(covers) == pytest.approx(0.80, abs=0.01)


def test_parse_target() -> None:
    assert parse_target("0.8:60") == (0.8, 60.0)
    assert parse_target("80%:20") == (0.8, 20.0)
    assert parse_target("90:30s") == (0.9, 30.0)
    assert parse_target("80.5%:60") == (0.805, 60.0)  # a fraction of a percent: with the sign
    for bad in ("0.8", "150:60", "0.8:0", "abc", "0:60", "1:60", "100:60"):
        with pytest.raises(PlanError, match="cannot be read"):
            parse_target(bad)
    for ambiguous in ("1.5:60", "80.5:60"):  # 1.5%, or a slip for 0.15?
        with pytest.raises(PlanError, match=r"fraction or a whole percentage, e\.g\. 0\.8:60 "
                           "or 80:60"):
            parse_target(ambiguous)


def test_forecast_on_seasonal_poisson_data() -> None:
    """Ten weeks of history, each of the next 14 days planned from the days before it:
    the profile's WAPE over busy intervals is near the oracle's (which knows each
    interval's expected rate) and the Poisson floor 0.8 / sqrt(lambda), below seasonal
    naive's, and its 80% interval covers 75-85% of the actuals."""
    s = seasonal.rolling_origin(*seasonal.seasonal(12, 60.0, seed=3))
    assert s.wape <= 1.15 * s.oracle_wape
    assert s.oracle_wape == pytest.approx(s.floor, rel=0.5)  # Poisson + the day's 10% draw
    # The issue asks for 25% better than naive; that is bounded by the oracle, itself only
    # 22-33% better than naive over 14 days of such data (benchmarks/bench_forecast.py).
    assert s.wape <= 0.85 * s.naive_wape
    assert 0.75 <= s.coverage <= 0.85
    assert abs(s.bias) < 0.05


def test_intraday_update_beats_the_evening_before() -> None:
    """After noon, the afternoon's forecast updated from the morning's arrivals is closer
    than the evening before's, the oracle's included: the day's own draw shows in its
    morning."""
    s = seasonal.rolling_origin(*seasonal.seasonal(12, 60.0, seed=4, cv=0.15))
    assert s.intraday_wape < s.oracle_afternoon_wape


def test_day_variance_estimates_the_daily_draw() -> None:
    counts, _ = seasonal.seasonal(20, 60.0, seed=8, cv=0.1)
    assert fc.day_variance(counts) == pytest.approx(0.01, abs=0.006)


def _sessions(counts: pd.Series, seed: int = 0) -> pd.DataFrame:
    """Sessions (the columns the plan reads) with ``counts`` arrivals per interval: each
    taken 10 s after asking and held 300 s by one of 40 agents, every 20th abandoning after
    100 s."""
    rng = np.random.default_rng(seed)
    starts = np.repeat(counts.index.to_numpy(), counts.fillna(0).astype(int).to_numpy())
    queued = pd.to_datetime(starts, utc=True) + pd.to_timedelta(
        rng.uniform(0, 1800, len(starts)), unit="s")
    n = len(queued)
    abandoned = np.arange(n) % 20 == 0
    assigned = pd.Series(queued + pd.Timedelta(seconds=10)).where(~abandoned)
    ended = pd.Series(np.where(abandoned, queued + pd.Timedelta(seconds=100),
                               queued + pd.Timedelta(seconds=310)))
    return pd.DataFrame({
        "began_at": queued - pd.Timedelta(seconds=30), "queued_at": queued,
        "assigned_at": assigned, "ended_at": pd.to_datetime(ended, utc=True),
        "agent_id": [f"a{k % 40}" for k in range(n)], "agent_group_name": "G",
        "hold_s": np.where(abandoned, np.nan, 300.0), "abandoned": abandoned})


def _summed(counts: pd.Series, seed: int = 0, target_s: float = 60.0) -> Summary:
    return Summary.of(_sessions(counts, seed), target_s)


def test_make_plan_from_sessions() -> None:
    """A plan from three weeks of sessions: the profile's forecast, the handling and
    patience the sessions show, agents meeting the target; a day still going on is left
    out of the history (its evening would look quiet)."""
    counts, _ = seasonal.seasonal(3, 40.0, seed=2)
    today = counts.index[-1].normalize()
    sessions = _sessions(counts[counts.index < today + pd.Timedelta(hours=10)])
    summed = Summary.of(sessions, 60.0)
    params = Params(30, 0.8, 60.0, 0.85, 0.25)
    tomorrow = today + pd.Timedelta(days=1)
    plan = make_plan(summed, [tomorrow], params, history_until=today)
    assert len(plan) == 48 and set(plan.group) == {"G"}
    history = counts[counts.index < today]
    expected = fc.forecast(history, pd.DatetimeIndex(plan.interval_start))
    assert plan.forecast.to_numpy() == pytest.approx(expected.forecast.to_numpy())
    assert plan.aht_s.dropna().unique() == pytest.approx([300.0])
    # patience: abandonments (after 100 s) / total time waited (10 s by the others)
    before = sessions[sessions.began_at < today]
    gave_up = int(before.abandoned.sum())
    assert plan.patience_s.iloc[0] == pytest.approx(
        (100 * gave_up + 10 * (len(before) - gave_up)) / gave_up)
    busy = plan[plan.forecast >= 20]
    staffed = plan[plan.forecast > 0]
    assert (staffed.service_level * staffed.forecast).sum() / staffed.forecast.sum() >= 0.8
    assert (staffed.occupancy <= 0.85).all()
    assert (busy.scheduled == np.ceil(busy.agents / 0.75 - 1e-9)).all()
    # the morning of today, where the data ends, is left out without history_until too:
    # it would lower the same weekday a week on
    with_today = make_plan(summed, [today + pd.Timedelta(days=7)], params)
    without = make_plan(summed, [today + pd.Timedelta(days=7)], params,
                        history_until=today)
    assert with_today.forecast.to_numpy() == pytest.approx(without.forecast.to_numpy())


def test_every_day_of_a_long_plan_is_forecast_from_the_weeks_before_its_first() -> None:
    """A plan longer than the weeks the forecast reads: every day is forecast and staffed
    from the data before the plan's first day (the only data there is), a day weeks on as
    its weekday in the first week; the naive method too, however far ahead."""
    counts, _ = seasonal.seasonal(3, 40.0, seed=3)
    first = counts.index[-1].normalize() + pd.Timedelta(days=1)
    days = [first + pd.Timedelta(days=k) for k in range(28)]
    plan = make_plan(_summed(counts), days, Params(60, 0.8, 60.0, 0.85, weeks=3))
    by_day = plan.forecast.to_numpy().reshape(len(days), 24)
    assert (by_day.sum(axis=1) > 0).all() and plan.agents.notna().all()
    assert by_day[7:] == pytest.approx(by_day[:-7])
    far = pd.date_range(first + pd.Timedelta(weeks=60), periods=48, freq="30min")
    naive = fc.forecast(counts, far, "naive", origin=first)
    week_before = counts[(counts.index >= first - pd.Timedelta(days=7))
                         & (counts.index < first - pd.Timedelta(days=6))]
    assert naive.forecast.to_numpy() == pytest.approx(week_before.to_numpy())


def test_intraday_plan_needs_the_day_so_far() -> None:
    """An intraday plan counts the day's arrivals before its time and scales the rest of
    the day by the multiplier they give; a day whose sessions are not loaded yet (the data
    ends the evening before) is refused, not read as nobody coming."""
    counts, _ = seasonal.seasonal(3, 40.0, seed=4)
    day = counts.index[-1].normalize()
    noon = day + pd.Timedelta(hours=12)
    plan, updates = intraday_plan(_summed(counts[counts.index < noon]), noon, Params())
    morning = counts[(counts.index >= day) & (counts.index < noon)]
    assert updates["G"].arrived == morning.sum() and len(plan) == 24
    whole = make_plan(_summed(counts[counts.index < day]), [day], Params())
    assert plan.forecast.to_numpy() == pytest.approx(
        whole.forecast.iloc[24:].to_numpy() * updates["G"].multiplier)
    with pytest.raises(PlanError, match=r"the data ends on (\S+) \(at 23:\d\d UTC\), "
                       r"before \S+, the update's day: none of its sessions is loaded"):
        intraday_plan(_summed(counts[counts.index < day]), noon, Params())


def test_intraday_reads_the_data_to_where_it_ends() -> None:
    """The data a job's lag behind the update (minutes, where a busy desk expects more than
    a handful of sessions) is read to its end: the morning counted up to where the data
    ends against as much of the day expected, the rest planned from the update's time, as
    from the data complete; ending hours before, it is refused, saying the count it
    compared."""
    counts, _ = seasonal.seasonal(3, 120.0, seed=4)
    day = counts.index[-1].normalize()
    noon = day + pd.Timedelta(hours=12)
    sessions = _sessions(counts[counts.index < noon])
    lagging = sessions[sessions.began_at < noon - pd.Timedelta(minutes=6)]
    plan, updates = intraday_plan(Summary.of(lagging, 60.0), noon, Params())
    whole, complete = intraday_plan(Summary.of(sessions, 60.0), noon, Params())
    assert len(plan) == 24 and plan.interval_start.min() == noon
    got = updates["G"]
    assert got.until == lagging.began_at.max()
    assert got.arrived == int((lagging.queued_at >= day).sum())
    assert got.multiplier == pytest.approx(complete["G"].multiplier, rel=0.02)
    assert plan.forecast.sum() == pytest.approx(whole.forecast.sum(), rel=0.02)
    stopped = sessions[sessions.began_at < noon - pd.Timedelta(hours=2)]
    with pytest.raises(PlanError, match=r"the data ends at \S+ 09:5\d UTC .*, 12\d minutes "
                       r"before the update's time \(12:00 UTC\), in which about \d+ sessions "
                       r"were expected"):
        intraday_plan(Summary.of(stopped, 60.0), noon, Params())


@pytest.mark.parametrize(("missed", "refused"), [(5.4, False), (5.6, True)])
def test_a_gap_is_refused_on_the_count_it_says(missed: float, refused: bool) -> None:
    """The expected sessions of a gap are compared as they are said, whole: 5.4 is 'about
    5', not more than 5; 5.6 is refused as 'about 6'."""
    day = pd.Timestamp("2026-03-12", tz="UTC")
    expected = pd.Series(missed / 8, pd.date_range(day, periods=48, freq="30min"))
    now, ends = day + pd.Timedelta(hours=12), day + pd.Timedelta(hours=8)
    if not refused:
        check_reach(ends, now, expected, 30)
        return
    with pytest.raises(PlanError, match=r"about 6 sessions were expected"):
        check_reach(ends, now, expected, 30)


def test_a_day_the_data_ends_early_in_is_left_out() -> None:
    """A day the data ends in early (at 08:00, and no day after it loaded) is left out of
    the forecast, not read as a quiet day: a plan a week on is the one from the days before
    it, and the days after the end count as no days, not empty ones. A day loaded to
    22:55 (little of it after) is kept."""
    counts, _ = seasonal.seasonal(3, 40.0, seed=5)
    cut = counts.index[-1].normalize() - pd.Timedelta(days=3)  # a Thursday
    sessions = _sessions(counts)
    early = Summary.of(sessions[sessions.began_at < cut + pd.Timedelta(hours=8)], 60.0)
    thursday, friday = cut + pd.Timedelta(days=7), cut + pd.Timedelta(days=8)
    before = Summary.of(sessions[sessions.began_at < cut], 60.0)
    for day in (thursday, friday):
        assert make_plan(early, [day], Params()).forecast.to_numpy() == pytest.approx(
            make_plan(before, [day], Params()).forecast.to_numpy())
    fridays = counts[(counts.index < cut) & (counts.index.day_of_week == 4)]
    assert make_plan(early, [friday], Params()).forecast.sum() == pytest.approx(
        fridays.groupby(fridays.index.normalize()).sum().mean())
    assert cut_short(early, thursday, fc.WEEKS) == early.latest_start
    late = Summary.of(sessions[sessions.began_at < cut + pd.Timedelta(hours=22, minutes=55)],
                      60.0)
    assert cut_short(late, thursday, fc.WEEKS) is None


def test_make_plan_errors() -> None:
    counts, _ = seasonal.seasonal(3, 10.0, seed=1)
    sessions = _summed(counts)
    day = counts.index[0].normalize() + pd.Timedelta(days=10)
    with pytest.raises(PlanError, match=r"10 days with sessions .* needs at least 14"):
        make_plan(sessions, [day], Params())
    with pytest.raises(PlanError, match=r"'X': no such agent group.*known: G"):
        make_plan(sessions, [day + pd.Timedelta(days=7)], Params(), groups=["X"])
    # data that ends before the weeks the forecast reads: where it ends, not "0 days"
    late = counts.index[-1].normalize() + pd.Timedelta(weeks=10)
    with pytest.raises(PlanError, match=r"no history in the 8 weeks the forecast reads "
                       r"\(2026-02-08 to 2026-04-04\): the data ends on 2026-01-25; "):
        make_plan(sessions, [late], Params())


def test_plan_against_actual() -> None:
    """A past day planned from the days before it, then compared with what came."""
    counts, _ = seasonal.seasonal(3, 40.0, seed=6)
    sessions = _summed(counts)
    day = counts.index[-1].normalize()
    params = Params(30, 0.8, 60.0, 0.85)
    plan = make_plan(sessions, [day], params)
    got = evaluate.plan_vs_actual(plan, sessions, params)
    came = counts[counts.index >= day]
    assert got.arrivals.to_numpy() == pytest.approx(came.to_numpy())
    assert got.error.to_numpy() == pytest.approx((plan.forecast - came.to_numpy()).to_numpy())
    # waits are 10 s: everyone answered within the target but the abandoned (1 in 20)
    busy = got[got.arrivals >= 20]
    assert busy.service_level_actual.between(0.85, 1.0).all()
    row = busy.iloc[0]
    held = [300.0] * int(row.slots_per_agent)  # the chats these agents held at once
    needed = cc.agents_required(row.arrivals / 1800, held, row.patience_s, 60.0, 0.8, 0.85)
    each = evaluate.plan_vs_actual(make_plan(sessions, [day], replace(
        params, target_per="interval")), sessions, replace(params, target_per="interval"))
    assert each[each.arrivals >= 20].iloc[0].agents_needed == needed.agents
    # under the day's target (the plan's rule) what came needs fewer agent-intervals
    assert 0 < got.agents_needed.sum() < each.agents_needed.sum()
    s = evaluate.summary(got)
    assert s.wape.iloc[0] == pytest.approx(busy.error.abs().sum() / busy.arrivals.sum())


def test_summaries_add_up() -> None:
    """Two days summed apart and added equal the two summed together (the benchmark adds
    each replayed day to the history this way); different targets cannot be added."""
    counts, _ = seasonal.seasonal(1, 30.0, seed=9)
    sessions = _sessions(counts)
    cut = sessions.began_at.min().normalize() + pd.Timedelta(days=3)
    first, rest = sessions[sessions.began_at < cut], sessions[sessions.began_at >= cut]
    # agents of the two parts apart: chats held across the cut would count in one only
    rest = rest.assign(agent_id="b" + rest.agent_id)
    both = Summary.of(pd.concat([first, rest]), 60.0)
    added = Summary.of(first, 60.0) + Summary.of(rest, 60.0)
    assert added.sessions == both.sessions == len(sessions)
    for name in ("queue", "waits", "handling", "held"):
        keys = [c for c in getattr(both, name).columns
                if c in ("group", "interval_start", "day", "slot", "held")]
        pd.testing.assert_frame_equal(
            getattr(added, name).sort_values(keys).reset_index(drop=True),
            getattr(both, name).sort_values(keys).reset_index(drop=True), check_dtype=False)
    with pytest.raises(ValueError, match="different service targets"):
        Summary.of(first, 60.0) + Summary.of(rest, 20.0)


def test_chats_held_at_each_take() -> None:
    """The concurrency agents keep, counted at each take: the agent's takes so far minus its
    ends so far (ties included), a chat not yet ended holding its slot, and another agent's
    chats never counted, even with an end recorded before its own take."""
    t0 = pd.Timestamp("2026-03-02 09:00", tz="UTC")
    at = [(k, pd.Timedelta(seconds=s)) for k, s in ((0, 0), (0, 50), (0, 50), (0, 200),
                                                     (1, 10), (1, 20))]
    ends = [100, None, 60, 300, -5, 30]  # b: an end before any take at all
    sessions = pd.DataFrame({
        "began_at": [t0 + d for _, d in at], "queued_at": [t0 + d for _, d in at],
        "assigned_at": [t0 + d for _, d in at],
        "ended_at": [t0 + pd.Timedelta(seconds=e) if e is not None else pd.NaT
                     for e in ends],
        "agent_id": ["a" if k == 0 else "b" for k, _ in at], "agent_group_name": "G",
        "hold_s": [e - d.total_seconds() if e is not None else np.nan
                   for (_, d), e in zip(at, ends, strict=True)],
        "abandoned": False})
    held = Summary.of(sessions, 60.0).held
    assert held.groupby("held").chats.sum().to_dict() == {0: 1, 1: 2, 2: 1, 3: 1}
    # a's chat taken at 200 s, held 100 s, while a still held its unended one
    assert held.set_index("held").hold_s[2] == 100.0
