"""Long windows and periods where the data does not cover them whole: a latest day holding
only the tail of the day before, data ending inside the period (compared so far), days
without data (gaps, never zeros), and the sessions of no agent group."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import matplotlib
import pandas as pd
import pytest
from tencent_desk import notebook
from tencent_desk.analysis import interval_metrics as im
from tencent_desk.models import intervals
from tencent_desk.readers.snapshot import Reader
from tencent_desk.readers.window import data_days
from tencent_desk.report import page
from tencent_desk.report.figures import CHATBOT_ONLY, gather
from tencent_desk.report.period import Period
from tencent_desk.report.source import Source
from tencent_desk.report.targets import Targets
from tencent_desk.run.publish import publish

from tests.nb_fixture import DS, build_weeks

matplotlib.use("Agg")
import matplotlib.pyplot as plt

NOW = datetime(2026, 6, 1, tzinfo=UTC)  # long after every fixture's data


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def weeks(demo_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's Monday 2026-01-05 (09:00 to 12:30) and the eight days before it, each a
    copy of it: data from Sunday 2025-12-28, ending inside the week of 2026-01-05."""
    path = build_weeks(demo_day, tmp_path_factory.mktemp("weeks") / "weeks.duckdb", days=8)
    con = duckdb.connect(str(path))
    try:  # made again over every day by the job's upkeep when published
        for table in (*intervals.TABLES, intervals.LEDGER, intervals.STATE_TABLE):
            con.execute(f"DROP TABLE IF EXISTS {DS}.{table}")
    finally:
        con.close()
    publish(path)
    return path


def _env(monkeypatch: pytest.MonkeyPatch, db: Path, **env: str) -> None:
    monkeypatch.setenv("DESK_DUCKDB", str(db))
    for key in ("DESK_FROM", "DESK_TO", "DESK_COMPARE", "DESK_APP", "DESK_DESTINATION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _opened(**env: str) -> tuple[notebook.Desk, str]:
    shown = io.StringIO()
    with redirect_stdout(shown):
        desk = notebook.open_desk()
    return desk, shown.getvalue()


def _day_arrivals(db: Path, day: str) -> float:
    files = Reader(db, _utc(day), _utc(day) + pd.Timedelta(days=1))
    try:
        return float(im.figures(files.connection(), _utc(day), _utc(day) + pd.Timedelta(days=1),
                                dataset=DS).iloc[0]["queued"])
    finally:
        files.close()


# --- 1. a latest day holding only the tail of the day before -------------------------------


def test_a_long_window_passes_over_a_tail_day(unpolled_day: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A long window ending on the tail day (2026-01-06: the Monday's last sessions ending
    after midnight) keeps the Monday in detail, as the default window does; the coverage
    line neither counts the tail nor suggests a DESK_TO on it."""
    _env(monkeypatch, unpolled_day, DESK_FROM="2025-12-31", DESK_TO="2026-01-06")
    desk, printed = _opened()
    try:
        assert (desk.since, desk.window.until) == (_utc("2026-01-05"), _utc("2026-01-06"))
        assert desk.period is not None and desk.period.until == _utc("2026-01-07")
        assert len(desk.con.execute(f"SELECT * FROM {DS}.session_timeline").fetchall()) > 100
    finally:
        desk.source.close()
    assert "covers 2026-01-05 only (1 of 7 days)" in printed, printed
    assert "2026-01-06 holds only the tail of 2026-01-05" in printed
    assert "DESK_TO=2026-01-05 for those" in printed
    assert desk.days == [date(2026, 1, 5)]


def test_coverage_of_a_tail_day() -> None:
    days, tail = [date(2026, 1, 5), date(2026, 1, 6)], date(2026, 1, 6)
    win = notebook.window({"DESK_FROM": "2026-01-05", "DESK_TO": "2026-01-06"}, None)
    assert notebook.coverage(win, days) is None  # without the tail known: as before
    assert notebook.coverage(win, days, tail) == (
        "window 2026-01-05 to 2026-01-07 UTC covers 2026-01-05 only (1 of 2 days); "
        "2026-01-06 holds only the tail of 2026-01-05 (sessions that ended after midnight); "
        "set DESK_FROM=2026-01-05 DESK_TO=2026-01-05 for those")
    # the tail asked for alone is read as asked, said once, not refused
    alone = notebook.window({"DESK_FROM": "2026-01-06", "DESK_TO": "2026-01-06"}, None)
    assert "holds only the tail" in str(notebook.coverage(alone, days, tail))
    assert notebook.tail_day(tail, {date(2026, 1, 5): 2400, tail: 3}) == tail
    assert notebook.tail_day(tail, {date(2026, 1, 5): 2400, tail: 100}) is None


# --- 2. data ending inside the period: compared so far -------------------------------------


def test_the_report_compares_a_week_so_far_with_the_week_before_so_far(weeks: Path) -> None:
    """The week of 2026-01-05 holds its Monday morning only: it is compared with the
    Monday of the week before (every day a copy of the same: no change), not with that
    whole week (seven such days), and the page says so."""
    week = Period(_utc("2026-01-05"), _utc("2026-01-12"), "week")
    fig = gather(Source(weeks, DS), week, Targets(), now=NOW)
    arrivals = {f.key: f for f in fig.key}["arrivals"]
    monday = _day_arrivals(weeks, "2025-12-29")
    assert arrivals.value == monday and arrivals.previous == monday
    assert fig.so_far is not None and _utc("2026-01-05T12:00") < fig.so_far < _utc("2026-01-06")
    assert fig.before == (_utc("2025-12-29"), fig.so_far - pd.Timedelta(days=7))
    assert fig.before_note == ""
    html = page.render(fig)
    assert (f"so far: to {fig.so_far:%Y-%m-%d %H:%M} UTC, against the period before to the "
            "same point") in html


def test_the_report_says_the_period_before_is_partly_covered(weeks: Path) -> None:
    """The week before 2025-W53 has data on its Sunday only: said beside the comparison."""
    week = Period(_utc("2025-12-29"), _utc("2026-01-05"), "week")
    fig = gather(Source(weeks, DS), week, Targets(), now=NOW)
    assert fig.so_far is None and fig.before == (_utc("2025-12-22"), _utc("2025-12-29"))
    assert fig.before_note == "data on 2025-12-28 only (1 of 7 days)"
    assert "the period before has data on 2025-12-28 only (1 of 7 days)" in page.render(fig)


def test_the_notebooks_trend_compares_so_far(weeks: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A long window ending where the data ends (the Monday morning) is compared with the
    period before up to the same point, which says which of its days have data."""
    _env(monkeypatch, weeks, DESK_FROM="2025-12-30", DESK_TO="2026-01-05")
    desk, _ = _opened()
    tables: list[pd.DataFrame] = []
    shown = io.StringIO()
    try:
        assert desk.period is not None and desk.period_source is not None
        assert desk.period_end is not None
        with redirect_stdout(shown):
            notebook._trend(desk, desk.period_source.connection(), 60.0, plt, tables.append)
    finally:
        desk.source.close()
        desk.period_source.close()
        plt.close("all")
    printed = shown.getvalue()
    end = pd.Timestamp(desk.period_end)
    assert f"so far: to {end:%Y-%m-%d %H:%M} UTC, against the period before" in printed
    assert "data on 2025-12-28..2025-12-29 only (2 of 7 days)" in printed
    (table,) = tables
    previous = next(c for c in table.columns if c.startswith("previous"))
    # 2025-12-28 whole and 2025-12-29 up to the same point (its whole morning), not more
    assert table.loc["queued", previous] == 2 * _day_arrivals(weeks, "2025-12-29")
    assert table.loc["queued", "this period"] == 7 * _day_arrivals(weeks, "2025-12-29")


# --- 3 and 4. days without data are gaps, not zeros -----------------------------------------


def test_the_heatmap_means_are_over_days_with_data(weeks: Path) -> None:
    """Monday 10:00 over two months holds two Mondays with data: its mean is theirs."""
    since, until = _utc("2025-12-01"), _utc("2026-02-01")
    files = Reader(weeks, since, until)
    try:
        con = files.connection()
        monday = _day_arrivals(weeks, "2025-12-29")
        hours = im.per_interval(con, _utc("2026-01-05"), _utc("2026-01-06"), "1h", dataset=DS)
        at_ten = float(hours.set_index("period_start").loc[_utc("2026-01-05T10:00"), "arrivals"])
        for days in (None, data_days(weeks, DS)):
            grid = im.weekday_hour(con, since, until, DS, days=days).set_index(
                ["weekday", "hour"])
            assert grid.loc[(0, 10), "arrivals_per_hour"] == at_ten  # (2 x at_ten) / 2
            # Sunday: one with data (2025-12-28)
            assert grid["arrivals"].sum() == 9 * monday
    finally:
        files.close()


def test_days_without_data_are_gaps_in_the_trend(shapes) -> None:
    """Thursday, Friday and Monday with data, the weekend without: the weekend's days are
    NaN, not 0, and a 7-day rolling mean on the Monday is over the three days with data."""
    db = shapes["several_days"]
    since, until = _utc("2026-01-01"), _utc("2026-01-06")
    days = data_days(db, DS)
    files = Reader(db, since, until)
    try:
        daily = im.per_interval(files.connection(), since, until, "1D", dataset=DS,
                                gaps=im.days_without(days, since, until))
    finally:
        files.close()
    arrivals = daily.set_index("period_start")["arrivals"]
    assert arrivals.loc[[_utc("2026-01-03"), _utc("2026-01-04")]].isna().all()
    have = arrivals.loc[[_utc(d) for d in ("2026-01-01", "2026-01-02", "2026-01-05")]]
    assert (have > 0).all()
    rolling = arrivals.rolling(7, min_periods=1).mean()
    assert rolling.loc[_utc("2026-01-05")] == pytest.approx(have.mean())


def test_the_reports_days_without_data_are_gaps(shapes) -> None:
    """A report of ten days by day: the weekend and the days after the data are gaps (no
    run, no callback: NaN), the days with data their arrivals."""
    db = shapes["several_days"]
    fig = gather(Source(db, DS), Period(_utc("2026-01-01"), _utc("2026-01-11"), "range"),
                 Targets(), now=NOW)
    per_day = fig.over_time.set_index("interval_start")["arrivals"]
    assert per_day.loc[[_utc("2026-01-03"), _utc("2026-01-04"), _utc("2026-01-08")]
                       ].isna().all()
    assert (per_day.loc[[_utc("2026-01-01"), _utc("2026-01-05")]] > 0).all()


# --- 5. sessions of no agent group --------------------------------------------------------


def test_chatbot_only_sessions_are_named_or_left_out(unpolled_day: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The report names the row of sessions with no agent group (its sessions are its only
    figure); the notebook's table of groups, whose every column is about queued sessions,
    leaves it out."""
    day = Period(_utc("2026-01-05"), _utc("2026-01-06"), "day")
    groups = gather(Source(unpolled_day, DS), day, Targets(), now=NOW).groups
    assert "(none)" not in set(groups["group"])
    chatbot = groups[groups["group"] == CHATBOT_ONLY]
    assert len(chatbot) == 1 and int(chatbot["sessions"].iloc[0]) > 0
    _env(monkeypatch, unpolled_day, DESK_FROM="2025-12-31", DESK_TO="2026-01-06")
    desk, _ = _opened()
    tables: list[pd.DataFrame] = []
    try:
        assert desk.period_source is not None
        notebook._groups(desk, desk.period_source.connection(), 60.0, plt, tables.append)
    finally:
        desk.source.close()
        desk.period_source.close()
        plt.close("all")
    (table,) = tables
    assert len(table) == 3 and "(none)" not in table.index and (table["queued"] > 0).all()
