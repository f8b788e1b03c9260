"""The simulator's weeks: seasonality, per-group parameters, the day's draw, the staffing
schedule (logout semantics), replay, the truth it records, and weeks of history made through
the real intake path (receiver, records job) by the real CLI."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
from tencent_desk.core.serving import serve_in_thread
from tencent_desk.intake.receiver import Receiver, ReceiverConfig
from tencent_desk.intake.spool import read_records, sealed_segments
from tencent_desk.simulator import weeks as wk
from tencent_desk.simulator.callbacks import StreamSender, plan
from tencent_desk.simulator.replay import replay, serve_customers
from tencent_desk.simulator.schedule import Schedule
from tencent_desk.simulator.service import serve_group
from tencent_desk.simulator.truth import (
    truth_agent_groups,
    truth_customers,
    truth_expected_rates,
    truth_schedule,
)

from tests.support import cli

MONDAY = wk.DAY_START  # 2026-01-05


def test_weekly_seasonality_and_group_parameters_show_in_the_data() -> None:
    cfg = wk.WeeksConfig(seed=3, days=14, day_cv=0.0)
    rates = wk.expected_rates(cfg)
    assert len(rates) == 14 * 96 * len(cfg.groups)
    rates["weekday"] = rates["interval_start"].dt.day_of_week
    per_day = rates.groupby(["agent_group_id", "weekday"])["expected_offered"].sum() / 2
    for gid, g in zip(cfg.group_ids, cfg.groups, strict=True):
        # The day's expected volume is the group's weekday volume times its weekly factor.
        np.testing.assert_allclose(per_day[gid].to_numpy(),
                                   g.weekday_offered * np.array(g.weekly), rtol=1e-9)
    # Weekends have their own intraday shape: the weekday's 09:00 peak share is bigger.
    sales = rates[rates["agent_group_id"] == "3000"].copy()
    sales["hour"] = sales["interval_start"].dt.hour
    share_9 = sales.groupby("weekday").apply(
        lambda d: d.loc[d["hour"] == 9, "expected_offered"].sum() / d["expected_offered"].sum())
    assert share_9[0] > 1.2 * share_9[6]

    customers = wk.all_customers(cfg)
    customers["weekday"] = pd.to_datetime(customers["queued_at"], unit="s").dt.day_of_week
    for gid, g in zip(cfg.group_ids, cfg.groups, strict=True):
        mine = customers[customers["agent_group_id"] == gid]
        counts = mine.groupby("weekday").size()
        expected = 2 * g.weekday_offered * np.array(g.weekly)
        # Poisson counts (no day draw here): within 5 standard deviations of the truth.
        assert np.all(np.abs(counts.to_numpy() - expected) < 5 * np.sqrt(expected) + 1)
        n = len(mine)
        # Patience is exponential (sd = mean); handling lognormal with the group's mean.
        assert abs(mine["patience_s"].mean() - g.patience_mean_s) < 5 * g.patience_mean_s / \
            math.sqrt(n)
        sd = g.handling_mean_s * math.sqrt(math.exp(g.handling_sigma**2) - 1)
        assert abs(mine["work_s"].mean() - g.handling_mean_s) < 5 * sd / math.sqrt(n)
        assert mine["offer_s"].between(g.offer_min_s, g.offer_max_s).all()
    means = customers.groupby("agent_group_id")["patience_s"].mean()
    assert means["3000"] < means["3002"] < means["3001"]  # 150, 240, 300 s: groups differ


def test_each_days_volume_is_drawn_with_the_stated_cv() -> None:
    cfg = wk.WeeksConfig(seed=11, days=300, day_cv=0.10)
    draws = np.array([[wk.day_multiplier(cfg, d, g) for g in range(3)]
                      for d in range(cfg.days)])
    n = draws.size
    # Gamma(k = 1/cv^2): mean 1, sd cv; the sample sd's standard error ~ cv / sqrt(2n).
    assert abs(draws.mean() - 1) < 5 * 0.10 / math.sqrt(n)
    assert abs(draws.std(ddof=1) - 0.10) < 5 * 0.10 / math.sqrt(2 * n) * 1.2
    # A day's draw does not depend on how many days are simulated.
    assert wk.day_multiplier(cfg, 5, 1) == wk.day_multiplier(wk.WeeksConfig(seed=11, days=7),
                                                             5, 1)
    # The days' counts follow their draw: count / expected = m x Poisson noise, so its
    # variance is cv^2 + 1 / expected (law of total variance).
    support = 1
    ratios, expect = [], []
    for d in range(0, cfg.days, 3):
        e = wk.minute_rates(cfg, d, support).sum()
        got = (wk.day_customers(cfg, d)["agent_group_id"] == cfg.group_ids[support]).sum()
        ratios.append(got / e)
        expect.append(e)
        # The day's customers are drawn around expected x that day's multiplier.
        m = wk.day_multiplier(cfg, d, support)
        assert abs(got - e * m) < 5 * math.sqrt(e * m)
    var = 0.10**2 + np.mean(1 / np.array(expect))
    k = len(ratios)
    assert abs(np.var(ratios, ddof=1) / var - 1) < 5 * math.sqrt(2 / (k - 1))
    rates = wk.expected_rates(wk.WeeksConfig(seed=11, days=3))
    np.testing.assert_allclose(rates["drawn_offered"],
                               rates["expected_offered"] * rates["day_multiplier"])


def _serve(queued, work, staffing, *, patience=None, slots=2, offer=1.0, interval_s=100.0):
    q = np.array(queued, float)
    return serve_group(q, np.full(len(q), 1e9) if patience is None else np.array(patience),
                       np.full(len(q), offer), np.array(work, float), np.array(staffing),
                       0.0, interval_s, slots)


def test_an_agent_who_logs_out_takes_no_new_chat_and_finishes_those_held() -> None:
    # Two agents with 2 slots; c0 -> agent 0, c1 -> agent 1, c2 -> agent 0 (fewest chats,
    # then lowest index). Agent 1 logs out at t=100 with one chat and a free slot.
    queued, work = [0, 1, 2, 150], [1000, 1000, 1000, 10]
    stay_out = _serve(queued, work, [2, 1])
    assert stay_out.agent.tolist() == [0, 1, 0, 0]
    # c1's chat is not cut by the logout: it ends when its work is done.
    assert stay_out.start[1] == 1 and stay_out.handle_s[1] == 1000
    # c3 waits for agent 0's first slot (c0 ends at 0 + 1 + 1000), not agent 1's free one.
    assert stay_out.start[3] == pytest.approx(1001)
    back = _serve(queued, work, [2, 1, 2])  # agent 1 logs in again at t=200
    assert back.agent[3] == 1 and back.start[3] == 200
    # Too impatient for that: leaves at its deadline, taking no slot.
    impatient = _serve(queued, work, [2, 1], patience=[1e9, 1e9, 1e9, 30])
    assert impatient.agent[3] == -1 and math.isnan(impatient.start[3])
    # Nobody logged in at all: everyone leaves.
    assert (_serve([0, 5], [10, 10], [0], patience=[50, 50]).agent == -1).all()


def test_first_come_first_served_within_a_group() -> None:
    # One agent, one slot: three customers queue behind a long chat, served in order.
    got = _serve([0, 10, 11, 12], [100, 5, 5, 5], [1], slots=1, offer=0.0)
    assert got.start.tolist() == [0, 100, 105, 110]
    with pytest.raises(ValueError, match="sorted"):
        _serve([5, 1], [1, 1], [1])


def test_concurrency_slows_each_chat() -> None:
    s = serve_group(np.array([0.0, 1.0]), np.full(2, 1e9), np.zeros(2), np.array([100., 100.]),
                    np.array([1]), 0.0, 900.0, 3, slowdown=0.1)
    assert s.handle_s.tolist() == pytest.approx([100.0, 110.0])


def _day(seed: int = 5) -> tuple[wk.WeeksConfig, pd.DataFrame, Schedule]:
    cfg = wk.WeeksConfig(seed=seed, days=1)
    return cfg, wk.day_customers(cfg, 0), wk.default_schedule(cfg)


def test_replay_is_deterministic_and_more_agents_never_lower_the_service_level() -> None:
    cfg, customers, schedule = _day()
    slow = wk.slowdowns(cfg)
    first = replay(customers, schedule, interval_s=1800, slowdown=slow)
    again = replay(customers.sample(frac=1, random_state=1), schedule, interval_s=1800,
                   slowdown=slow)
    pd.testing.assert_frame_equal(first, again)
    assert (first.groupby("agent_group_id")["offered"].sum().to_numpy()
            == customers.groupby("agent_group_id").size().to_numpy()).all()
    assert (first["offered"] == first["answered"] + first["abandoned"]).all()
    assert first["staff_hours"].sum() == pytest.approx(
        sum(schedule.staff_hours(g) for g in schedule.groups))
    previous = None
    for extra in (-1, 0, 1, 2, 4):
        plan = Schedule(schedule.start, schedule.interval_s,
                        {g: np.maximum(a + extra, 0) for g, a in schedule.agents.items()},
                        dict(schedule.slots_per_agent))
        out = replay(customers, plan, slowdown=slow).groupby("agent_group_id")[
            ["answered_within", "answered", "abandoned_after", "abandoned"]].sum()
        sl = out["answered_within"] / (out["answered"] + out["abandoned_after"])
        if previous is not None:
            assert (sl >= previous[0] - 1e-12).all()
            assert (out["abandoned"] <= previous[1]).all()
        previous = (sl, out["abandoned"])
    assert (previous[0] > 0.99).all()  # four more agents everywhere: nearly all within 60 s


def test_replay_under_the_historys_schedule_reproduces_the_history() -> None:
    cfg = wk.WeeksConfig(seed=3, days=3)
    history = wk.simulate(cfg)
    day = history.customers[history.customers["day"] == 1]
    again = serve_customers(wk.day_customers(cfg, 1),
                            history.schedule.window(cfg.day_start(1), cfg.day_start(2)),
                            wk.slowdowns(cfg))
    key = ["agent_group_id", "queued_at"]
    day, again = (f.sort_values(key).reset_index(drop=True) for f in (day, again))
    pd.testing.assert_frame_equal(day[[*key, "patience_s", "work_s"]],
                                  again[[*key, "patience_s", "work_s"]])
    # The replay starts with no chat in progress; once the night's carried-over chats are
    # done, every customer's outcome and wait are the history's.
    late = (day["queued_at"] > cfg.day_start(1) + 6 * 3600).to_numpy()
    assert late.sum() > 0.9 * len(day)
    assert (day["outcome"][late] == again["outcome"][late]).all()
    np.testing.assert_allclose(day["wait_s"][late], again["wait_s"][late], atol=1e-6)


def test_replay_measures_waits_and_agent_time() -> None:
    cfg, customers, schedule = _day(seed=8)
    served = serve_customers(customers, schedule, wk.slowdowns(cfg))
    ok = served["outcome"] == "answered"
    # Waits run from queuing to answered (offer included), or to leaving at the patience.
    np.testing.assert_allclose(served.loc[~ok, "wait_s"], served.loc[~ok, "patience_s"], atol=1e-5)
    assert (served.loc[ok, "wait_s"] >= served.loc[ok, "offer_s"] - 1e-5).all()
    assert (served.loc[ok, "started"] - served.loc[ok, "queued_at"]
            <= served.loc[ok, "patience_s"] + 1e-5).all()
    out = replay(customers, schedule, slowdown=wk.slowdowns(cfg))
    chat_total = (served.loc[ok, "ended_at"] - served.loc[ok, "started"]).sum()
    # Chats after the schedule's last interval are outside it: at most a few minutes' worth.
    assert 0.99 * chat_total <= out["chat_s"].sum() <= chat_total + 1e-6
    assert (out["busy_s"] <= out["chat_s"] + 1e-6).all()
    assert out["concurrency"].dropna().between(1, 3 + 1e-9).all()
    sl = out["answered_within"].sum() / (out["answered"].sum() + out["abandoned_after"].sum())
    assert 0.5 < sl < 1


def test_schedule_frame_round_trip_and_errors() -> None:
    _, _, schedule = _day()
    back = Schedule.from_frame(schedule.to_frame())
    assert back.start == schedule.start and back.interval_s == schedule.interval_s
    for g in schedule.groups:
        assert (back.agents[g] == schedule.agents[g]).all()
    assert back.slots_per_agent == schedule.slots_per_agent
    with pytest.raises(ValueError, match="columns"):
        Schedule.from_frame(schedule.to_frame().drop(columns="agents"))
    with pytest.raises(ValueError, match="every interval"):
        Schedule.from_frame(schedule.to_frame().iloc[1:])
    _, customers, _ = _day()
    with pytest.raises(ValueError, match="no agent group 3002"):
        replay(customers, Schedule(MONDAY, 900, {"3000": np.ones(96), "3001": np.ones(96)},
                                   {"3000": 2, "3001": 2}))


@pytest.mark.slow  # days of history through the real intake path
def test_history_whose_callbacks_were_all_sent_by_the_last_day(tmp_path) -> None:
    """Nothing left to send after the last day (seed 0, one day): no final load, no crash."""
    db = tmp_path / "one.duckdb"
    done = cli.run([cli.CLI, "simulate", "history", "--days", "1", "--start", "2026-01-05",
                    "--database", str(db), "--seed", "0", "--no-progress"], tmp_path,
                   timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "history: 1 days" in done.stdout


@pytest.mark.slow  # days of history through the real intake path
def test_history_through_the_receiver_and_the_records_job(tmp_path) -> None:
    db = tmp_path / "history.duckdb"
    done = cli.run([cli.CLI, "simulate", "history", "--days", "2", "--start", "2026-01-05",
                    "--database", str(db), "--seed", "4", "--poll-days", "1", "--poll-every",
                    "360", "--no-progress"], tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "history: 2 days" in done.stdout
    con = duckdb.connect(str(db), read_only=True)
    try:
        truth = truth_customers(con)
        cfg = wk.WeeksConfig(seed=4, start=MONDAY, days=2)
        expected = wk.simulate(cfg).customers
        # The truth written is the weeks model's: same customers, same outcomes.
        assert len(truth) == len(expected)
        np.testing.assert_allclose(np.sort(truth["patience_s"]),
                                   np.sort(expected["patience_s"]))
        # Every session's record came through describe_im_cdr_list and the records job.
        records = con.sql("SELECT session_id, agent_group_id, end_status "
                          "FROM tencent_desk.session_records").df()
        n_truth = con.execute("SELECT count(DISTINCT session_id) FROM desk_simulator.truth"
                              ).fetchall()[0][0]
        assert len(records) == records["session_id"].nunique() == n_truth
        joined = truth.merge(records, on="session_id", suffixes=("", "_rec"))
        assert len(joined) == len(truth)
        assert (joined["agent_group_id"] == joined["agent_group_id_rec"]).all()
        assert ((joined["outcome"] == "abandoned")
                == (joined["end_status"] == "QueueAbandoned")).all()
        # Every session's callbacks came through the receiver into session_events.
        events = con.execute("SELECT count(DISTINCT session_id) "
                             "FROM tencent_desk.session_events").fetchall()[0][0]
        assert events == n_truth
        # The job's timeline, built from the events, has each customer's true queue time.
        timeline = con.sql("SELECT session_id, epoch(queued_at) AS q, "
                           "epoch(answered_at) AS a FROM tencent_desk.session_timeline").df()
        t = truth.merge(timeline, on="session_id")
        assert len(t) == len(truth)
        assert np.allclose(t["q"], t["queued_at"], atol=0.002)
        answered = t[t["outcome"] == "answered"]
        assert np.allclose(answered["a"] - answered["queued_at"], answered["wait_s"],
                           atol=0.003)
        # Polls on the last day only: runs with polled sessions are in runs.
        runs = con.execute("SELECT count(*) FROM tencent_desk.runs").fetchall()[0][0]
        assert runs >= 3
        rates = truth_expected_rates(con, interval_s=1800)
        assert len(rates) == 2 * 48 * 3
        np.testing.assert_allclose(
            rates.groupby("agent_group_id")["expected_offered"].sum().to_numpy(),
            [sum(g.weekday_offered * g.weekly[d] for d in (0, 1)) for g in cfg.groups])
        groups = truth_agent_groups(con)
        assert groups["patience_mean_s"].tolist() == [g.patience_mean_s for g in cfg.groups]
        schedule = truth_schedule(con)
        assert schedule.n_intervals == 2 * 96
        day1 = truth_customers(con, datetime(2026, 1, 6, tzinfo=UTC))
        assert len(day1) == len(wk.day_customers(cfg, 1))
    finally:
        con.close()


def test_steady_customers_for_checking_a_staffing_model() -> None:
    g = wk.DEFAULT_GROUPS[1]
    a = wk.steady_customers(g, per_hour=120, hours=50, seed=2)
    pd.testing.assert_frame_equal(a, wk.steady_customers(g, per_hour=120, hours=50, seed=2))
    assert abs(len(a) - 6000) < 5 * math.sqrt(6000)
    assert abs(a["patience_s"].mean() - g.patience_mean_s) < 5 * g.patience_mean_s / \
        math.sqrt(len(a))
    # Offered load 120/h x ~7.4 min held: ~15 chats; 10 agents x 3 slots answer nearly all.
    out = replay(a, Schedule(wk.DAY_START, 3600.0, {"3000": np.full(50, 10)}, {"3000": 3}),
                 slowdown={"3000": g.slowdown_per_chat})
    assert out["abandoned"].sum() < 0.01 * len(a)


def test_stream_sender_delivers_like_the_aiohttp_sender(tmp_path) -> None:
    population = wk.simulate(wk.WeeksConfig(seed=2, days=1)).population
    day = plan(population, keys=population.session_keys_between(MONDAY, MONDAY + 3 * 3600),
               label="t-")
    receiver = Receiver(ReceiverConfig(1400000000, tmp_path / "spool", seal_after_s=0.2))
    with serve_in_thread(receiver) as url:
        ours = StreamSender(url + "/desk/callback", 1400000000, concurrency=8)
        asyncio.run(ours.send(day + day[:10]))  # ten repeats: acknowledged, stored once
        foreign = StreamSender(url + "/desk/callback", 1400000001, concurrency=2)
        asyncio.run(foreign.send(day[:5]))
    assert ours.statuses == Counter({200: len(day) + 10})
    assert foreign.statuses == Counter({403: 5})  # refused: not retried
    stored = [r for p in sealed_segments(tmp_path / "spool") for r in read_records(p)]
    assert sorted(r["request_id"] for r in stored) == sorted(c.request_id for c in day)


def test_history_errors_are_one_line(tmp_path) -> None:
    bad = [(["--days", "0"], "--weeks/--days must be >= 1"),
           (["--days", "2", "--poll-days", "3"], "--poll-days between 0 and the days"),
           (["--days", "1", "--database", str(tmp_path / "nowhere" / "h.duckdb")],
            f"folder {tmp_path / 'nowhere'} does not exist")]
    for more, message in bad:
        argv = [cli.CLI, "simulate", "history", "--database", str(tmp_path / "h.duckdb"), *more]
        got = cli.run(argv, tmp_path, timeout=120)
        assert got.returncode == 2, got.stderr
        lines = cli.error_lines(got.stderr)
        assert len(lines) == 1 and message in lines[0], got.stderr
        assert "Traceback" not in got.stderr
