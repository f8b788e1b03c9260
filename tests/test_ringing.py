"""The offer's ringing as the polls see it (planning/ringing.py), and what a plan takes from
it: the exposure patience is estimated on and the models' wait (planning/summary.py).
Seeded synthetic polls whose ringing is known, in a real DuckDB."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from tencent_desk.planning import forecast as fc
from tencent_desk.planning import ringing
from tencent_desk.planning.summary import MIN_SEEN, Summary

DS = "tencent_desk"
T0 = pd.Timestamp("2026-03-02", tz="UTC")
EVERY_S = 300.0


def _desk(n: int = 30_000, seed: int = 3, exact_every: int = 0) -> tuple[
        duckdb.DuckDBPyConnection, pd.DataFrame]:
    """A day of ``n`` answered chats whose offers ring 3-15 s, polled every 5 minutes but
    for a night without runs from 01:00 to 04:00 (a gap no sighting may stand for); every
    ``exact_every``-th chat has its offer timed by a callback."""
    rng = np.random.default_rng(seed)
    offered = np.sort(rng.uniform(0, 86_400, n))
    rings = rng.uniform(3, 15, n)
    answered = offered + rings
    queued = offered - rng.exponential(20, n)
    runs = np.arange(0, 86_400 + EVERY_S, EVERY_S)
    runs = runs[(runs <= 3_600) | (runs >= 4 * 3_600)]
    at = lambda s: T0 + pd.to_timedelta(s, unit="s")  # noqa: E731
    exact = (np.arange(n) % exact_every == 0) if exact_every else np.zeros(n, bool)
    timeline = pd.DataFrame({
        "sdkappid": 1, "session_id": [f"s{k}" for k in range(n)], "began_at": at(queued - 30),
        "queued_at": at(queued), "offered_at": at(np.where(exact, offered, answered)),
        "offered_source": "event", "answered_at": at(answered), "ended_at": at(answered + 300),
        "agent_group_name": np.where(np.arange(n) % 3 == 0, "Billing", "Sales")})
    seen = [(p, k) for p in runs for k in range(np.searchsorted(answered, p - 15),
                                                  np.searchsorted(offered, p, "right"))
            if offered[k] <= p < answered[k]]
    states = pd.DataFrame({
        "sdkappid": 1, "run_id": [f"r{int(p)}" for p, _ in seen],
        "polled_at": at(np.array([p for p, _ in seen], float)),
        "state": "waiting_for_agent", "session_id": [f"s{k}" for _, k in seen]})
    con = duckdb.connect(":memory:")
    con.execute(f"CREATE SCHEMA {DS}")
    for name, frame in (("session_timeline", timeline), ("session_states", states),
                        ("runs", pd.DataFrame({"sdkappid": 1,
                                               "run_id": [f"r{int(p)}" for p in runs],
                                               "status": "complete", "started_at": at(runs)}))):
        con.register("frame", frame)
        con.execute(f"CREATE TABLE {DS}.{name} AS SELECT * FROM frame")
        con.unregister("frame")
    truth = timeline.assign(ring_s=rings, exact=exact, answered_s=answered)
    return con, truth


def test_the_polls_weigh_each_sighting_by_its_gap() -> None:
    con, truth = _desk()
    got = ringing.seen(con, DS, T0 - pd.Timedelta(days=1), T0 + pd.Timedelta(days=2))
    assert got is not None and set(got.group) == {"Billing", "Sales"}
    night = (truth.answered_s > 3_600) & (truth.answered_s <= 4 * 3_600)
    # every chat answered in a covered gap, and none of the night's, counted once
    last = 86_400  # the last run
    assert got.covered.sum() == (~night & (truth.answered_s > 0)
                                 & (truth.answered_s <= last)).sum()
    assert (got.seen_s == got.seen * EVERY_S).all()
    # about 900 sightings of rings averaging 9 s: within 10% (3 standard errors)
    for group, g in got.groupby("group"):
        mean = g.seen_s.sum() / g.covered.sum()
        assert mean == pytest.approx(truth.ring_s[truth.agent_group_name == group].mean(),
                                     rel=0.10)


def test_a_timed_offer_is_neither_sighted_nor_covered() -> None:
    con, truth = _desk(exact_every=2)
    got = ringing.seen(con, DS, T0 - pd.Timedelta(days=1), T0 + pd.Timedelta(days=2))
    assert got is not None
    night = (truth.answered_s > 3_600) & (truth.answered_s <= 4 * 3_600)
    assert got.covered.sum() == (~night & ~truth.exact & (truth.answered_s <= 86_400)).sum()
    assert got.seen_s.sum() / got.covered.sum() == pytest.approx(9.0, rel=0.12)


def test_without_polls_there_is_nothing_to_read() -> None:
    con, _ = _desk(n=10)
    con.execute(f"DROP TABLE {DS}.session_states")
    assert ringing.seen(con, DS, T0, T0 + pd.Timedelta(days=1)) is None


def _answered(rings: np.ndarray, queue_s: np.ndarray, exact: np.ndarray) -> pd.DataFrame:
    """Answered chats that waited ``queue_s`` for the offer, then rang ``rings``: the offer
    timed where ``exact``, else the wait and the handling counted from the answer."""
    n = len(rings)
    queued = T0 + pd.to_timedelta(np.arange(n) * 60.0, unit="s")
    offered = queued + pd.to_timedelta(queue_s, unit="s")
    answered = offered + pd.to_timedelta(rings, unit="s")
    assigned = pd.Series(offered).where(exact, pd.Series(answered))
    ended = answered + pd.Timedelta(seconds=300)
    return pd.DataFrame({
        "began_at": queued, "queued_at": queued, "assigned_at": assigned,
        "answered_at": answered, "ended_at": ended, "agent_id": "a",
        "agent_group_name": "G", "hold_s": (pd.Series(ended) - assigned).dt.total_seconds(),
        "abandoned": False})


def test_a_plan_takes_the_ringing_out_of_the_waits_and_into_the_slot() -> None:
    rng = np.random.default_rng(7)
    n = 4_000
    rings, queue_s = rng.uniform(3, 15, n), rng.exponential(30, n)
    exact = np.arange(n) % 4 == 0
    sessions = _answered(rings, queue_s, exact)
    # 50 abandonments after 100 s each
    left = T0 + pd.to_timedelta(np.arange(50) * 60.0, unit="s")
    sessions = pd.concat([sessions, pd.DataFrame({
        "began_at": left, "queued_at": left, "assigned_at": pd.NaT, "answered_at": pd.NaT,
        "ended_at": left + pd.Timedelta(seconds=100), "agent_id": None,
        "agent_group_name": "G", "hold_s": np.nan, "abandoned": True})], ignore_index=True)
    summed = Summary.of(sessions, 60.0)
    # without polls: the timed offers' ringing only
    ring = summed.ringing()
    assert ring.hidden_s == ring.unheld_s == 0.0
    assert ring.mean_s == pytest.approx(rings[exact].sum() / n)
    waited, gave_up = summed.waited()
    assert gave_up == 50
    assert waited == pytest.approx(queue_s.sum() + rings[~exact].sum() + 50 * 100.0)
    # the polls saw the rest ring 9 s on average
    seen = pd.DataFrame({"group": ["G"], "day": [T0], "seen": [float(MIN_SEEN)],
                         "seen_s": [9.0 * 1_000], "covered": [1_000.0]})
    polled = Summary(**{**summed.__dict__, "ringing_seen": seen})
    ring = polled.ringing()
    hidden = int((~exact).sum())
    assert ring.hidden_s == pytest.approx(9.0 * hidden)
    assert ring.unheld_s == pytest.approx(9.0 * hidden / n)
    assert ring.mean_s == pytest.approx((rings[exact].sum() + 9.0 * hidden) / n)
    waited, _ = polled.waited()
    assert waited == pytest.approx(queue_s.sum() + rings[~exact].sum() - 9.0 * hidden
                                   + 50 * 100.0)
    # the patience then is close to the one the true waits to the offer give
    true = fc.patience(queue_s.sum() + 50 * 100.0, 50).mean_s
    assert fc.patience(waited, 50).mean_s == pytest.approx(true, rel=0.01)
    # too few sightings: nothing is taken off
    few = Summary(**{**summed.__dict__, "ringing_seen": seen.assign(seen=MIN_SEEN - 1.0)})
    assert few.waited() == summed.waited() and few.ringing() == summed.ringing()


def test_a_groups_plan_reads_every_groups_sightings() -> None:
    """One ringing for the desk: a group's window keeps the other groups' sightings, and
    only those of its days."""
    rng = np.random.default_rng(8)
    summed = Summary.of(_answered(rng.uniform(3, 15, 500), rng.exponential(30, 500),
                                  np.zeros(500, bool)), 60.0)
    seen = pd.DataFrame({"group": ["H", "H"], "day": [T0, T0 + pd.Timedelta(days=9)],
                         "seen": [float(MIN_SEEN), 500.0], "seen_s": [6_000.0, 1e6],
                         "covered": [600.0, 10.0]})
    mine = Summary(**{**summed.__dict__, "ringing_seen": seen}).window(
        "G", T0, T0 + pd.Timedelta(days=7))
    assert mine.ringing().mean_s == pytest.approx(10.0)
