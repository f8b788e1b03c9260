"""Record metrics against the simulator's truth: a morning polled every five minutes by the
real client, then its session records read by the real client, in one DuckDB file."""

from __future__ import annotations

import asyncio
import contextlib

import duckdb
import pytest
from tencent_desk.analysis import record_metrics
from tencent_desk.api import states
from tencent_desk.api.records import cut_windows, read_windows
from tencent_desk.core.clock import VirtualClock
from tencent_desk.job import record_rows
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)

from .conftest import ADMIN, SDKAPPID, SECRET_KEY, Sim, make_client
from .polled_day import poll_day

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

START_H, END_H = 9.5, 12.0


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    pop = Population(PopulationConfig(seed=5, sessions_per_day=3000, agents=7))
    day = pop.config.day_start
    db = tmp_path_factory.mktemp("records-metrics") / "desk.duckdb"
    app = SimulatorApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY),
                       model_clock=VirtualClock(day))
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serve_in_thread(app))
        poll_day(Sim(app, url), db, START_H, END_H, 300)
        app.model_clock.set(day + (END_H + 1) * 3600)  # type: ignore[attr-defined]

        async def read() -> list:
            async with make_client(url) as client:
                return [r for w in [x async for x in read_windows(
                    client, cut_windows(int(day), int(app.model_clock.time())))]
                    for r in w.records]

        table = record_rows.to_table(asyncio.run(read()), "r1")
        con = stack.enter_context(duckdb.connect(str(db)))
        con.register("records", table)
        con.execute("CREATE TABLE tencent_desk.session_records AS SELECT * FROM records")
        yield pop, con


def _agent_seconds(pop: Population, session_id: str) -> float:
    return sum(s.end - s.start for s in pop.segments(session_id) if s.state == states.AGENT)


def test_handling_time_bounds_hold_the_true_agent_time(desk):
    pop, con = desk
    handled = record_metrics.handling_times(con)
    polled = handled[handled.started_at >= handled.started_at.min()]
    assert len(polled) > 200
    for row in polled.itertuples():
        true = _agent_seconds(pop, row.session_id)
        # whole seconds in records: a second of slack on each side
        assert row.lower_s - 1 <= true <= row.upper_s + 1, row


def test_littles_law_meets_the_true_handling_time_over_the_morning(desk):
    pop, con = desk
    by_load = record_metrics.handling_time_from_load(con)
    span = by_load[by_load.n_polls > 0]
    estimate = span.agent_seconds.sum() / span.served.sum()
    starts, ends = span.interval_start.min(), span.interval_start.max()
    ended = [k.session_id for k in pop.session_keys()
             if pop.session_truth(k.session_id).agent_id
             and starts.timestamp() <= pop.ended_at(k.session_id)
             < ends.timestamp() + 3600]
    true = sum(_agent_seconds(pop, s) for s in ended) / len(ended)
    assert estimate == pytest.approx(true, rel=0.1)
