"""Metrics on hand-built snapshot tables in a real DuckDB file, with answers worked by hand."""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as hs
from tencent_desk.analysis import poll_metrics as m
from tencent_desk.api.client import ClientConfig
from tencent_desk.core.frames import frame
from tencent_desk.core.sql import ident
from tencent_desk.job.rows import SESSION_STATES
from tencent_desk.job.runs import run_row
from tencent_desk.job.seeds import SeedCounts
from tencent_desk.models import poll_views
from tencent_desk.simulator import truth as sim_truth

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WAIT = "+".join(m.WAIT_STATES)

SDKAPPID = 1400000001


def job_tables(con: duckdb.DuckDBPyConnection, ds: str) -> None:
    """The job's own ``runs`` and ``session_states``: the columns its rows have (a
    ``runs_row`` of a run that asked nothing; the Arrow schema of its state rows)."""
    row = run_row(run_id="r", started_at=T0, finished_at=T0, seed="seed.csv",
                  counts=SeedCounts(), tally=Counter(), stats=None, region="local", rejects=0,
                  config=ClientConfig(SDKAPPID, "administrator", ("http://127.0.0.1",)),
                  error="", app="", max_error_share=0.0)  # typed: no column of NULLs
    runs = pd.DataFrame([row])  # noqa: F841 (read by DuckDB below)
    states = SESSION_STATES.empty_table()  # noqa: F841 (read by DuckDB below)
    con.execute(f"CREATE SCHEMA {ds}")
    con.execute(f"CREATE TABLE {ds}.runs AS SELECT * FROM runs WHERE false")
    con.execute(f"CREATE TABLE {ds}.session_states AS FROM states")


def insert(con: duckdb.DuckDBPyConnection, table: str, columns: list[str],
           rows: Sequence[tuple]) -> None:
    """``rows`` into ``table`` in one statement (``executemany`` runs one per row: the
    property test below built its 41 databases in seconds each)."""
    new_rows = pd.DataFrame(rows, columns=columns)  # noqa: F841 (read by DuckDB below)
    listed = ", ".join(columns)
    con.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM new_rows")


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def make_db(
    path: Path,
    runs: dict[float, str],
    rows: Sequence[tuple],
    truth: Sequence[tuple] | None = None,
    dataset: str = "tencent_desk",
) -> duckdb.DuckDBPyConnection:
    """runs: minute -> status. rows: (minute, session_id, state[, agent_id[, user, service]]).
    truth: (session_id, state, agent_id, start minute, end minute or None). Opened read-only."""
    ds = ident(dataset)
    con = duckdb.connect(str(path))
    job_tables(con, ds)
    insert(con, f"{ds}.runs", ["run_id", "started_at", "finished_at", "status", "sdkappid"],
           [(f"r{t:g}", at(t), at(t) + timedelta(seconds=5), s, SDKAPPID)
            for t, s in runs.items()])
    if rows:
        insert(con, f"{ds}.session_states",
               ["run_id", "session_id", "client_user_id", "customer_service_id", "key_type",
                "state", "agent_id", "polled_at", "sdkappid"],
               [(f"r{t:g}", sid, *(extra[1:3] if len(extra) > 1 else (None, None)),
                 "pair" if len(extra) > 1 else "session", state,
                 extra[0] if extra else None, at(t) + timedelta(seconds=2), SDKAPPID)
                for t, sid, state, *extra in rows])
    if truth is not None:
        con.execute(
            "CREATE SCHEMA desk_simulator; CREATE TABLE desk_simulator.truth (session_id VARCHAR,"
            " client_user_id VARCHAR, customer_service_id VARCHAR, state VARCHAR,"
            " agent_id VARCHAR, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)"
        )
    if truth:
        insert(con, "desk_simulator.truth",
               ["session_id", "state", "agent_id", "started_at", "ended_at"],
               [(s, st, a, at(t0), None if t1 is None else at(t1)) for s, st, a, t0, t1 in truth])
    poll_views.create(con, dataset)  # as the job does after each load
    con.close()
    return duckdb.connect(str(path), read_only=True)


# Complete runs every 5 minutes from 0 to 25; the run at 12 failed and says A was answered
# early, which must be ignored.
RUNS = {0: "complete", 5: "complete", 10: "complete", 12: "failed", 15: "complete",
        20: "complete", 25: "complete"}
ROWS = [
    # A: chatbot, queued two polls, answered by a1, gone after 20.
    (0, "A", "chatbot"), (5, "A", "queuing"), (10, "A", "queuing"), (12, "A", "agent", "a1"),
    (15, "A", "agent", "a1"), (20, "A", "agent", "a1"),
    # B: queued, a failed call at 10 in the middle, answered by a2, still with a2 at the end.
    (5, "B", "queuing"), (10, "B", "error"), (15, "B", "queuing"), (20, "B", "agent", "a2"),
    (25, "B", "agent", "a2"),
    # C: first poll failed, queued once, ended: abandoned.
    (5, "C", "error"), (10, "C", "queuing"), (15, "C", "ended"),
    # D: keyed by (user, service account); a failure at 5 names no session; vanishes at 15.
    (0, "D", "queuing", None, "u1", "c1"), (5, "", "error", None, "u1", "c1"),
    (10, "D", "queuing", None, "u1", "c1"), (15, None, "not_in_session", None, "u1", "c1"),
    # E: offered to a2 at 20, accepted at 25.
    (20, "E", "waiting_for_agent", "a2"), (25, "E", "agent", "a2"),
    # J: offered to a1 at 5, ended at 10: the chat with a1 (if any) fell between polls.
    (0, "J", "queuing"), (5, "J", "waiting_for_agent", "a1"), (10, "J", "ended"),
    # F: from the chatbot straight to a1 between two polls, then ended.
    (10, "F", "chatbot"), (15, "F", "agent", "a1"), (20, "F", "ended"),
    # G: with a2 since before the first poll.
    (0, "G", "agent", "a2"), (5, "G", "agent", "a2"),
    # H: still queuing at the last poll.
    (20, "H", "queuing"), (25, "H", "queuing"),
    # I: queued, then back to the chatbot and gone.
    (5, "I", "queuing"), (10, "I", "chatbot"),
]


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return make_db(tmp_path / "desk.duckdb", RUNS, ROWS)


def _none(value: object) -> object:
    return None if pd.isna(value) else value


def islands(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The ``poll_wait_islands`` view the figures build on (the waiting states merged)."""
    return frame(con, "SELECT session_id, state, agent_id, n_polls, first_seen, last_seen, "
                 "before, after, lower_s, upper_s FROM tencent_desk.poll_wait_islands "
                 "ORDER BY session_id, first_seen")


def _island(df: pd.DataFrame, session: str, state: str) -> dict:
    """The one island of ``session`` in ``state``, NULLs as None."""
    rows = df[(df.session_id == session) & (df.state == state)]
    assert len(rows) == 1, rows
    return {k: _none(v) for k, v in rows.iloc[0].items()}


def test_failed_runs_are_not_snapshots(con: duckdb.DuckDBPyConnection) -> None:
    runs = m.complete_runs(con)
    assert list(runs.run_id) == ["r0", "r5", "r10", "r15", "r20", "r25"]
    assert list(runs.gap_s.dropna()) == [300.0] * 5
    assert m.poll_interval_s(con) == 300.0


def test_islands_bound_each_state_by_its_neighbouring_polls(
    con: duckdb.DuckDBPyConnection,
) -> None:
    df = islands(con)
    a_bot = _island(df, "A", "chatbot")
    assert (a_bot["before"], a_bot["after"], a_bot["lower_s"]) == (None, WAIT, 0)
    assert a_bot["upper_s"] is None  # no complete run before the first
    a_q = _island(df, "A", WAIT)
    # seen at 5 and 10; chatbot at 0, agent at 15 (the failed run at 12 does not count)
    assert (a_q["n_polls"], a_q["lower_s"], a_q["upper_s"]) == (2, 300, 900)
    assert (a_q["first_seen"], a_q["last_seen"]) == (at(5), at(10))
    a_agent = _island(df, "A", "agent")
    assert (a_agent["agent_id"], a_agent["before"], a_agent["after"]) == ("a1", WAIT, "absent")
    assert (a_agent["lower_s"], a_agent["upper_s"]) == (300, 900)


def test_blind_polls_merge_islands_and_widen_bounds(con: duckdb.DuckDBPyConnection) -> None:
    df = islands(con)
    b_q = _island(df, "B", WAIT)
    # queuing at 5 and 15 with a failure between: one island, absent at 0, agent at 20
    assert (b_q["n_polls"], b_q["lower_s"], b_q["upper_s"]) == (2, 600, 1200)
    assert (b_q["before"], b_q["after"]) == ("absent", "agent")
    b_agent = _island(df, "B", "agent")
    assert b_agent["after"] is None and b_agent["upper_s"] is None
    c_q = _island(df, "C", WAIT)
    # the failure at 5 says nothing: the wait may have begun right after the run at 0
    assert (c_q["before"], c_q["after"], c_q["lower_s"], c_q["upper_s"]) == (
        "absent", "ended", 0, 900)


def test_pair_keyed_failure_blinds_the_pairs_session(con: duckdb.DuckDBPyConnection) -> None:
    d_q = _island(islands(con), "D", WAIT)
    assert (d_q["n_polls"], d_q["lower_s"], d_q["after"]) == (2, 600, "absent")
    assert d_q["last_seen"] == at(10) and d_q["upper_s"] is None


def test_merged_states_form_one_island(con: duckdb.DuckDBPyConnection) -> None:
    df = islands(con)
    e_w = _island(df, "E", WAIT)
    assert (e_w["lower_s"], e_w["upper_s"], e_w["after"]) == (0, 600, "agent")
    assert set(df.state) <= {WAIT, "chatbot", "agent", "ended"}


def test_queue_per_poll_counts_and_longest_wait(con: duckdb.DuckDBPyConnection) -> None:
    q = m.queue_per_poll(con)
    assert list(q.run_id) == ["r0", "r5", "r10", "r15", "r20", "r25"]
    assert list(q.queuing) == [2, 3, 3, 1, 1, 1]
    assert list(q.waiting_for_agent) == [0, 1, 0, 0, 1, 0]
    assert list(q.waiting) == [2, 4, 3, 1, 2, 1]
    assert list(q.longest_wait_lower_s) == [0, 300, 600, 600, 0, 300]
    # D and J wait since before the first poll: no upper bound on the longest wait then
    assert [_none(v) for v in q.longest_wait_upper_s] == [None, None, None, 900, 300, 600]
    # the counts alone, without following each session's history, are the same counts
    counts = ["run_id", "snapshot_at", "queuing", "waiting_for_agent", "waiting"]
    pd.testing.assert_frame_equal(m.waiting_per_poll(con), q[counts])


def test_queue_per_poll_zero_fills_empty_polls(tmp_path: Path) -> None:
    con = make_db(tmp_path / "z.duckdb", {0: "complete", 5: "complete", 10: "failed"},
                  [(0, "A", "queuing"), (5, "A", "agent", "a1"), (10, "B", "queuing")])
    q = m.queue_per_poll(con)
    assert list(q.waiting) == [1, 0]
    assert list(m.waiting_per_poll(con).waiting) == [1, 0]
    assert list(q.longest_wait_lower_s) == [0, 0]
    assert [_none(v) for v in q.longest_wait_upper_s] == [None, 0]


def test_queue_per_interval_is_time_weighted_with_gaps(tmp_path: Path) -> None:
    # Queue 4, 1, 0, 2, 3 at minutes 0, 3, 12, 20, 50 (each count a new session).
    counts = {0: 4, 3: 1, 12: 0, 20: 2, 50: 3}
    rows = [(t, f"s{t}-{n}", "queuing") for t, c in counts.items() for n in range(c)]
    rows.append((12, "x", "chatbot"))
    con = make_db(tmp_path / "i.duckdb", {t: "complete" for t in counts} | {35: "failed"}, rows)
    q = m.queue_per_interval(con, interval="15min")
    assert list(q.interval_start) == [at(0), at(15), at(30), at(45)]
    assert list(q.n_polls) == [3, 1, 0, 1]
    # gaps 3, 9, 8, 30 min: median 8.5, so a snapshot holds at most 17 min. [0, 15):
    # 4 for 3 min, 1 for 9, 0 for 3 -> 21/15. [15, 30): 0 for 5 min, 2 for 10 -> 20/15.
    # [30, 45) has no complete run: a gap, although the snapshot at 20 reaches 37.
    # [45, 60): the last snapshot, 3, stands alone.
    avg = [_none(v) for v in q.avg_queuing]
    assert avg[0] == pytest.approx(21 / 15) and avg[1] == pytest.approx(20 / 15)
    assert avg[2] is None and avg[3] == pytest.approx(3)
    assert [_none(v) for v in q.peak_queuing] == [4, 2, None, 3]
    assert q.avg_waiting.equals(q.avg_queuing)


def test_longest_wait_per_interval(con: duckdb.DuckDBPyConnection) -> None:
    q = m.queue_per_interval(con, interval="15min")
    assert list(q.n_polls) == [3, 3]
    assert list(q.longest_wait_lower_s) == [600, 600]
    assert _none(q.longest_wait_upper_s[0]) is None and q.longest_wait_upper_s[1] == 900
    assert list(q.peak_waiting) == [4, 2]


def test_waits_outcomes_and_unseen_waits(con: duckdb.DuckDBPyConnection) -> None:
    w = m.waits(con).set_index("session_id")
    got = {
        s: (r.n_polls, r.lower_s, _none(r.upper_s), r.outcome, r.first_answer)
        for s, r in w.iterrows()
    }
    assert got == {
        "A": (2, 300, 900, "answered", True),
        "B": (2, 600, 1200, "answered", True),
        "C": (1, 0, 900, "ended", False),
        "D": (2, 600, None, "ended", False),
        "E": (1, 0, 600, "answered", True),
        # F reached a1 between polls: a wait no poll saw, between 0 and 5 minutes
        "F": (0, 0, 300, "answered", True),
        # G was answered before the first poll: nothing bounds its wait
        "G": (0, 0, None, "answered", True),
        "H": (2, 300, None, "ongoing", False),
        "I": (1, 0, 600, "other", False),
        "J": (2, 300, None, "ended", False),
    }
    assert w.loc["A", "answered_at"] == at(15) and w.loc["E", "answered_at"] == at(25)
    assert pd.isna(w.loc["F", "first_seen"]) and w.loc["F", "answered_at"] == at(15)


def test_wait_stats_bound_mean_and_quantiles() -> None:
    waits = pd.DataFrame({"lower_s": [0.0, 300.0, 600.0], "upper_s": [300.0, 900.0, None]})
    s = m.wait_stats(waits)
    assert list(s.index) == ["mean", "median", "p90"]
    assert s.loc["mean", "lower_s"] == 300 and s.loc["mean", "upper_s"] == math.inf
    assert (s.loc["median", "lower_s"], s.loc["median", "upper_s"]) == (300, 900)
    assert s.loc["p90", "lower_s"] == pytest.approx(540) and s.loc["p90", "upper_s"] == math.inf
    assert list(s.n) == [3, 3, 3]
    assert m.wait_stats(waits.iloc[:0])["n"].eq(0).all()


def test_wait_outcomes(con: duckdb.DuckDBPyConnection) -> None:
    a = m.wait_outcomes(con).set_index("session_id")
    assert a.outcome.to_dict() == {
        "A": "answered", "B": "answered", "C": "abandoned", "D": "abandoned",
        "E": "answered", "H": "ongoing", "I": "left_queue", "J": "offered",
    }
    assert a.loc["C", "ended_by"] == "ended" and a.loc["D", "ended_by"] == "absent"
    assert (a.loc["C", "lower_s"], a.loc["C", "upper_s"]) == (0, 900)
    assert a.loc["D", "last_waiting"] == at(10) and pd.isna(a.loc["D", "upper_s"])
    assert a.loc["I", "last_state"] == "chatbot"
    assert (a.loc["J", "last_state"], a.loc["J", "ended_by"]) == ("waiting_for_agent", "ended")


def test_agent_concurrency_per_poll_is_zero_filled(con: duckdb.DuckDBPyConnection) -> None:
    c = m.agent_concurrency_per_poll(con)
    chats = c.pivot(index="run_id", columns="agent_id", values="chats")
    assert chats.loc[["r0", "r5", "r10", "r15", "r20", "r25"]].to_dict("list") == {
        "a1": [0, 0, 0, 2, 1, 0], "a2": [1, 1, 0, 0, 1, 2],
    }
    pending = c.set_index(["run_id", "agent_id"]).pending
    assert pending["r5", "a1"] == 1 and pending["r20", "a2"] == 1 and pending.sum() == 2


def test_agent_occupancy_without_roster(con: duckdb.DuckDBPyConnection) -> None:
    o = m.agent_occupancy(con, interval="1h", chats_per_agent=3).set_index("agent_id")
    assert list(o.index) == ["a1", "a2"] and not o.on_roster.any()
    assert list(o.n_polls) == [6, 6]
    assert o.loc["a1", "mean_chats"] == pytest.approx(0.5)
    assert o.loc["a1", "busy_share"] == pytest.approx(2 / 6)
    assert o.loc["a1", "occupancy"] == pytest.approx(0.5 / 3)
    assert o.loc["a2", "max_chats"] == 2 and o.loc["a2", "occupancy"] == pytest.approx(5 / 18)
    # 5-minute intervals: only those where a1 was seen (offered a chat or chatting) appear
    q = m.agent_occupancy(con, interval="5min")
    assert list(q[q.agent_id == "a1"].interval_start) == [at(5), at(15), at(20)]


def test_agent_occupancy_with_roster(con: duckdb.DuckDBPyConnection) -> None:
    roster = pd.DataFrame({
        "agent_id": ["a1", "a3"],
        "capacity": [2, 3],
        "shift_start": [at(0), at(0)],
        "shift_end": [at(15), at(30)],
    })
    o = m.agent_occupancy(con, interval="1h", chats_per_agent=3, roster=roster)
    o = o.set_index("agent_id")
    # a1: on shift at 0, 5, 10, and working past it at 15 and 20 (idle at 25 off shift)
    assert o.loc["a1", "n_polls"] == 5 and o.loc["a1", "capacity"] == 2
    assert o.loc["a1", "mean_chats"] == pytest.approx(0.6)
    assert o.loc["a1", "busy_share"] == pytest.approx(0.4)
    assert o.loc["a1", "occupancy"] == pytest.approx((1 + 0.5) / 5)
    # a3 never chatted: only the roster shows it idle
    assert o.loc["a3", "n_polls"] == 6 and o.loc["a3", "occupancy"] == 0
    # a2 is not on the roster: counted as without one
    assert not o.loc["a2", "on_roster"] and o.loc["a2", "n_polls"] == 6
    assert o.on_roster.to_dict() == {"a1": True, "a2": False, "a3": True}


def test_roster_as_a_table(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    make_db(path, {0: "complete", 5: "complete"}, [(0, "A", "agent", "a1")]).close()
    with duckdb.connect(str(path)) as rw:
        rw.execute("CREATE TABLE tencent_desk.roster AS SELECT 'a1' AS agent_id, "
                   "NULL::DOUBLE AS capacity, ?::TIMESTAMPTZ AS shift_start, "
                   "?::TIMESTAMPTZ AS shift_end", [at(0), at(60)])
    con = duckdb.connect(str(path), read_only=True)
    o = m.agent_occupancy(con, chats_per_agent=4, roster="tencent_desk.roster")
    assert (o.n_polls[0], o.capacity[0], o.occupancy[0]) == (2, 4, 0.125)


def test_demand_per_interval(con: duckdb.DuckDBPyConnection) -> None:
    d = m.demand_per_interval(con, interval="1h")
    assert len(d) == 1
    r = d.iloc[0]
    assert (r.interval_s, r.n_polls, r.arrivals, r.answered) == (3600, 6, 10, 5)
    # bounded agent islands: A (300..900) and F (0..600)
    assert r.aht_s == pytest.approx(450) and r.aht_lower_s == pytest.approx(150)
    assert r.aht_upper_s == pytest.approx(750)
    assert r.load_erlangs == pytest.approx(8 / 6)
    assert m.load_per_interval(con, interval="1h").load_erlangs.tolist() == [r.load_erlangs]


def _two_evenings(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """Polls every 5 minutes on two evenings, with a night between them."""
    night = 24 * 60
    runs = {t: "complete" for t in (0, 5, 10, night, night + 5, night + 10)}
    runs[night + 15] = "interrupted"
    return make_db(tmp_path / "nights.duckdb", runs, [
        # A: with an agent at the evening's last poll; B: first seen with one next morning
        (5, "A", "queuing"), (10, "A", "agent", "a1"),
        (night, "B", "agent", "a1"), (night + 5, "B", "agent", "a1"),
        (night + 10, "B", "ended"),
    ])


def test_no_bound_across_a_long_gap(tmp_path: Path) -> None:
    """A night between two evenings bounds nothing: a chat at the evening's last poll may
    have lasted all night, and one first seen in the morning may have begun at any time."""
    con = _two_evenings(tmp_path)
    found = islands(con)
    a, b = _island(found, "A", "agent"), _island(found, "B", "agent")
    # the neighbours' states are still known (A is gone by morning), not their times
    assert (a["after"], a["upper_s"]) == ("absent", None)
    assert (b["before"], b["upper_s"], b["after"]) == ("absent", None, "ended")
    w = m.waits(con).set_index("session_id")
    # B's unseen wait is unbounded, so speed of answer leaves it out instead of a 24 h wait
    assert w.loc["A", "upper_s"] == 600 and pd.isna(w.loc["B", "upper_s"])
    d = m.demand_per_interval(con, interval="1h")
    assert d.aht_s.isna().all()  # neither chat is bounded: no AHT rather than a night-long one


def test_gaps_are_na_never_zero(tmp_path: Path) -> None:
    con = _two_evenings(tmp_path)
    d = m.demand_per_interval(con, interval="1h")
    gaps, polled = d[d.n_polls == 0], d[d.n_polls > 0]
    assert len(gaps) == 23 and len(polled) == 2
    for column in ("arrivals", "answered", "aht_s", "aht_lower_s", "aht_upper_s",
                   "load_erlangs"):
        assert gaps[column].isna().all(), column
    # the load alone, without following each session's history, is the same, gaps included
    load = ["interval_start", "n_polls", "load_erlangs"]
    pd.testing.assert_frame_equal(m.load_per_interval(con, interval="1h"), d[load])
    assert list(polled.arrivals) == [1, 1] and polled.arrivals.dtype == "Int64"
    q = m.queue_per_interval(con, interval="1h")
    assert q[q.n_polls == 0].drop(columns=["interval_start", "n_polls"]).isna().all().all()
    # the notebooks shade gaps from the cheaper load_per_interval: the same hours
    pd.testing.assert_frame_equal(q[["interval_start", "n_polls"]],
                                  m.load_per_interval(con, interval="1h")[load[:2]])
    assert list(q[q.n_polls > 0].peak_waiting) == [1, 0]
    # the interrupted run is not a snapshot, and is listed as what it is
    assert list(m.incomplete_runs(con).status) == ["interrupted"]
    assert len(m.queue_per_poll(con)) == 6


def test_a_dataset_of_another_name(tmp_path: Path) -> None:
    con = make_db(tmp_path / "n.duckdb", {0: "complete"}, [(0, "A", "queuing")], dataset="desk 2")
    assert list(m.queue_per_poll(con, "desk 2").waiting) == [1]


# --- Truth --------------------------------------------------------------------------------

TRUTH = [
    ("s1", "chatbot", None, 0, 2), ("s1", "queuing", None, 2, 7),
    ("s1", "waiting_for_agent", "a1", 7, 8), ("s1", "agent", "a1", 8, 20),
    ("s2", "queuing", None, 3, 9),
    ("s3", "agent", "a1", 4, 10),
    ("s4", "queuing", None, 10, None),
    ("s5", "queuing", None, 11, 12), ("s5", "waiting_for_agent", "a1", 12, 13),
]


@pytest.fixture
def truth_con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return make_db(tmp_path / "t.duckdb", {0: "complete"}, [], truth=TRUTH)


def test_has_truth(con: duckdb.DuckDBPyConnection, truth_con: duckdb.DuckDBPyConnection) -> None:
    assert sim_truth.has_truth(truth_con) and not sim_truth.has_truth(con)


def test_truth_queue_and_concurrency_at(truth_con: duckdb.DuckDBPyConnection) -> None:
    q = sim_truth.truth_queue_at(truth_con, [at(5), at(7.5), at(9), at(12)])
    assert list(q.queuing) == [2, 1, 0, 1]
    assert list(q.waiting_for_agent) == [0, 1, 0, 1]
    assert list(q.waiting) == [2, 2, 0, 2]
    c = sim_truth.truth_agent_concurrency_at(truth_con, pd.Series([at(5), at(9)]))
    assert list(c.chats) == [1, 2] and set(c.agent_id) == {"a1"}


def test_truth_waits_and_abandonment(truth_con: duckdb.DuckDBPyConnection) -> None:
    w = sim_truth.truth_waits(truth_con).set_index("session_id")
    assert w.loc["s1", "wait_s"] == 360 and w.loc["s1", "outcome"] == "answered"
    assert w.loc["s1", "first_answer"] and w.loc["s1", "answered_at"] == at(8)
    assert (w.loc["s2", "wait_s"], w.loc["s2", "outcome"]) == (360, "ended")
    assert (w.loc["s3", "wait_s"], w.loc["s3", "outcome"]) == (0, "answered")
    assert w.loc["s4", "outcome"] == "ongoing" and pd.isna(w.loc["s4", "wait_s"])
    assert (w.loc["s5", "wait_s"], w.loc["s5", "outcome"]) == (120, "ended")
    assert m.wait_stats(w[w.first_answer]).loc["mean", "upper_s"] == 180
    a = sim_truth.truth_abandonment(truth_con).set_index("session_id")
    assert a.outcome.to_dict() == {
        "s1": "answered", "s2": "abandoned", "s4": "ongoing", "s5": "offered"}


def test_truth_demand_per_interval(truth_con: duckdb.DuckDBPyConnection) -> None:
    d = sim_truth.truth_demand_per_interval(truth_con, "15min")
    assert list(d.interval_start) == [at(0), at(15)]
    assert list(d.arrivals) == [5, 0] and list(d.answered) == [2, 0]
    assert d.aht_s[0] == 540 and pd.isna(d.aht_s[1])  # s1 12 min, s3 6 min
    # with an agent: s1 8-15 and s3 4-10 in the first quarter hour, s1 15-20 in the second
    assert list(d.load_erlangs) == pytest.approx([13 / 15, 5 / 15])


# A session: start (s), chatbot, queue and agent durations (s, 0 = skipped), answered or not.
_session = hs.tuples(
    hs.integers(0, 7000), hs.integers(0, 400), hs.integers(0, 1200), hs.integers(0, 1500),
    hs.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(
    sessions=hs.lists(_session, min_size=1, max_size=12),
    failed=hs.sets(hs.integers(0, 24), max_size=4),
    blind=hs.sets(hs.tuples(hs.integers(0, 11), hs.integers(0, 24)), max_size=6),
)
# Seen queuing, then three failed runs (a long gap), then with an agent: one wait, unbounded.
@example(sessions=[(60, 0, 400, 1500, True)], failed={2, 3, 4}, blind=set())
def test_estimates_bound_the_truth(
    sessions: list[tuple[int, int, int, int, bool]],
    failed: set[int],
    blind: set[tuple[int, int]],
) -> None:
    """Snapshots taken from a random truth: every estimated wait contains the true one."""
    truth, rows = [], []
    for n, (start, bot, queue, talk, answered) in enumerate(sessions):
        t = start
        for state, length in (("chatbot", bot), ("queuing", queue),
                              ("agent", talk if answered else 0)):
            if length:
                truth.append((f"s{n}", state, "a1" if state == "agent" else None, t / 60,
                              (t + length) / 60))
                t += length
    polls = {k * 5: "failed" if k in failed else "complete" for k in range(25)}
    for k, minute in enumerate(polls):
        for n in range(len(sessions)):
            live = [x for x in truth if x[0] == f"s{n}" and x[3] <= minute < x[4]]
            if (n, k) in blind and live:
                rows.append((minute, f"s{n}", "error"))
            elif live:
                rows.append((minute, f"s{n}", live[0][1], live[0][2]))
            elif polls[k * 5] == "failed":
                rows.append((minute, f"s{n}", "agent", "a1"))  # nonsense a failed run must not show
    with tempfile.TemporaryDirectory() as tmp:
        con = make_db(Path(tmp) / "p.duckdb", polls, rows, truth=truth)
        est = m.waits(con).set_index("session_id")
        true = sim_truth.truth_waits(con).set_index("session_id")
        for session, wait in true.wait_s.dropna().items():
            if session in est.index:
                lower, upper = est.loc[session, "lower_s"], est.loc[session, "upper_s"]
                assert lower <= wait + 1e-6
                assert pd.isna(upper) or wait <= upper + 1e-6
        # Polled at the snapshot times, the queue counts are the truth minus blinded sessions.
        q = m.queue_per_poll(con)
        tq = sim_truth.truth_queue_at(con, q.snapshot_at)
        assert np.all(q.waiting.to_numpy() <= tq.waiting.to_numpy())
        if not blind:
            assert q.waiting.tolist() == tq.waiting.tolist()
        con.close()
