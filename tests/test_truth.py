"""Metrics against the simulator's true state history: a simulated morning polled every
minute and every five minutes by the real client; the truth must lie inside every bound.

Run with ``-s`` to see the error report (also in the closing note of issue 4).
"""

from __future__ import annotations

import contextlib
from datetime import UTC

import duckdb
import numpy as np
import pandas as pd
import pytest
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.core.clock import VirtualClock
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)
from tencent_desk.simulator import truth as sim_truth

from .conftest import ADMIN, SDKAPPID, SECRET_KEY, Sim
from .polled_day import poll_day

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

START_H, END_H = 9.5, 12.0
INTERVALS = (60, 300)


@pytest.fixture(scope="module")
def polled(tmp_path_factory) -> dict[int, duckdb.DuckDBPyConnection]:
    # Few agents for the load: queues build, some customers give up.
    pop = Population(PopulationConfig(seed=5, sessions_per_day=3000, agents=7))
    out: dict[int, duckdb.DuckDBPyConnection] = {}
    with contextlib.ExitStack() as stack:
        for every in INTERVALS:
            app = SimulatorApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY),
                               model_clock=VirtualClock(pop.config.day_start))
            url = stack.enter_context(serve_in_thread(app))
            db = tmp_path_factory.mktemp(f"every{every}") / "desk.duckdb"
            poll_day(Sim(app, url), db, START_H, END_H, every)
            out[every] = stack.enter_context(duckdb.connect(str(db), read_only=True))
        yield out


@pytest.mark.parametrize("every", INTERVALS)
def test_each_snapshot_is_the_truth_at_its_instant(polled, every):
    con = polled[every]
    queue = metrics.queue_per_poll(con)
    truth = sim_truth.truth_queue_at(con, queue["snapshot_at"])
    assert queue["waiting"].sum() > 0
    np.testing.assert_array_equal(queue[["queuing", "waiting_for_agent"]].to_numpy(),
                                  truth[["queuing", "waiting_for_agent"]].to_numpy())
    chats = metrics.agent_concurrency_per_poll(con)
    true_chats = sim_truth.truth_agent_concurrency_at(con, queue["snapshot_at"])
    merged = chats.merge(true_chats, on=["snapshot_at", "agent_id"], how="outer",
                         suffixes=("", "_true")).fillna(0)
    np.testing.assert_array_equal(merged["chats"], merged["chats_true"])


@pytest.mark.parametrize("every", INTERVALS)
def test_every_wait_bound_holds_the_true_wait(polled, every):
    con = polled[every]
    est = metrics.waits(con)
    est = est[est["first_answer"]].set_index("session_id")
    true = sim_truth.truth_waits(con)
    true = true[true["first_answer"]].set_index("session_id")["wait_s"]
    joined = est.join(true, how="inner")
    assert len(joined) == len(est) > 20
    upper = joined["upper_s"].astype(float).fillna(np.inf)
    inside = (joined["lower_s"] <= joined["wait_s"] + 1e-6) & (joined["wait_s"] <= upper + 1e-6)
    assert inside.all(), joined[~inside]
    stats = metrics.wait_stats(joined)
    for name, true in (("mean", joined["wait_s"].mean()), ("median", joined["wait_s"].median()),
                       ("p90", joined["wait_s"].quantile(0.9))):
        lower, upper = stats.loc[name, "lower_s"], stats.loc[name, "upper_s"]
        assert lower - 1e-6 <= true <= upper + 1e-6
        _report(every, f"{name} time to answer (s)", true, lower, upper)
    # Waits that began before the first poll have no upper bound; the rest, a finite one.
    bounded = joined[joined["upper_s"].notna()]
    b = metrics.wait_stats(bounded)
    _report(every, "mean time to answer, waits begun after the first poll (s)",
            bounded["wait_s"].mean(), b.loc["mean", "lower_s"], b.loc["mean", "upper_s"])


@pytest.mark.parametrize("every", INTERVALS)
def test_interval_averages_and_peaks_against_the_truth(polled, every):
    con = polled[every]
    per = metrics.queue_per_interval(con, interval="15min")
    per = per[per["n_polls"] > 0]
    fine = pd.date_range(pd.Timestamp(per["interval_start"].min()).tz_convert(UTC),
                         periods=len(per) * 90, freq="10s")
    truth = sim_truth.truth_queue_at(con, fine).set_index("snapshot_at")["waiting"]
    true_avg = truth.groupby(truth.index.floor("15min")).mean()
    true_peak = truth.groupby(truth.index.floor("15min")).max()
    starts = pd.DatetimeIndex(per["interval_start"]).tz_convert(UTC)
    err = np.abs(per["avg_waiting"].to_numpy() - true_avg.reindex(starts).to_numpy())
    assert np.isfinite(err).all()
    # a peak seen at a poll is a true count, so it cannot exceed the true peak
    assert (per["peak_waiting"].to_numpy() <= true_peak.reindex(starts).to_numpy()).all()
    _report(every, "15-min average queue, mean abs error (sessions)", float(err.mean()),
            None, None)

    occ = metrics.agent_concurrency_per_poll(con)
    mean_est = occ.groupby("agent_id")["chats"].mean()
    true_occ = sim_truth.truth_agent_concurrency_at(con, fine)
    mean_true = true_occ.groupby("agent_id")["chats"].mean()
    gap = float((mean_est - mean_true.reindex(mean_est.index)).abs().mean())
    _report(every, "mean chats per agent, mean abs error", gap, None, None)


def _report(every: int, what: str, value: float, lower: float | None,
            upper: float | None) -> None:
    bounds = f" bounds [{lower:.1f}, {upper:.1f}]" if lower is not None else ""
    print(f"\n[truth] poll every {every:>3d} s: {what}: {value:.3f}{bounds}")
