"""The notebooks' figures from ``session_timeline`` on a few sessions whose answers are
known by hand: exact times from callbacks, and bounds from polls."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
from tencent_desk.analysis import timeline_metrics as tm

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

DS = "tencent_desk"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TIMES = ("began", "queued", "offered", "answered", "ended")


def _t(minutes: float | None) -> pd.Timestamp | None:
    return None if minutes is None else pd.Timestamp(T0) + pd.Timedelta(minutes=minutes)


def session(sid: str, group: str, agent: str | None, began: float, queued: float | None,
            answered: float | None, ended: float | None, source: str = "event",
            slack: float = 0.0) -> dict[str, object]:
    """A timeline row: every time exact, or (``source`` poll) ``slack`` minutes each side."""
    row: dict[str, object] = {"sdkappid": 1, "session_id": sid, "agent_group_id": group,
                              "agent_group_name": group, "agent_id": agent, "run_id": "r1"}
    for name, at in zip(TIMES, (began, queued, answered if answered is not None else None,
                                answered, ended), strict=True):
        row[f"{name}_at"] = _t(at)
        row[f"{name}_source"] = None if at is None else source
        row[f"{name}_lo"] = _t(None if at is None else at - slack)
        row[f"{name}_hi"] = _t(None if at is None else at + slack)
    return row


def timeline(rows: list[dict[str, object]]) -> duckdb.DuckDBPyConnection:
    """A connection holding ``rows`` as the dataset's ``session_timeline``."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE SCHEMA {DS}")
    table = pd.DataFrame(rows)
    for name in TIMES:
        for part in ("at", "lo", "hi"):
            table[f"{name}_{part}"] = pd.to_datetime(table[f"{name}_{part}"], utc=True)
    con.register("rows", table)
    con.execute(f"CREATE TABLE {DS}.session_timeline AS SELECT * FROM rows")
    return con


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = [
        # answered after 1 min, held 10 min by a1 (group A)
        session("s1", "A", "a1", 0, 1, 2, 12),
        # answered after 3 min, held 20 min by a2 (group B)
        session("s2", "B", "a2", 5, 6, 9, 29),
        # waited 4 min, gave up
        session("s3", "A", None, 10, 11, None, 15),
        # polls only: queued ~20, answered ~22, ended ~32, each +-1 min; a1
        session("s4", "A", "a1", 19, 20, 22, 32, source="poll", slack=1),
        # the chatbot only, an hour later
        session("s5", "A", None, 70, None, None, 75),
    ]
    return tm.sessions(timeline(rows), T0, T0 + pd.Timedelta(hours=2), DS)


def test_longest_wait_per_interval(frame: pd.DataFrame) -> None:
    longest = tm.longest_wait(frame, "15min").set_index("interval_start")
    first = longest.loc[pd.Timestamp(T0)]
    # s1 (1 min), s2 (3 min), s3 (4 min, gave up): the abandon waited longest
    assert first.value == 240 and first.lo == 240 and first.hi == 240 and first.n == 3
    assert first.exact_share == 1
    second = longest.loc[pd.Timestamp(T0) + pd.Timedelta(minutes=15)]
    # s4: 2 min at best, surely >= 0 (answered_lo - queued_hi), at most 4 min
    assert (second.value, second.lo, second.hi, second.exact_share) == (120, 0, 240, 0)
    by = tm.longest_wait(frame, "1h", by="agent_group_name")
    assert dict(zip(by.group, by.value, strict=True)) == {"A": 240, "B": 180}


def test_demand_feeds_erlang(frame: pd.DataFrame) -> None:
    demand = tm.demand(frame, "1h")
    assert demand.interval_start.tolist() == [pd.Timestamp(T0)]  # s5 never asked for a human
    row = demand.iloc[0]
    assert (row.arrivals, row.answered, row.interval_s) == (4, 3, 3600)
    assert row.aht_s == pytest.approx((600 + 1200 + 600) / 3)
    assert row.aht_lo_s == pytest.approx((600 + 1200 + 480) / 3)  # s4 at least 8 min
    assert row.aht_hi_s == pytest.approx((600 + 1200 + 720) / 3)  # and at most 12
    assert row.exact_share == pytest.approx(2 / 3)
    empty = tm.demand(frame.iloc[:0], "1h")
    assert empty.empty and str(empty.interval_start.dtype) == "datetime64[ns, UTC]"


def test_key_figures(frame: pd.DataFrame) -> None:
    figures = tm.key_figures(frame, target_s=120)
    assert figures.loc["sessions", "value"] == 5
    assert figures.loc["arrivals (asked for a human)", "value"] == 4
    assert figures.loc["speed of answer, mean (s)", "value"] == pytest.approx((60 + 180 + 120) / 3)
    # within 120 s: s1 (1 min) and s4 (2 min) of 3 answered; s3 gave up after 4 min > 120 s
    level = figures.loc["service level (120 s)"]
    assert level["value"] == pytest.approx(2 / (3 + 1))
    # lo: s4's wait may be 4 min (only s1 surely within); hi: s4's may be 0
    assert (level["lo"], level["hi"]) == (pytest.approx(1 / 4), pytest.approx(2 / 4))
    assert figures.loc["abandonment", "value"] == pytest.approx(1 / 4)
    assert figures.loc["handling time, mean (s)", "exact_share"] == pytest.approx(2 / 3)
    nothing = tm.key_figures(frame.iloc[:0])
    assert nothing.loc["sessions", "value"] == 0
    assert np.isnan(nothing.loc["speed of answer, mean (s)", "value"])


def test_concurrency_and_occupancy_per_group(frame: pd.DataFrame) -> None:
    at = [pd.Timestamp(T0) + pd.Timedelta(minutes=m) for m in (10, 25)]
    per_group = tm.agent_concurrency(frame, at, by="agent_group_name")
    assert per_group.values.tolist() == [[at[0], "A", 1], [at[0], "B", 1],
                                         [at[1], "A", 1], [at[1], "B", 1]]
    hourly = tm.occupancy_per_interval(frame, T0, T0 + pd.Timedelta(hours=2), "1h", capacity=2)
    assert hourly.interval_start.nunique() == 1  # nobody held a chat in the second hour
    a1 = hourly.set_index("agent_id").loc["a1"]
    assert a1.held_s == 600 + 600 and a1.occupancy == pytest.approx(1200 / (2 * 3600))


def test_counting_spans_at_instants_equals_testing_each_span() -> None:
    """queue_length and agent_concurrency count spans by sorting: the same counts as
    testing every span at every instant, with empty and open spans and unsorted instants."""
    rng = np.random.default_rng(7)
    base = np.datetime64("2026-01-05T00:00", "ns")
    start = base + rng.integers(0, 3600, 400).astype("timedelta64[s]")
    end = start + rng.integers(-60, 900, 400).astype("timedelta64[s]")  # some empty or reversed
    end[:20] = np.datetime64(pd.Timestamp.max.as_unit("ns").to_datetime64())  # still open
    at = base + rng.permutation(np.arange(0, 4000, 37)).astype("timedelta64[s]")
    owner = rng.integers(0, 5, 400)
    brute = np.array([[int(((start <= t) & (t < end) & (owner == o)).sum()) for t in at]
                      for o in range(5)])
    assert (tm._held(start, end, at, owner, 5) == brute).all()
    assert (tm._held(start, end, at) == brute.sum(axis=0)).all()


def test_all_exact_is_every_time_the_figures_rest_on(frame: pd.DataFrame) -> None:
    """s4's times come from polls: the window is not exact; without it, it is. An offer
    from a poll alone (the plan's time, no figure's) does not count; nothing is not exact."""
    assert not tm.all_exact(frame)
    exact = frame[frame.session_id != "s4"].copy()
    assert tm.all_exact(exact)
    exact.loc[exact.session_id == "s1", "offered_source"] = "poll"
    assert tm.all_exact(exact)
    exact.loc[exact.session_id == "s2", "ended_source"] = "poll"
    assert not tm.all_exact(exact)
    assert not tm.all_exact(frame.iloc[:0])


def test_rostered_busy_share_and_occupancy_from_each_chats_times(frame: pd.DataFrame) -> None:
    """a1 held s1 (minutes 2-12) and s4 (22-32); on shift 0-60 with 3 slots: busy 20 of 60
    minutes, 20 chat-minutes of 180. A shift 10-25 cuts both chats (12-10 and 25-22). a2's
    s2 (9-29) overlaps an open chat of its own (20-, held to the shift's end at 40): busy
    9-40, 31 minutes, and 20 + 20 chat-minutes. An agent on shift without a chat: zeros."""
    chats = frame[frame.answered_at.notna()].copy()
    open_chat = chats[chats.session_id == "s2"].assign(session_id="s6", answered_at=_t(20),
                                                       ended_at=pd.NaT)
    chats = pd.concat([chats, open_chat], ignore_index=True)
    roster = pd.DataFrame({"agent_id": ["a1", "a1x", "a2", "idle"],
                           "capacity": [3, 3, 2, 3],
                           "shift_start": [_t(0), _t(10), _t(0), _t(0)],
                           "shift_end": [_t(60), _t(25), _t(40), _t(60)]})
    roster.loc[1, "agent_id"] = "a1"  # the same agent on a second, shorter shift
    roster["shift_end"] = roster.shift_end.astype(object)
    roster.loc[3, "shift_end"] = _t(60).tz_localize(None)  # a CSV's time: UTC, unsaid
    got = tm.rostered(chats, roster)
    assert got.busy_share.tolist() == pytest.approx([20 / 60, 5 / 15, 31 / 40, 0])
    assert got.occupancy.tolist() == pytest.approx([20 / 180, 5 / 45, 40 / 80, 0])
    assert got.shift_h.tolist() == pytest.approx([1, 0.25, 40 / 60, 1])


def _two_groups() -> pd.DataFrame:
    """One hour, 09:00-10:00: Billing's b1 holds up to 2 chats, Sales' s1 up to 3."""
    chats = [("Billing", "b1", 0, 60), ("Billing", "b1", 5, 35), ("Billing", "b1", 40, 60),
             ("Sales", "s1", 0, 60), ("Sales", "s1", 10, 60), ("Sales", "s1", 20, 50),
             ("Sales", "s1", 50, 60)]
    return pd.DataFrame({"agent_group_name": [c[0] for c in chats],
                         "agent_id": [c[1] for c in chats],
                         "answered_at": [_t(c[2]) for c in chats],
                         "ended_at": [_t(c[3]) for c in chats]})


def test_occupancy_over_each_groups_chats_per_agent() -> None:
    """Groups of 2 and 3 chats per agent: the old figure (3 for all) puts Billing's at 61%
    where its 2 slots give 92%; each group's read from the data gives the hand figures,
    per group, per agent and for the desk (the report's path too); a setting wins."""
    from tencent_desk.report import figures
    from tencent_desk.report.targets import Targets

    chats = _two_groups()
    until = T0 + pd.Timedelta(hours=1)
    per_group = tm.chats_per_agent(chats)
    assert per_group.to_dict() == {"Billing": 2.0, "Sales": 3.0}
    per_agent = tm.agent_chats_per_agent(chats, per_group)
    assert per_agent.to_dict() == {"b1": 2.0, "s1": 3.0}
    # by hand: Billing 60 + 30 + 20 min held over 1 agent x 2 slots x 60 min
    billing, sales = 110 / 120, 150 / 180
    by = "agent_group_name"
    old = tm.occupancy_over_intervals(
        tm.occupancy_per_interval(chats, T0, until, "1h", 3, by=by), "1h", 3, by)
    assert old.set_index(by)["occupancy"]["Billing"] == pytest.approx(110 / 180)
    hours = tm.occupancy_per_interval(chats, T0, until, "1h", per_group, by=by)
    assert hours.set_index(by)["occupancy"].to_dict() == pytest.approx(
        {"Billing": billing, "Sales": sales})
    new = tm.occupancy_over_intervals(hours, "1h", per_group, by).set_index(by)["occupancy"]
    assert new.to_dict() == pytest.approx({"Billing": billing, "Sales": sales})
    # the report: per agent and the desk's, from per-agent hours as the interval tables hold
    agent_hours = tm.occupancy_per_interval(chats, T0, until, "1h")
    got_group, got_agent = figures.capacity(chats.assign(satisfaction=None), Targets())
    pd.testing.assert_series_equal(got_group, per_group)
    agents = figures.agents(agent_hours, chats.assign(satisfaction=None), T0, until,
                            got_agent).set_index("agent_id")["occupancy"]
    assert agents.to_dict() == pytest.approx({"b1": billing, "s1": sales})
    assert figures._desk_occupancy(agent_hours, got_agent) == pytest.approx(260 / 300)
    assert figures._desk_occupancy(agent_hours, 3.0) == pytest.approx(260 / 360)  # old
    # a setting overrides the data, for every group
    set_group, set_agent = figures.capacity(chats, Targets(chats_per_agent=4))
    assert set_group.to_dict() == {"Billing": 4.0, "Sales": 4.0}
    assert figures._desk_occupancy(agent_hours, set_agent) == pytest.approx(260 / 480)


def test_chats_per_agent_is_the_planners_rule() -> None:
    """The 99th percentile (lower) of the chats held just after each answer, itself and
    ties included, per group and agent: one stray overlap does not add a slot, a chat not
    ended holds on, and no chat gives no value."""
    chats = _two_groups()
    many = pd.concat([chats[chats.agent_group_name == "Billing"].assign(
        answered_at=lambda f, k=k: f.answered_at + pd.Timedelta(hours=k),
        ended_at=lambda f, k=k: f.ended_at + pd.Timedelta(hours=k)) for k in range(60)])
    stray = pd.DataFrame({"agent_group_name": ["Billing"], "agent_id": ["b1"],
                          "answered_at": [_t(6)], "ended_at": [_t(7)]})
    assert tm.chats_per_agent(pd.concat([many, stray])).to_dict() == {"Billing": 2.0}
    assert tm.chats_per_agent(pd.concat([many, stray]), quantile=1.0).to_dict() == {
        "Billing": 3.0}
    tie = pd.DataFrame({"agent_group_name": ["A"] * 2, "agent_id": ["a"] * 2,
                        "answered_at": [_t(0)] * 2, "ended_at": [None, _t(5)]})
    assert tm.chats_per_agent(tie).to_dict() == {"A": 2.0}
    assert tm.chats_per_agent(tie.iloc[:0]).empty


def test_service_level_counts_those_who_gave_up_after_the_target() -> None:
    """The reference's service level, answered within T ÷ (answered + abandoned after T), on
    sessions where answered within T ÷ answered differs: the same from the sessions and from
    the interval tables, with the same bounds."""
    from tencent_desk.analysis import interval_metrics as im
    from tencent_desk.models import intervals

    rows = [
        session("a1", "A", "x", 0, 0, 0.5, 5),        # answered after 30 s
        session("a2", "A", "x", 1, 1, 1.75, 6),       # 45 s
        session("a3", "A", "x", 2, 2, 3.5, 7),        # 90 s: not within 60 s
        session("b1", "A", None, 3, 3, None, 6),      # left after 180 s: abandoned after T
        session("b2", "A", None, 4, 4, None, 4.5),    # left after 30 s: not counted
        # polls only (+-30 s): left after 60 s at best, 0 to 120 s by the bounds
        session("p1", "A", None, 5, 5, None, 6, source="poll", slack=0.5),
    ]
    answered, within = 3, 2
    old = within / answered
    value = within / (answered + 1)             # b1
    lo, hi = within / (answered + 2), value     # p1 may have left after T, surely not
    con = timeline(rows)
    since, until = T0, T0 + pd.Timedelta(hours=1)
    df = tm.sessions(con, since, until, DS)
    level = tm.measured_service_level(df, 60).iloc[0]
    assert (level["value"], level["lo"], level["hi"]) == (
        pytest.approx(value), pytest.approx(lo), pytest.approx(hi))
    assert level["value"] != pytest.approx(old)
    assert (level["answered"], level["within"], level["abandoned"], level["abandoned_after"],
            level["n"]) == (3, 2, 3, 1, 6)

    # the interval tables of these sessions, made as the upkeep makes them
    con.execute(f"CREATE TEMP TABLE none AS SELECT * FROM {DS}.session_timeline WHERE false")
    intervals.dirty(con, "none", f"{DS}.session_timeline")
    intervals.compute(con, f"{DS}.session_timeline", "r1")
    for table, made in ((intervals.QUEUE, "new_queue"), (intervals.SKETCH, "new_sketch")):
        con.execute(f"CREATE TABLE {DS}.{table} AS SELECT * FROM {made}")
    got = im.figures(con, since, until, 60, dataset=DS).iloc[0]
    assert (got["service_level"], got["service_level_lo"], got["service_level_hi"]) == (
        pytest.approx(value), pytest.approx(lo), pytest.approx(hi))
    per = im.per_interval(con, since, until, "1h", dataset=DS, target_s=60)
    assert per["service_level"].tolist() == [pytest.approx(value)]
    touching = tm.event_figures(tm.sessions_touching(con, since, until, DS), since, until, 60)
    assert touching.loc["all", "service_level"] == pytest.approx(value)
