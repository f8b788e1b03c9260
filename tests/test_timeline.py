"""``session_timeline`` against the simulator's truth, and its upkeep run by run."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.core.clock import VirtualClock
from tencent_desk.intake import events
from tencent_desk.job import event_load, record_rows
from tencent_desk.models import timeline
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    callbacks,
    serve_in_thread,
)

from .conftest import ADMIN, SDKAPPID, SECRET_KEY, Sim
from .polled_day import poll_day
from .support.fixtures import built_once
from .support.run_by_run import load_run_by_run

DS = "tencent_desk"
START_H, END_H = 9.5, 11.5


def truth(pop: Population) -> pd.DataFrame:
    """Each session's true times (epoch seconds; NaN for what never happened)."""
    rows = []
    for key in pop.session_keys():
        seg = {s.state: s for s in pop.segments(key.session_id)}
        first = pop.segments(key.session_id)[0].start
        waited = [seg[s].start for s in ("queuing", "waiting_for_agent", "agent") if s in seg]
        offered = [seg[s].start for s in ("waiting_for_agent", "agent") if s in seg]
        rows.append({"session_id": key.session_id, "began": first,
                     "queued": waited[0] if waited else None,
                     "offered": offered[0] if offered else None,
                     "answered": seg["agent"].start if "agent" in seg else None,
                     "ended": pop.ended_at(key.session_id)})
    return pd.DataFrame(rows).set_index("session_id")


@pytest.fixture(scope="session")
def polled(tmp_path_factory) -> tuple[Population, Path]:
    """A morning polled every minute, in the job's layout (polled_at in model time, as the
    job stamps it with the simulator's clock). Built once per run (``built_once``) for this
    module's tests and the intervals': read only, a test keeping a timeline works on a copy
    (:func:`own`)."""
    pop = Population(PopulationConfig(seed=5, sessions_per_day=3000, agents=7))

    def build(folder: Path) -> None:
        app = SimulatorApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY),
                           model_clock=VirtualClock(pop.config.day_start))
        with serve_in_thread(app) as url:
            poll_day(Sim(app, url), folder / "desk.duckdb", START_H, END_H, 60)
        with duckdb.connect(str(folder / "desk.duckdb")) as con:
            con.execute(f"UPDATE {DS}.session_states s SET polled_at = r.started_at "
                        f"FROM {DS}.runs r WHERE s.run_id = r.run_id")
            con.execute(f"ALTER TABLE {DS}.runs ADD COLUMN _dlt_load_id VARCHAR")
            con.execute(f"UPDATE {DS}.runs SET _dlt_load_id = run_id")

    return pop, built_once(tmp_path_factory, "polled-morning", build) / "desk.duckdb"


def own(db: Path, folder: Path) -> Path:
    """A copy of the polled morning in ``folder``, for a test to write in."""
    return Path(shutil.copy(db, folder / "own.duckdb"))


def frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {DS}.{timeline.TABLE}").df().set_index("session_id")


def test_polls_alone_bound_every_time(polled, tmp_path):
    pop, db = polled
    with duckdb.connect(str(own(db, tmp_path))) as con:
        assert timeline.upkeep(con, DS) > 100
        got = frame(con)
    true = truth(pop).reindex(got.index)
    checked = 0
    for name in timeline.TIMES:
        seen = got[got[f"{name}_source"] == "poll"]
        t = true.loc[seen.index, name]
        lo = seen[f"{name}_lo"].map(lambda x: x.timestamp() if pd.notna(x) else -1e18)
        hi = seen[f"{name}_hi"].map(lambda x: x.timestamp())
        assert t.notna().all(), f"{name} seen by a poll but it never happened"
        inside = (lo <= t + 1e-6) & (t <= hi + 1e-6)
        assert inside.all(), seen[~inside][[f"{name}_lo", f"{name}_hi"]].join(t)
        # a poll every minute: bounds at most a poll interval apart once the session is known
        width = (hi - lo)[lo > 0]
        assert (width <= 60 + 1e-6).all()
        checked += len(seen)
    assert checked > 500


def test_upkeep_run_by_run_equals_one_upkeep(polled, tmp_path):
    """Upkeep after every run gives the same timeline as one upkeep over everything, and a
    run with nothing new rewrites nothing."""
    _pop, db = polled
    with duckdb.connect(str(own(db, tmp_path))) as con:
        timeline.upkeep(con, DS)
        once = frame(con).drop(columns=["run_id", "day"])
    inc = tmp_path / "inc.duckdb"
    with duckdb.connect(str(inc)) as con:
        load_run_by_run(con, db, DS, lambda: timeline.upkeep(con, DS))
        assert timeline.upkeep(con, DS) == 0
        step = frame(con).drop(columns=["run_id", "day"])
    pd.testing.assert_frame_equal(step.sort_index(), once.sort_index(), check_like=True)


def test_polls_alone_figures_hold_the_truth(polled, tmp_path):
    """Polls every 60 s alone: the true speed of answer, handling time and service level
    lie within their bounds, and the median speed of answer is bounded within 2 minutes."""
    pop, db = polled
    with duckdb.connect(str(own(db, tmp_path))) as con:
        timeline.upkeep(con, DS)
        df = tm.sessions(con)
    true = truth(pop).reindex(df.set_index("session_id").index)
    # the sessions the polls saw answered and ended, with their true spans
    answered = df.set_index("session_id")["wait_s"].notna()
    true_wait = (true["answered"] - true["queued"])[answered]
    soa = tm.speed_of_answer(df).set_index("stat")
    for how, value in (("mean", true_wait.mean()), ("median", true_wait.quantile(
            0.5, interpolation="lower")), ("p90", true_wait.quantile(0.9, interpolation="lower"))):
        assert soa.loc[how, "lo"] - 1e-6 <= value <= soa.loc[how, "hi"] + 1e-6, (how, value)
    assert soa.loc["median", "hi"] - soa.loc["median", "lo"] <= 120
    assert (soa["exact_share"] == 0).all()  # polls alone: nothing exact
    handled = df.set_index("session_id")["handle_s"].notna()
    true_handle = (true["ended"] - true["answered"])[handled]
    ht = tm.handling_time(df).set_index("stat")
    assert ht.loc["mean", "lo"] - 1e-6 <= true_handle.mean() <= ht.loc["mean", "hi"] + 1e-6
    sl = tm.measured_service_level(df, 60).iloc[0]
    true_sl = float((true_wait <= 60).mean())
    assert sl["lo"] - 1e-9 <= true_sl <= sl["hi"] + 1e-9
    med, mean = soa.loc["median"], soa.loc["mean"]
    print(f"\n[timeline] polls every 60 s: median speed of answer in [{med.lo:.0f}, "
          f"{med.hi:.0f}] s (truth {true_wait.median():.0f}); mean in [{mean.lo:.1f}, "
          f"{mean.hi:.1f}] (truth {true_wait.mean():.1f}); mean handling in "
          f"[{ht.loc['mean', 'lo']:.0f}, {ht.loc['mean', 'hi']:.0f}] "
          f"(truth {true_handle.mean():.0f})")


def _ended_records(pop: Population, end: float) -> list[dict[str, object]]:
    """The records of the sessions that ended by ``end`` (the keys listed once: a list of
    every key made per session cost seconds)."""
    return [pop.record(i) for i, k in enumerate(pop.session_keys())
            if pop.ended_at(k.session_id) <= end]


def _with_sources(polled_db: Path, out: Path, pop: Population, *, lost: float,
                  records: bool) -> Path:
    """The polled morning plus the callbacks Desk sent by its end (``lost`` of them never
    arrived) and, with ``records``, the records of the sessions that had ended, as the job
    loads them (stamped with the last run)."""
    shutil.copy(polled_db, out)
    end = pop.config.day_start + END_H * 3600
    with duckdb.connect(str(out)) as con:
        ((last,),) = con.execute(f"SELECT max(run_id) FROM {DS}.runs").fetchall()
        rows = [events.to_record(json.loads(cb.body), cb.request_id, int(cb.send_at * 1000))
                for cb in callbacks.plan(pop, callbacks.Knobs(lost=lost, seed=3))
                if cb.send_at <= end]
        table = event_load._table(rows, last)
        con.register("ev", table)
        con.execute(f"CREATE TABLE {DS}.session_events AS SELECT * FROM ev")
        if records:
            con.register("rec", record_rows.to_table(_ended_records(pop, end), last))
            con.execute(f"CREATE TABLE {DS}.session_records AS SELECT * FROM rec")
        timeline.upkeep(con, DS)
    return out


@pytest.mark.parametrize("setup", ["callbacks", "callbacks 2% lost + records"])
def test_events_and_records_make_the_figures_exact(polled, tmp_path, setup):
    """Callbacks all delivered: arrivals per hour equal the truth, mean speed of answer
    within 1 s, mean handling time within 1%. With 2% of callbacks lost plus the session
    records: the same measures within 1%."""
    pop, db = polled
    lost = 0.02 if "lost" in setup else 0.0
    path = _with_sources(db, tmp_path / "desk.duckdb", pop, lost=lost, records=bool(lost))
    day = pop.config.day_start
    since = datetime.fromtimestamp(day + START_H * 3600, UTC)
    until = datetime.fromtimestamp(day + (END_H - 0.5) * 3600, UTC)
    with duckdb.connect(str(path)) as con:
        df = tm.sessions(con, since, until)
    true = truth(pop)
    began = true[(true.began >= since.timestamp()) & (true.began < until.timestamp())]
    # arrivals per hour
    got = tm.arrivals(df).set_index("interval_start")["n"]
    want = pd.to_datetime(began.began, unit="s", utc=True).dt.floor("1h").value_counts()
    got, want = got.sort_index(), want.reindex(got.index).fillna(0)
    if lost:
        assert (abs(got - want) <= 0.01 * want).all(), (got, want)
    else:
        assert (got == want).all(), (got, want)
    # speed of answer and handling time, over the sessions the timeline has them for
    t = true.reindex(df.session_id)
    answered = df.wait_s.notna().to_numpy()
    true_wait = (t.answered - t.queued).to_numpy()[answered]
    mean_wait = tm.speed_of_answer(df).set_index("stat").loc["mean", "value"]
    handled = df.handle_s.notna().to_numpy()
    true_handle = (t.ended - t.answered).to_numpy()[handled]
    mean_handle = tm.handling_time(df).set_index("stat").loc["mean", "value"]
    assert answered.sum() > 100 and handled.sum() > 100
    if lost:
        assert abs(mean_wait - true_wait.mean()) <= 0.01 * true_wait.mean()
    else:
        assert abs(mean_wait - true_wait.mean()) <= 1.0
    assert abs(mean_handle - true_handle.mean()) <= 0.01 * true_handle.mean()
    print(f"\n[timeline] {setup}: arrivals {int(got.sum())} (truth {int(want.sum())}); mean "
          f"speed of answer {mean_wait:.2f} s (truth {true_wait.mean():.2f}); mean handling "
          f"{mean_handle:.1f} s (truth {true_handle.mean():.1f})")


def test_records_alone_make_a_timeline(polled, tmp_path):
    """A desk that only loads records (``desk-sessions records``: no polls, no callbacks)
    still gets exact begin and end times from them."""
    pop, _db = polled
    ended = _ended_records(pop, pop.config.day_start + END_H * 3600)
    with duckdb.connect(str(tmp_path / "records.duckdb")) as con:
        con.execute(f"CREATE SCHEMA {DS}")
        con.execute(f"CREATE TABLE {DS}.record_runs (run_id VARCHAR, status VARCHAR, "
                    "_dlt_load_id VARCHAR)")
        con.execute(f"INSERT INTO {DS}.record_runs VALUES ('r1', 'complete', '1')")
        con.register("rec", record_rows.to_table(ended, "r1"))
        con.execute(f"CREATE TABLE {DS}.session_records AS SELECT * FROM rec")
        assert timeline.upkeep(con, DS) == len(ended)
        got = frame(con)
    true = truth(pop).reindex(got.index)
    assert set(got.began_source) == set(got.ended_source) == {"record"}
    assert (abs(got.ended_at.map(lambda x: x.timestamp()) - true.ended) < 1).all()


class _Explained:
    """A connection that, before each statement writing a table, records the table scans
    of its plan: which table, and the filter DuckDB applies inside the scan (what zone maps
    skip row groups by)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.scans: list[tuple[str, str]] = []

    def execute(self, sql: str, params: object = None) -> duckdb.DuckDBPyConnection:
        if sql.split()[0] in ("CREATE", "DELETE", "INSERT"):
            ((_, plan),) = self.con.execute(f"EXPLAIN (FORMAT json) {sql}", params).fetchall()
            stack = json.loads(plan)
            while stack:
                node = stack.pop()
                stack.extend(node.get("children", []))
                info = node.get("extra_info", {})
                if node["name"] == "SEQ_SCAN" and "." in info.get("Table", ""):
                    filters = info.get("Filters", "")
                    self.scans.append((info["Table"].rsplit(".", 1)[1],
                                       " AND ".join(filters) if isinstance(filters, list)
                                       else filters))
        return self.con.execute(sql, params)


# What a table of history is skipped by: the run's id or a time fixed for the row.
SKIPPED_BY = {"session_states": ("run_id", "polled_at"), "session_events": ("run_id", "event_time"),
              "session_records": ("run_id", "started_at"), timeline.TABLE: ("began_hi",)}


def _older_copy(con: duckdb.DuckDBPyConnection, table: str, days: int) -> None:
    """The table's rows again as other sessions of ``days`` earlier (DuckDB drops a filter
    its statistics show always true: a filter on time only shows with older rows)."""
    cols = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                       "table_schema = ? AND table_name = ?", [DS, table]).fetchall()
    moved = [f"{c} - INTERVAL {days} DAY AS {c}" for c, t in cols if t.startswith("TIMESTAMP")]
    moved += [f"'old-' || {c} AS {c}" for c, _ in cols if c in ("session_id", "run_id")]
    con.execute(f"INSERT INTO {DS}.{table} SELECT * REPLACE ({', '.join(moved)}) "
                f"FROM {DS}.{table}")


def test_upkeep_skips_the_history(polled, tmp_path):
    """The upkeep after a run reads every table of history through a filter DuckDB applies
    in the scan (a constant time or run id, so zone maps skip older row groups): its cost
    follows the new data, not the days behind it."""
    pop, db = polled
    path = _with_sources(db, tmp_path / "desk.duckdb", pop, lost=0.02, records=True)
    with duckdb.connect(str(path)) as con:
        for table in SKIPPED_BY:
            _older_copy(con, table, 10)
        ((last,),) = con.execute(f"SELECT max(run_id) FROM {DS}.runs").fetchall()
        con.execute(f"INSERT INTO {DS}.runs SELECT * REPLACE (run_id || 'n' AS run_id, "
                    "started_at + INTERVAL 60 SECOND AS started_at, _dlt_load_id || 'n' AS "
                    f"_dlt_load_id) FROM {DS}.runs WHERE run_id = ?", [last])
        con.execute(f"INSERT INTO {DS}.session_states SELECT * REPLACE (run_id || 'n' AS "
                    "run_id, polled_at + INTERVAL 60 SECOND AS polled_at) FROM "
                    f"{DS}.session_states WHERE run_id = ?", [last])
        spy = _Explained(con)
        assert timeline.upkeep(spy, DS) > 0  # type: ignore[arg-type]
    scanned = {t for t, _ in spy.scans if t in SKIPPED_BY}
    assert scanned == set(SKIPPED_BY)
    unskipped = [(t, f) for t, f in spy.scans if t in SKIPPED_BY
                 and not any(re.search(rf"\b{c} (>=|=|BETWEEN) ", f) for c in SKIPPED_BY[t])]
    assert not unskipped, unskipped
