"""Polls alone, with sessions leaving the seed while others are still polled (a seed of
open sessions drops one once it ends, before a poll sees it end; or drops it while it
still waits): the queue length stops counting what the polls lost, and its bounds still
hold the simulator's truth at every instant."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.core.clock import VirtualClock
from tencent_desk.models import timeline
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)

from .conftest import ADMIN, SDKAPPID, SECRET_KEY, Sim
from .polled_day import poll_day
from .test_timeline import truth

DS = "tencent_desk"
START_H, END_H, EVERY_S = 9.5, 11.5, 60


@pytest.fixture(scope="module")
def left(tmp_path_factory):
    pop = Population(PopulationConfig(seed=5, sessions_per_day=3000, agents=7))
    true = truth(pop)
    rng = random.Random(3)
    leaves = {}
    for sid, row in true[true["queued"].notna()].iterrows():
        out = np.nanmin([row["answered"], row["ended"]])
        draw = rng.random()
        if draw < 0.4 and np.isfinite(out):  # dropped once out of the queue, unseen
            leaves[sid] = out
        elif draw < 0.5:  # dropped while it still waits
            leaves[sid] = row["queued"] + 30
    app = SimulatorApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY),
                       model_clock=VirtualClock(pop.config.day_start))
    db = tmp_path_factory.mktemp("unseen") / "desk.duckdb"
    with serve_in_thread(app) as url:
        poll_day(Sim(app, url), db, START_H, END_H, EVERY_S, leaves)
    with duckdb.connect(str(db)) as con:
        con.execute(f"UPDATE {DS}.session_states s SET polled_at = r.started_at "
                    f"FROM {DS}.runs r WHERE s.run_id = r.run_id")
        con.execute(f"ALTER TABLE {DS}.runs ADD COLUMN _dlt_load_id VARCHAR")
        con.execute(f"UPDATE {DS}.runs SET _dlt_load_id = run_id")
        timeline.upkeep(con, DS)
        df = tm.sessions(con)
    return pop, true, leaves, df


def test_the_timeline_knows_when_each_session_was_last_seen(left) -> None:
    _pop, _true, leaves, df = left
    polled = df[df["last_seen_at"].notna()].set_index("session_id")
    assert len(polled) > 500
    last = polled["last_seen_at"].map(lambda x: x.timestamp())
    gone = [s for s in polled.index if s in leaves]
    assert gone and (last[gone] < pd.Series(leaves)[gone]).all()
    assert (polled["poll_every_s"].dropna() >= EVERY_S - 1e-6).all()


def test_queue_length_stops_counting_what_the_polls_lost_and_bounds_hold(left) -> None:
    pop, true, _leaves, df = left
    day = pop.config.day_start
    instants = [datetime.fromtimestamp(day + START_H * 3600 + m * 60, UTC)
                for m in range(10, int((END_H - START_H) * 60), 7)]
    got = tm.queue_length(df, instants)
    before = tm.queue_length(df.drop(columns=["last_seen_at", "poll_every_s"]), instants)
    queued = true["queued"].to_numpy(dtype=float)
    out = np.fmin(true["answered"].to_numpy(dtype=float), true["ended"].to_numpy(dtype=float))
    out = np.where(np.isnan(out), np.inf, out)
    real = np.array([int(((queued <= t.timestamp()) & (t.timestamp() < out)).sum())
                     for t in instants])
    assert (got["lo"].to_numpy() <= real).all(), got.assign(real=real)
    assert (real <= got["hi"].to_numpy()).all(), got.assign(real=real)
    error = np.abs(got["value"].to_numpy() - real)
    stale = np.abs(before["value"].to_numpy() - real)
    # without last-seen, every lost session waits until the window ends: the count drifts
    assert stale[-5:].mean() > 10 * max(error[-5:].mean(), 1)
    assert error.max() <= max(5, 0.5 * real.max())
