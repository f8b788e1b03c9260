"""``desk-sessions plan`` end to end, in a child process: on weeks of history built from a
day the real job polled (``tests/nb_fixture.py``), on DuckDB and on PostgreSQL; every error
the user must fix is one line and exit code 2; and the patience it estimates is the
simulator's truth read the same way."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.models import timeline
from tencent_desk.planning import forecast as fc
from tencent_desk.planning import history, ringing
from tencent_desk.planning.plan import COLUMNS
from tencent_desk.readers.snapshot import Reader
from tencent_desk.run.lock import RunLock
from tencent_desk.run.publish import publish
from tencent_desk.simulator import truth

from tests.nb_fixture import DS, SECOND_APP, build_weeks, one_app, two_apps, unnamed

from .support import cli
from .support.notebooks import run_inline
from .support.warehouse import copy_dataset

# the module's databases take minutes to build on a busy 2-core machine (the demo, weeks)
pytestmark = pytest.mark.timeout(1500)
DAY = "2026-01-06"  # the day after the demo's Monday: the first day to plan
GROUP = "Online customer service"


@pytest.fixture(scope="module")
def demo(demo_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's demo morning, copied: a plan writes into the database it reads."""
    path = tmp_path_factory.mktemp("plan_demo") / "demo.duckdb"
    shutil.copyfile(demo_day, path)
    publish(path)
    return path


@pytest.fixture(scope="module")
def weeks(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three weeks and a day of history (the demo's day, copied back 21 days)."""
    path = build_weeks(demo, tmp_path_factory.mktemp("plan_weeks") / "weeks.duckdb")
    publish(path)
    return path


@pytest.fixture(scope="module")
def by_app(weeks: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The weeks for two apps whose groups are named alike, in one database ("both": the
    weeks' own app, named first, and SECOND_APP, every other session of theirs), and each
    app in a database of its own: the weeks, and the second's rows of both."""
    folder = tmp_path_factory.mktemp("plan_apps")
    both = two_apps(weeks, folder / "both.duckdb")
    publish(both)
    second = one_app(both, folder / "second.duckdb", SECOND_APP)
    publish(second)
    return {"both": both, "first": weeks, "second": second}


@pytest.fixture(scope="module")
def app_plans(by_app: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, tuple[subprocess.CompletedProcess, pd.DataFrame]]:
    """The plans of DAY (the child, its CSV): of both apps together, of each of them with
    --app (a name, an sdkappid: saved), and of each app's own database."""
    folder = tmp_path_factory.mktemp("app_plans")
    made = {}
    for name, db, *more in (("mixed", "both", "--no-save"), ("first", "both", "--app", "first"),
                            ("second", "both", "--app", str(SECOND_APP)),
                            ("first alone", "first", "--no-save"),
                            ("second alone", "second", "--no-save")):
        out = folder / f"{name}.csv"
        done = plan(folder, "--database", str(by_app[db]), "--date", DAY, "--backtest",
                    "--out", str(out), *more)
        assert done.returncode == 0, (name, done.stderr)
        made[name] = done, _frame(out)
    return made


def plan(folder: Path, *argv: str, **env: str):
    return cli.run([cli.CLI, "plan", *argv, "--log-level", "WARNING"], cwd=folder, **env)


def one_error(done) -> str:
    assert done.returncode == 2, done.stderr
    lines = cli.error_lines(done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_every_error_is_one_line(demo: Path, weeks: Path, tmp_path: Path) -> None:
    too_little = one_error(plan(tmp_path, "--database", str(demo), "--date", DAY,
                                "--backtest"))
    assert "too little history before 2026-01-06: 1 day with sessions" in too_little
    assert too_little.endswith("; the database holds 2026-01-05 to 2026-01-05 (1 day)")
    assert f"needs at least {fc.MIN_DAYS}" in too_little
    # tomorrow (the default) on a database whose data ended long ago says where it ends
    assert "the data ends on 2026-01-05" in one_error(plan(tmp_path, "--database",
                                                           str(weeks)))
    assert "cannot be read" in one_error(plan(tmp_path, "--database", str(weeks), "--target",
                                              "80%", "--backtest", "--date", DAY))
    unknown = one_error(plan(tmp_path, "--database", str(weeks), "--date", DAY, "--backtest",
                             "--group", "Nope"))
    assert "'Nope': no such agent group" in unknown and GROUP in unknown
    past = one_error(plan(tmp_path, "--database", str(weeks), "--date", DAY))
    assert "is in the past" in past and "--backtest" in past
    assert "not found" in one_error(plan(tmp_path, "--database", str(tmp_path / "x.duckdb")))
    # said before anything heavy is loaded: each of these costs the command line alone
    assert "--database is required" in one_error(plan(tmp_path, "--date", DAY))
    assert "--days must be at least 1" in one_error(plan(tmp_path, "--database", str(weeks),
                                                         "--days", "0"))
    shrinkage = one_error(plan(tmp_path, "--database", str(weeks), "--shrinkage", "1.5"))
    assert "--shrinkage must be in [0, 1), got 1.5" in shrinkage
    occupancy = one_error(plan(tmp_path, "--database", str(weeks), "--max-occupancy", "0"))
    assert "--max-occupancy must be in (0, 1], got 0" in occupancy  # that one alone
    assert "--shrinkage" not in occupancy and "--max-occupancy" not in shrinkage
    # --date is ISO 8601 only: a cron line's unset variable, words and a day/month order
    # that is a guess are refused, and a time of day is --intraday's
    for date in ("", "NaT", "today", "10/03/2026"):
        assert f"--date {date!r} is not an ISO 8601 date" in one_error(plan(
            tmp_path, "--database", str(weeks), "--date", date, "--backtest"))
    assert "has a time of day, which only --intraday reads" in one_error(plan(
        tmp_path, "--database", str(weeks), "--date", "2026-01-05T12:00", "--backtest"))
    unpublished = tmp_path / "bare.duckdb"
    duckdb.connect(str(unpublished)).close()
    assert "publish" in one_error(plan(tmp_path, "--database", str(unpublished)))
    # a file that is no DuckDB database, a dataset that is not there: said as such
    notes = tmp_path / "notes.md"
    notes.write_text("# not a database\n")
    assert f"{notes} is not a DuckDB database" in one_error(plan(tmp_path, "--database",
                                                                 str(notes)))
    assert f"no dataset 'nope' in {weeks}: it holds tencent_desk" in one_error(plan(
        tmp_path, "--database", str(weeks), "--dataset", "nope", "--date", DAY,
        "--backtest"))


def _frame(path: Path) -> pd.DataFrame:
    """A plan's CSV as a frame: its id a string even when its hex digits read as a number."""
    return pd.read_csv(path, dtype={"sdkappid": "Int64", "plan_id": str})


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_plan_on_duckdb(weeks: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.csv"
    done = plan(tmp_path, "--database", str(weeks), "--date", DAY, "--backtest", "--days",
                "2", "--interval", "60", "--target", "0.8:60", "--shrinkage", "0.3",
                "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = _rows(out)
    assert len(rows) == 48 and {r["group"] for r in rows} == {GROUP}
    busy = [r for r in rows if float(r["forecast"]) >= 20]
    assert busy
    for r in busy:
        assert float(r["forecast_lo"]) <= float(r["forecast"]) <= float(r["forecast_hi"])
        assert int(r["scheduled"]) >= int(r["agents"]) / 0.7 - 1e-9
    # the summary line's peaks: agents on the queue, and scheduled (grossed up)
    peaks = [max(int(r[c]) for r in rows if r[c]) for c in ("agents", "scheduled")]
    assert peaks[0] < peaks[1]
    assert (f"at most {peaks[0]} agents on the queue at once, {peaks[1]} scheduled"
            in done.stdout), done.stdout
    # and the agent-hours of both: shrinkage rounded up per interval adds to the scheduled
    hours = [sum(int(r[c]) * int(r["interval_min"]) for r in rows if r[c]) / 60
             for c in ("agents", "scheduled")]
    assert (f"{hours[0]:.1f} agent-hours on the queue, {hours[1]:.1f} scheduled; "
            in done.stdout), done.stdout
    assert f"\n  written to {out}\n" in done.stdout
    # the target holds over each day (the default), weighted by the forecast, and no
    # interval goes above the maximum occupancy
    for day in {r["interval_start"][:10] for r in rows}:
        staffed = [r for r in rows if r["interval_start"].startswith(day)
                   and float(r["forecast"]) > 0]
        weighted = sum(float(r["service_level"]) * float(r["forecast"]) for r in staffed)
        assert weighted / sum(float(r["forecast"]) for r in staffed) >= 0.8
        assert all(float(r["occupancy"]) <= 0.85 and int(r["agents"]) >= 1 for r in staffed)
        # abandonment lets Erlang A (and the model with it) staff no more than Erlang C
        assert sum(int(r["erlang_a_agents"]) for r in staffed) <= sum(
            int(r["erlang_c_agents"]) for r in staffed)
    # every plan is kept: a second one is appended beside the first, its rule recorded
    each = tmp_path / "each.csv"
    assert plan(tmp_path, "--database", str(weeks), "--date", DAY, "--backtest",
                "--method", "naive", "--target-per", "interval", "--out",
                str(each)).returncode == 0
    assert all(float(r["service_level"]) >= 0.8 and float(r["occupancy"]) <= 0.85
               for r in _rows(each) if float(r["forecast"]) > 0)
    with duckdb.connect(str(weeks), read_only=True) as con:
        kept = con.execute("SELECT plan_id, kind, method, count(*), any_value(parameters) "
                           "FROM tencent_desk.staffing_plan GROUP BY ALL ORDER BY method"
                           ).fetchall()
    assert [(k[1], k[2], k[3]) for k in kept] == [("backtest", "naive", 48),
                                                   ("backtest", "profile", 48)]
    assert kept[1][0] == rows[0]["plan_id"] != kept[0][0]
    assert [json.loads(k[4])["target_per"] for k in kept] == ["interval", "day"]
    # what the plan was made for is kept with it too
    made = json.loads(kept[1][4])
    assert (made["date"], made["days"], made["groups"], made["as_of"]) == (DAY, 2, [GROUP],
                                                                            None)


def test_the_csv_to_stdout_with_the_summary_beside_it(weeks: Path, tmp_path: Path) -> None:
    """--out -: the CSV alone on stdout (a pipe reads it clean), the summary lines on stderr
    saying where it went, no file named '-'; one interval said as one."""
    done = plan(tmp_path, "--database", str(weeks), "--date", "2026-01-05T23:45",
                "--backtest", "--intraday", "--interval", "15", "--no-save", "--out", "-")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 1 and rows[0]["interval_start"].startswith("2026-01-05 23:45")
    assert not (tmp_path / "-").exists()
    assert re.search(r"^plan \w+ for 2026-01-05 from 23:45 UTC: 1 interval$", done.stderr,
                     re.M), done.stderr
    assert "\n  written to stdout\n" in done.stderr


def test_a_reader_that_leaves_early_is_no_error(weeks: Path, tmp_path: Path) -> None:
    """``plan ... | head -1``: stdout's reader gone before the summary is written is what
    the user asked for: exit 141 (as SIGPIPE), nothing on stderr, not 'unexpected error'."""
    read, write = os.pipe()
    os.close(read)  # the reader left before the first line: every write fails
    try:
        done = subprocess.run([cli.CLI, "plan", "--database", str(weeks), "--date", DAY,
                               "--backtest", "--no-save"], cwd=tmp_path, env=cli.env(),
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=240)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_run_in_progress_keeps_the_file(weeks: Path, tmp_path: Path) -> None:
    """While a run holds the job's lock the plan waits --lock-wait, then says so in one
    line with exit code 3; the CSV is written all the same."""
    out = tmp_path / "plan.csv"
    with RunLock(weeks):
        done = plan(tmp_path, "--database", str(weeks), "--date", DAY, "--backtest",
                    "--lock-wait", "1", "--out", str(out))
    assert done.returncode == 3, done.stderr
    (line,) = cli.error_lines(done.stderr)
    assert "another desk-sessions run is writing" in line and "Traceback" not in done.stderr
    assert line.endswith(f"; {out} is written but the plan is not saved in staffing_plan")
    assert len(_rows(out)) == 48


def test_the_report_shows_a_saved_plan(weeks: Path, tmp_path: Path) -> None:
    """A plan of the demo's day, its CSV into a folder not made yet (a path through a file is
    one line, exit 3), then published: the report compares it with what came, over the
    plan's own intervals."""
    db = tmp_path / "weeks.duckdb"
    shutil.copyfile(weeks, db)  # the module's other tests count the plans kept in weeks
    publish(db)
    (tmp_path / "plans.txt").write_text("a file, not a folder")
    bad = plan(tmp_path, "--database", str(db), "--date", "2026-01-05", "--backtest",
               "--out", str(tmp_path / "plans.txt" / "monday.csv"))
    assert bad.returncode == 3 and "Traceback" not in bad.stderr, bad.stderr
    (line,) = cli.error_lines(bad.stderr)
    assert line.endswith(f"cannot write {tmp_path}/plans.txt/monday.csv: File exists "
                         f"({tmp_path}/plans.txt)"), line
    out = tmp_path / "plans" / "monday.csv"
    done = plan(tmp_path, "--database", str(db), "--date", "2026-01-05", "--backtest",
                "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(_rows(out)) == 48
    assert done.stdout.splitlines()[-1] == ("  saved in staffing_plan; the report sees it after "
                                            "the job's next run or `desk-sessions publish`")
    publish(db)
    page = tmp_path / "report.html"
    shown = cli.run([cli.CLI, "report", "--database", str(db), "--day", "2026-01-05",
                     "--out", str(page)], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    html = page.read_text()
    assert f"intervals of 30 minutes, for {GROUP}." in html
    table = html[html.index('data-table="plan"'):]
    cells = re.findall(r'data-label="arrivals">([^<]*)<', table[:table.index("</table>")])
    # hours without data are gaps ("–"), not zeros
    assert len(cells) == 48 and sum(int(a) for a in cells if a != "–") > 0


def test_intraday_plans_the_rest_of_the_day(weeks: Path, tmp_path: Path) -> None:
    """The rest of the day from the morning's arrivals, which it says and keeps; a day
    whose sessions are not loaded yet is refused in one line, not planned as empty."""
    out = tmp_path / "rest.csv"
    done = plan(tmp_path, "--database", str(weeks), "--date", "2026-01-05T11:00",
                "--backtest", "--intraday", "--no-save", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = _rows(out)
    assert rows[0]["interval_start"].startswith("2026-01-05 11:00") and len(rows) == 26
    assert {r["kind"] for r in rows} == {"intraday"}
    kept = json.loads(rows[0]["parameters"])
    assert kept["as_of"] == "2026-01-05T11:00:00+00:00" and kept["date"] == "2026-01-05"
    arrived, multiplier = kept["arrived"][GROUP], kept["multiplier"][GROUP]
    assert arrived > 0 and multiplier > 0
    # counted up to the as-of time, or where the data ends when before it
    until = pd.Timestamp(kept["arrived_until"])
    assert pd.Timestamp("2026-01-05T10:30Z") <= until <= pd.Timestamp("2026-01-05T11:00Z")
    assert (f"{GROUP}: {arrived} arrived before {until:%H:%M}, the rest of the day scaled by "
            f"{multiplier:.2f}; ") in done.stdout
    early = one_error(plan(tmp_path, "--database", str(weeks), "--date", "2026-01-06T12:00",
                           "--backtest", "--intraday", "--no-save"))
    assert re.search(r"the data ends on 2026-01-05 \(at \d\d:\d\d UTC\), before 2026-01-06, "
                     r"the update's day", early), early


def test_the_abandoned_without_a_group_are_their_groups(weeks: Path, app_plans,
                                                         tmp_path: Path) -> None:
    """Records that name no group for the sessions nobody served (one reading of Desk's
    "the agent group that served"): those sessions are spread over the groups as the
    grouped ones of their interval are (planning/ungrouped.py), so with one group the plan
    is the plan of the records that name it, patience included, and no "(none)" group."""
    db = tmp_path / "unnamed.duckdb"
    assert unnamed(weeks, db) > 0
    publish(db)
    out = tmp_path / "plan.csv"
    done = plan(tmp_path, "--database", str(db), "--date", DAY, "--backtest", "--no-save",
                "--out", str(out))
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(_frame(out)[COLUMNS],
                                  app_plans["first alone"][1][COLUMNS])


def test_a_day_loaded_in_part_is_left_out(weeks: Path, tmp_path: Path) -> None:
    """The data ending halfway through its last day: a plan of the next day leaves that day
    out of its forecast (not a quiet day) and says so, in its summary and parameters."""
    db = tmp_path / "cut.duckdb"
    shutil.copyfile(weeks, db)
    with duckdb.connect(str(db)) as con:
        (first, last), = con.execute(
            "SELECT min(began_at), max(began_at) FROM tencent_desk.session_timeline "
            "WHERE began_at >= TIMESTAMPTZ '2026-01-05 00:00+00'").fetchall()
        con.execute("DELETE FROM tencent_desk.session_timeline WHERE began_at >= ?",
                    [first + (last - first) / 2])
        (ends,), = con.execute("SELECT max(began_at) FROM tencent_desk.session_timeline"
                               ).fetchall()
    publish(db)
    out = tmp_path / "plan.csv"
    done = plan(tmp_path, "--database", str(db), "--date", DAY, "--backtest", "--no-save",
                "--out", str(out))
    assert done.returncode == 0, done.stderr
    said = ("2026-01-05 left out of the forecast: the data ends at "
            f"{ends.astimezone(UTC):%H:%M} UTC")
    assert f"48 intervals ({said})" in done.stdout.splitlines()[0], done.stdout
    assert json.loads(_rows(out)[0]["parameters"])["left_out"] == said


def test_plan_on_postgres(by_app: dict[str, Path], app_plans, postgres_url: str,
                          tmp_path: Path) -> None:
    """One app of two on the server (planning/history.py's warehouse path): found by its
    name, its sessions, polls and runs alone read, the same plan as from the DuckDB file
    (the offer's ringing timed from its polls included), its sdkappid saved with it."""
    # the tables a plan reads: the weeks' events and records would take most of the test's
    # time to copy
    copy_dataset(by_app["both"], "postgres", postgres_url, pipelines_dir=tmp_path / "copy",
                 only=(timeline.TABLE, *ringing.NEEDS))
    out = tmp_path / "plan.csv"
    done = plan(tmp_path, "--destination", "postgres", "--date", DAY, "--backtest", "--app",
                "second", "--out", str(out), DESTINATION__POSTGRES__CREDENTIALS=postgres_url)
    assert done.returncode == 0, done.stderr
    duck = _frame(out)
    pd.testing.assert_frame_equal(duck[COLUMNS], app_plans["second"][1][COLUMNS])
    assert (duck.ringing_s > 0).all()  # the polls' sightings were read
    import psycopg2

    con = psycopg2.connect(postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*), min(kind), sum(agents), min(sdkappid), "
                        "max(sdkappid) FROM tencent_desk.staffing_plan WHERE plan_id = %s",
                        [duck.plan_id[0]])
            n, kind, agents, *apps = cur.fetchone()
    finally:
        con.close()
    assert n == len(duck) == 48 and kind == "backtest" and apps == [SECOND_APP] * 2
    assert int(agents) == int(duck.agents.sum())


def test_patience_is_the_truths(demo: Path) -> None:
    """The estimate from the timeline equals the same estimator on the simulator's true
    waits of the same sessions: the plan reads the data exactly. (The demo day has ten
    abandonments: too few to check the configured mean, and its waits include the 5-40 s
    offer during which the simulator's customers cannot leave; see docs/planning.md.)"""
    est = fc.patience(*history.read(demo, "duckdb", "tencent_desk",
                                    datetime(2026, 1, 1, tzinfo=UTC),
                                    datetime(2026, 1, 7, tzinfo=UTC), 60.0).waited())
    reader = Reader(demo)
    try:
        waits = truth.truth_waits(reader.connection())
    finally:
        reader.close()
    mine = waits[waits.outcome.isin(["answered", "ended"])]
    ids = set(_timeline_ids(demo))
    mine = mine[mine.session_id.isin(ids)]
    assert est.abandoned == int((mine.outcome == "ended").sum()) > 0
    assert est.waited_s == pytest.approx(mine.wait_s.sum(), rel=1e-6)


def _summed_in_pandas(rows: pd.DataFrame, target_s: float) -> dict[str, pd.DataFrame]:
    """The summary's rules (planning/summary.py) applied to the timeline's rows one by one,
    in pandas: the oracle the SQL is checked against."""
    t = {c: pd.to_datetime(rows[f"{c}_at"], utc=True)
         for c in ("began", "queued", "offered", "answered", "ended")}
    exact = rows.offered_source.isin(["event", "record"]) & (t["offered"] >= t["queued"])
    assigned = t["offered"].where(exact, t["answered"])
    s = pd.DataFrame({"group": rows.agent_group_name.fillna("(none)"),
                      "day": t["began"].dt.normalize(), "queued": t["queued"],
                      "assigned": assigned, "answered": t["answered"], "ended": t["ended"],
                      "agent": rows.agent_id,
                      "hold_s": (t["ended"] - assigned).dt.total_seconds(),
                      "abandoned": rows.abandoned.astype(bool)})
    q = s[s.queued.notna()].assign(interval_start=lambda d: d.queued.dt.floor("15min"))
    wait = (q.answered.fillna(q.assigned) - q.queued).dt.total_seconds()
    left = (q.assigned.fillna(q.ended.where(q.abandoned)) - q.queued).dt.total_seconds()
    queue = q.assign(in_time=wait <= target_s, abandoned_in_time=q.abandoned & (
        left <= target_s)).groupby(["group", "interval_start"]).agg(
        queued=("queued", "size"), in_time=("in_time", "sum"), abandoned=("abandoned", "sum"),
        abandoned_in_time=("abandoned_in_time", "sum"))
    answered = ~q.abandoned & q.assigned.notna() & q.answered.notna()
    w = q.assign(waited_s=left.clip(lower=0), one=1,
                 gave_up_s=left.clip(lower=0).where(q.abandoned, 0.0),
                 rang_in_wait=answered & (q.assigned >= q.answered),
                 rang_s=(q.answered - q.assigned).dt.total_seconds().where(
                     answered & (q.assigned < q.answered), 0.0))[left.notna()]
    waits = w.groupby(["group", "day"]).agg(
        waited=("one", "sum"), waited_s=("waited_s", "sum"), gave_up=("abandoned", "sum"),
        gave_up_s=("gave_up_s", "sum"), rang_in_wait=("rang_in_wait", "sum"),
        rang_s=("rang_s", "sum"))
    h = q[q.hold_s.notna()]
    slot = (h.queued - h.queued.dt.normalize()) // pd.Timedelta(minutes=15)
    handling = h.assign(slot=slot).groupby(["group", "day", "slot"]).agg(
        chats=("hold_s", "size"), hold_s=("hold_s", "sum"))
    taken = s[s.assigned.notna() & s.agent.notna()].copy()
    start = taken.assigned.astype("int64").to_numpy()
    end = taken.ended.astype("int64").where(taken.ended.notna(), 2**62).to_numpy()
    taken["held"] = 0
    for _, idx in taken.groupby(["group", "agent"]).indices.items():
        taken.iloc[idx, taken.columns.get_loc("held")] = (
            np.searchsorted(np.sort(start[idx]), start[idx], "right")
            - np.searchsorted(np.sort(end[idx]), start[idx], "right"))
    held = taken[taken.hold_s.notna()].groupby(["group", "day", "held"]).agg(
        chats=("hold_s", "size"), hold_s=("hold_s", "sum"))
    return {"queue": queue, "waits": waits, "handling": handling, "held": held}


def test_summary_is_the_sessions_summed(weeks: Path) -> None:
    """What the plan reads, summed by DuckDB from weeks of timeline, equals the same rules
    applied session by session in pandas, on weeks of history and on a window inside it."""
    windows = [(datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 7, tzinfo=UTC)),
               (datetime(2025, 12, 22, 12, tzinfo=UTC), datetime(2025, 12, 30, tzinfo=UTC))]
    reader = Reader(weeks)
    try:
        rows = [tm.sessions(reader.connection(), since, until) for since, until in windows]
    finally:
        reader.close()
    assert 0 < len(rows[1]) < len(rows[0])
    for (since, until), every in zip(windows, rows, strict=True):
        got = history.read(weeks, "duckdb", "tencent_desk", since, until, 60.0)
        assert got.sessions == len(every)
        for name, want in _summed_in_pandas(every, 60.0).items():
            have = getattr(got, name).set_index(list(want.index.names)).sort_index()
            assert len(want) and have.index.equals(want.sort_index().index), name
            pd.testing.assert_frame_equal(have.astype(float), want.sort_index().astype(float),
                                          check_exact=False, rtol=1e-12, atol=1e-6)


def _timeline_ids(database: Path) -> list[str]:
    reader = Reader(database)
    try:
        return [s for (s,) in reader.connection().execute(
            "SELECT session_id FROM tencent_desk.session_timeline WHERE queued_at IS NOT NULL"
        ).fetchall()]
    finally:
        reader.close()


def test_a_saved_plan_carries_its_app_and_is_no_table_to_upgrade(
        weeks: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A plan saved by the real CLI carries the sdkappid of the app whose sessions it was
    made from, like every table the job writes: the next run's upgrade (the function it
    calls before a load) finds nothing to upgrade, and says nothing of staffing_plan."""
    import logging

    from tencent_desk.job import upgrade
    from tencent_desk.run.pipeline import pipeline_for

    db = tmp_path / "weeks.duckdb"
    shutil.copyfile(weeks, db)  # the module's other tests count the plans kept in weeks
    publish(db)
    with duckdb.connect(str(db), read_only=True) as con:
        (app,) = [a for (a,) in con.execute(
            f"SELECT DISTINCT sdkappid FROM tencent_desk.{timeline.TABLE}").fetchall()]
    assert app is not None
    done = plan(tmp_path, "--database", str(db), "--date", DAY, "--backtest")
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        # the module's earlier tests may have saved plans in weeks (with their app too)
        kept = con.execute("SELECT DISTINCT sdkappid FROM tencent_desk.staffing_plan"
                           ).fetchall()
        newest = con.execute("SELECT count(*) FROM tencent_desk.staffing_plan WHERE "
                             "created_at = (SELECT max(created_at) FROM "
                             "tencent_desk.staffing_plan) AND sdkappid = ?", [app]).fetchone()
    assert kept == [(app,)] and newest == (48,)
    pipeline = pipeline_for(db, "tencent_desk", str(tmp_path / "dlt"))
    with caplog.at_level(logging.WARNING, logger="desk_sessions"):
        assert upgrade.add_app_column(pipeline, 1400000000) == []
    assert "upgraded" not in caplog.text
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT DISTINCT sdkappid FROM tencent_desk.staffing_plan"
                           ).fetchall() == [(app,)]


# what a plan is, without what identifies it
MADE = ["plan_id", "created_at"]


def test_one_plan_per_app(by_app: dict[str, Path], app_plans, tmp_path: Path) -> None:
    """Two apps whose groups are named alike: --app (a name or an sdkappid) plans each from
    its own sessions, polls and runs alone, as a database holding that app only does, not
    as the plan of both together; each plan carries its app's sdkappid, in the CSV and in
    staffing_plan. Without --app, one warning line says the plan is for none of them; an
    app the database does not hold is one error line naming those it does."""
    mixed = app_plans["mixed"][1]
    first = int(app_plans["first alone"][1].sdkappid.iloc[0])
    ids = {}
    for name, sdkappid in (("first", first), ("second", SECOND_APP)):
        done, own = app_plans[name]
        alone = app_plans[f"{name} alone"][1]
        pd.testing.assert_frame_equal(own.drop(columns=MADE), alone.drop(columns=MADE),
                                      check_exact=False, rtol=1e-9)
        assert set(own.sdkappid) == {sdkappid} and "warning" not in done.stderr
        assert own.forecast.sum() < mixed.forecast.sum()
        assert not own.agents.equals(mixed.agents)
        ids[own.plan_id.iloc[0]] = sdkappid
    assert mixed.sdkappid.isna().all() and set(mixed.group) == {GROUP}
    # an agent id of each app is two agents, not one holding both apps' chats
    assert mixed.slots_per_agent.max() == alone.slots_per_agent.max()
    warned = [line for line in app_plans["mixed"][0].stderr.splitlines() if "warning" in line]
    assert warned == [
        f"desk-sessions: warning: the sessions read are of 2 apps ({first}, {SECOND_APP}), "
        "planned together: a plan of several apps is for none of them (its sdkappid is "
        "NULL); give --app (a name or an sdkappid) for one app's plan"]
    with duckdb.connect(str(by_app["both"]), read_only=True) as con:
        saved = con.execute("SELECT plan_id, any_value(sdkappid), count(*) FROM "
                            "tencent_desk.staffing_plan WHERE plan_id IN (?, ?) GROUP BY 1",
                            list(ids)).fetchall()
    assert {plan_id: (sdkappid, n) for plan_id, sdkappid, n in saved} == {
        plan_id: (sdkappid, 48) for plan_id, sdkappid in ids.items()}
    unknown = plan(tmp_path, "--database", str(by_app["both"]), "--app", "mars", "--date",
                   DAY, "--backtest")
    assert unknown.stderr.strip() == one_error(unknown) == (
        f"desk-sessions: error: --app 'mars' is unknown: the apps of {DS} are first "
        f"({first}), second ({SECOND_APP}); give a name or an sdkappid of those")


def test_the_planning_notebook_plans_the_desk_app(by_app: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """DESK_APP, as in every notebook: the planning notebook sums the history of that app
    alone, its polls' ringing too, as a database of that app only holds it."""
    for key in ("DESK_FROM", "DESK_TO", "DESK_COMPARE", "DESK_DESTINATION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DESK_DUCKDB", str(by_app["both"]))
    monkeypatch.setenv("DESK_APP", "second")
    ran = run_inline("planning")
    summed, first = ran.names["summed"], ran.names["first"]
    alone = history.read(by_app["second"], "duckdb", DS,
                         (first - pd.Timedelta(weeks=ran.names["PARAMS"].weeks, days=1)
                          ).to_pydatetime(), ran.names["next_day"].to_pydatetime(),
                         ran.names["PARAMS"].target_s)
    assert summed.sdkappids == alone.sdkappids == (SECOND_APP,)
    assert summed.sessions == alone.sessions > 0
    pd.testing.assert_frame_equal(summed.ringing_seen, alone.ringing_seen)
    assert len(alone.ringing_seen) and "planned together" not in ran.text
