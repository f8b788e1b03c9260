"""Each notebook runs top to bottom, and draws, on every shape of database an analyst really
has (``tests/nb_fixture.py``: built from one day polled by the real job); the plotting helpers
draw gaps as gaps and time axes readable for any span."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jupytext
import matplotlib
import nbformat
import numpy as np
import pandas as pd
import pytest
from tencent_desk import notebook
from tencent_desk.analysis import event_metrics, record_metrics, timeline_metrics
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.models import snapshot
from tencent_desk.notebook import plottable, shade_gaps, time_axis, with_breaks
from tencent_desk.planning.choices import PlanError
from tencent_desk.readers import warehouse
from tencent_desk.readers.snapshot import Reader
from tencent_desk.readers.window import data_days
from tencent_desk.run.publish import publish

from tests.nb_fixture import ON_POSTGRES, SHAPES, build_shape, build_weeks

from .support import cli
from .support.notebooks import (
    KERNEL,
    NAMES,
    NOTEBOOKS,
    Ran,
    execute,
    install_kernel_spec,
    run_inline,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# Shapes with waits and chats to draw: every figure of every notebook appears.
FULL = {"one_day", "several_days", "failed_day"}
EXACT = {"one_day", "several_days", "single_run"}  # failed_day's last day: polls only


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernel spec running this interpreter (the venv's), found before any other."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(install_kernel_spec(tmp_path_factory.mktemp("kernel"))))
        # a headless CI may set this; the notebooks must still draw inline
        mp.setenv("MPLBACKEND", "Agg")
        yield KERNEL


# Charts each notebook draws whatever the data (an empty one says so), and those it draws
# only with data: staffing's busiest hour, the records notebook's with records in the window.
ALWAYS = {"queue": 4, "agent_occupancy": 3, "staffing": 1, "records": 0, "planning": 1}
# planning: no shape has the two weeks of history a forecast needs (a message instead);
# test_planning_notebook_on_weeks runs it where it has
WITH_DATA = {"queue": 0, "agent_occupancy": 0, "staffing": 1, "records": 4, "planning": 0}
HAS_RECORDS = {"one_day", "several_days", "single_run"}  # failed_only's record run failed
# The several days' window: Thursday to Monday, the weekend between without any run.
WINDOW = {"DESK_FROM": "2026-01-01", "DESK_TO": "2026-01-05"}
CASES = ([(shape, {}, "duckdb") for shape in SHAPES]
         + [("several_days", WINDOW, "duckdb"), ("failed_day", WINDOW, "duckdb")]
         + [(shape, {}, "postgres") for shape in ON_POSTGRES]
         + [("several_days", WINDOW, "postgres")])
IDS = [s + ("-window" if e else "") + ("" if d == "duckdb" else f"-{d}") for s, e, d in CASES]
# Each notebook in a whole Jupyter kernel once, the three kinds of case between them: a
# DuckDB file with callbacks, records and the simulator's truth; several days from
# PostgreSQL; nothing complete at all (the planning notebook's forecast in a kernel:
# test_planning_notebook_on_weeks). Every case runs every notebook's cells in this process
# (test_notebook_draws), where a kernel's start and imports do not cost seconds each.
IN_KERNEL = [("queue", "one_day"), ("agent_occupancy", "several_days-window-postgres"),
             ("staffing", "failed_only"), ("records", "several_days-window-postgres"),
             ("planning", "one_day")]


def _read_case(shape: str, env: dict[str, str], destination: str,
               request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a notebook reads the case by."""
    _read(request.getfixturevalue("shapes" if destination == "duckdb" else "pg_shapes")[shape],
          env, monkeypatch)


def _read(where: Path | str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a notebook reads a DuckDB file (a Path) or a PostgreSQL database (a
    URL) by, with ``env``'s window."""
    if isinstance(where, Path):
        monkeypatch.setenv("DESK_DUCKDB", str(where))
    else:
        monkeypatch.setenv("DESK_DESTINATION", "postgres")
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", where)
    for key in ("DESK_FROM", "DESK_TO", "DESK_COMPARE", "DESK_APP"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _check(name: str, shape: str, env: dict[str, str], ran: Ran) -> None:
    """What a notebook must show on a case, whoever ran it."""
    # NA reaching a chart or a division shows up as a warning long before it is an error
    assert not ran.warned, ran.warned
    # the window read: the one asked for, else the latest day with data (the Monday)
    assert ("2026-01-01 to 2026-01-06 UTC" if env else "2026-01-05 to 2026-01-06 UTC") in ran.text
    if name == "queue" and shape in FULL | {"nothing_queued"}:
        # each figure says what it rests on: callbacks and records, or polls alone
        polls_only = shape in {"failed_day", "nothing_queued"}
        assert ("bounded by polls" if polls_only else "exact (callbacks / records)") in ran.text
    # every time exact (callbacks and records on each day shown): the cross-checks that
    # follow each session's polls are skipped, and said; elsewhere some rest on polls
    if name in ("queue", "agent_occupancy", "staffing"):
        assert (timeline_metrics.POLLS_SKIPPED in ran.text) == (shape in EXACT), (name, shape)
    # a single run loaded the morning's callbacks and records: the timeline is full
    has_data = shape in FULL | {"single_run"} and (name != "records" or shape in HAS_RECORDS)
    expected = ALWAYS[name] + (WITH_DATA[name] if has_data else 0)
    assert ran.images == expected, f"{name} drew {ran.images} figures on {shape}"


def _in_kernel(nb: nbformat.NotebookNode) -> Ran:
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    warned = [out.text for out in outputs
              if out.output_type == "stream" and out.name == "stderr" and "Warning" in out.text]
    text = "\n".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                     for out in outputs)
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    return Ran(text, len(images), warned)


@pytest.mark.parametrize("shape, env, destination", CASES, ids=IDS)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_draws(name: str, shape: str, env: dict[str, str], destination: str,
                        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every notebook's cells, every figure, on every case (in this process)."""
    _read_case(shape, env, destination, request, monkeypatch)
    _check(name, shape, env, run_inline(name))


@pytest.mark.parametrize("name, shape, env, destination", [
    # make check's one notebook on one shape
    pytest.param(name, *CASES[IDS.index(case)], id=f"{name}-{case}",
                 marks=[pytest.mark.check] if (name, case) == ("queue", "one_day") else [])
    for name, case in IN_KERNEL])
def test_notebook_runs_in_jupyter(name: str, shape: str, env: dict[str, str],
                                  destination: str, request: pytest.FixtureRequest,
                                  kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The .ipynb itself, top to bottom in a Jupyter kernel, draws inline as it should."""
    _read_case(shape, env, destination, request, monkeypatch)
    _check(name, shape, env, _in_kernel(execute(name)))  # raises on the first failing cell


def test_planning_notebook_on_weeks(demo_day: Path, kernel: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With three weeks of history the planning notebook forecasts the next day of each
    agent group, checks the Monday's plan against what came, and compares the models:
    three figures."""
    weeks = build_weeks(demo_day, tmp_path / "weeks.duckdb", two_groups=True)
    publish(weeks)
    monkeypatch.setenv("DESK_DUCKDB", str(weeks))
    for key in ("DESK_FROM", "DESK_TO", "DESK_COMPARE", "DESK_DESTINATION"):
        monkeypatch.delenv(key, raising=False)
    nb = execute("planning")
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "\n".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                     for out in outputs)
    assert "not planned" not in text and "no forecast" not in text
    assert "wape" in text and "coverage_80" in text
    assert len([out for out in outputs if "image/png" in out.get("data", {})]) == 3
    ran = run_inline("planning")
    # the forecast's table shows every group, not the first group's day
    (forecast_cell,) = [c for c in nb.cells if c.cell_type == "code"
                        and c.source.startswith("if ahead is not None:") and "display(" in c.source]
    table = "\n".join(out.get("data", {}).get("text/plain", "") for out in forecast_cell.outputs)
    groups = set(ran.names["ahead"].group)
    assert len(groups) > 1 and all(group in table for group in groups), (groups, table)
    # the Monday's data ends in the afternoon: its plan is compared until then only
    end, step = ran.names["desk"].until, ran.names["STEP"]
    assert (ran.names["against"].interval_start + step).max() <= end < ran.names["next_day"]
    assert "where the data ends; the intervals after it are not" in text
    # the models side by side: the concurrency model is the plan's own, with the handling
    # times by chats held it measured, so at the agents planned it predicts what the plan does
    top, agents = ran.names["top"], list(ran.names["agents"])
    levels = ran.names["models"]["concurrency model"]
    assert levels[agents.index(int(top.agents))] == pytest.approx(float(top.service_level))


# What the first line says of a window without a single poll.
NO_POLL = "no poll in the window: the figures drawn from polls are empty"
# A day never polled, on each destination (tests/support/fixtures.py).
UNPOLLED = {"duckdb": "unpolled_day", "postgres": "pg_unpolled_day"}
# Why its default window is its Monday, though the Tuesday has data (callbacks).
PASSED_OVER = "(the default: the latest day with data, 2026-01-06, has 0 sessions begun so far)"


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_without_polls(name: str, destination: str,
                                     request: pytest.FixtureRequest,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A database loaded by the receiver and the records job alone, never polled: every
    notebook runs on its last full day and says in one line that the figures of polls are
    empty; the records' arrivals are drawn still, with no polls beside them."""
    _read(request.getfixturevalue(UNPOLLED[destination]), {}, monkeypatch)
    ran = run_inline(name)
    assert not ran.warned, ran.warned
    assert NO_POLL in ran.text
    # the Monday, not the Tuesday whose first minutes saw the Monday's last sessions end
    assert "window 2026-01-05 to 2026-01-06 UTC" in ran.text
    if destination == "duckdb":  # a server's days are those of its runs and sessions only
        assert PASSED_OVER in ran.text
    if name == "records":
        arrivals = ran.names["table"]
        assert arrivals.records.sum() > 0 and "polls" not in arrivals


def test_records_truth_is_the_windows(demo_day: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The records notebook's truth is the window's, as its records are: on the Monday, the
    one simulated day of several, records and truth agree on abandonment and the truth's
    handling time is the day's; on the Thursday (a copy of it, without truth) the truth has
    nothing to say, of arrivals, abandonment or handling time."""
    db = build_shape(demo_day, "several_days", tmp_path / "several.duckdb", truth=True)
    publish(db)
    for day, truth_known in (("2026-01-05", True), ("2026-01-01", False)):
        _read(db, {"DESK_FROM": day, "DESK_TO": day}, monkeypatch)
        ran = run_inline("records")
        records, _, true = ran.names["rows"]["abandonment rate"]
        true_handling = ran.names["rows"]["handling time, mean (s)"][2]
        assert records > 0, day
        if truth_known:
            assert true == pytest.approx(records, abs=0.005)
            # exact callbacks and records: the timeline's handling time is the truth's
            desk = notebook.open_desk()
            try:
                handled = timeline_metrics.sessions(desk.con, desk.since, desk.until).handle_s
            finally:
                desk.source.close()
            assert true_handling == pytest.approx(handled.mean(), rel=0.01), day
        else:
            assert math.isnan(true) and ran.names["table"]["truth"].isna().all(), day
            assert math.isnan(true_handling), day
        assert ran.names["table"].index.min() >= pd.Timestamp(day, tz="UTC"), day


def test_staffing_notebook_shows_every_group_within_its_window(
        shapes: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The busiest hour of each agent group is shown (a table inside an if is no cell's
    value), and neither table has an hour past the window: a chat queued in its last
    minutes and answered after it is no hour of the window."""
    end = pd.Timestamp("2026-01-05T10:00Z")
    _read(shapes["one_day"], {"DESK_FROM": "2026-01-05T09:00", "DESK_TO": str(end)},
          monkeypatch)
    ran = run_inline("staffing")
    busiest = ran.names["busiest_per_group"]
    assert len(busiest) and all(group in ran.text for group in busiest.group)
    for table in (ran.names["table"], ran.names["by_group"]):
        assert table.interval_start.max() < end


@pytest.mark.parametrize(("key", "value"), [("DESK_TARGET", "1.5:60"),
                                            ("DESK_INTERVAL", "20")])
def test_planning_notebook_names_its_variable(shapes: dict[str, Path], key: str, value: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting the planning notebook cannot read is one line naming the variable, not
    the command line's option."""
    _read(shapes["one_day"], {}, monkeypatch)
    monkeypatch.setenv(key, value)
    with pytest.raises(PlanError) as caught:
        run_inline("planning")
    assert str(caught.value).startswith(f"{key} {value!r}"), caught.value


def test_planning_notebook_without_polls_in_jupyter(unpolled_day: Path, kernel: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The .ipynb in a kernel, as an analyst runs it, on a database never polled."""
    _read(unpolled_day, {}, monkeypatch)
    text = _in_kernel(execute("planning")).text
    assert NO_POLL in text and PASSED_OVER in text


def test_a_window_asked_is_read_as_asked(unpolled_day: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The day passed over by default is read when asked for (DESK_FROM on it), without
    the note; DESK_FROM alone ends the window where the default would."""
    for env, window, note in (({"DESK_FROM": "2026-01-06"}, ("2026-01-06", "2026-01-07"), ""),
                              ({"DESK_FROM": "2026-01-04"}, ("2026-01-04", "2026-01-06"),
                               PASSED_OVER[1:-1])):
        _read(unpolled_day, env, monkeypatch)
        desk = notebook.open_desk()
        desk.source.close()
        assert (desk.since, desk.window.until) == tuple(map(_utc, window))
        assert desk.chosen == note


# A long window (more than five days): the period from the interval tables, and the latest
# day's detail. It starts before the first load (the Thursday): one line says which days.
LONG = {"DESK_FROM": "2025-12-29", "DESK_TO": "2026-01-05"}
# The period's charts each notebook draws when the interval tables have rows in it.
OVERVIEW_IMAGES = {"queue": 3, "agent_occupancy": 1, "staffing": 2, "records": 0}
LONG_CASES = [(shape, "duckdb") for shape in SHAPES] + [("several_days", "postgres")]


@pytest.mark.parametrize("shape, destination", LONG_CASES,
                         ids=[s + ("" if d == "duckdb" else f"-{d}") for s, d in LONG_CASES])
@pytest.mark.parametrize("name", list(OVERVIEW_IMAGES))
def test_notebook_runs_a_long_window(name: str, shape: str, destination: str,
                                     request: pytest.FixtureRequest,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every notebook that reads a window, on every shape, with a window of eight days: it
    reads the period from the interval tables (its charts drawn where they have rows), says
    which days the data covers, and keeps the per-session detail of the latest day, drawn
    as for that day."""
    _read_case(shape, LONG, destination, request, monkeypatch)
    ran = run_inline(name)
    assert not ran.warned, ran.warned
    first = "2026-01-01" if shape in ("several_days", "failed_day") else "2026-01-05"
    if name != "records":
        assert "period 2025-12-29 to 2026-01-06 UTC" in ran.text
        assert "window 2026-01-05 to 2026-01-06 UTC" in ran.text
    assert f"starts before the first load ({first})" in ran.text
    covered = "interval tables cover 0 day(s)" not in ran.text
    has_data = shape in FULL | {"single_run"} and (name != "records" or shape in HAS_RECORDS)
    expected = (ALWAYS[name] + (WITH_DATA[name] if has_data else 0)
                + (OVERVIEW_IMAGES[name] if covered else 0))
    assert ran.images == expected, f"{name} drew {ran.images} figures on {shape}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.check
def test_notebook_is_paired_and_stripped(name: str) -> None:
    """The .ipynb holds the cells of its .py script, and no outputs."""
    script = jupytext.read(NOTEBOOKS / f"{name}.py")
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert [c.source for c in script.cells] == [c.source for c in notebook.cells], (
        f"run `jupytext --sync notebooks/{name}.py`"
    )
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert all(not c.get("outputs") for c in notebook.cells)


def test_script_runs_headless(shapes: dict[str, Path], tmp_path: Path) -> None:
    """`python notebooks/queue.py` works too: no display, and no shadowed stdlib queue."""
    env = os.environ | {"DESK_DUCKDB": str(shapes["one_day"]), "MPLBACKEND": ""}
    env.pop("DISPLAY", None)
    done = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "queue.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("simulator truth: yes") == 1  # ran once, not again as `queue`


@pytest.mark.check
def test_analysis_imports_neither_dlt_nor_the_client() -> None:
    """A notebook on a DuckDB file needs neither dlt nor the API client: importing them
    cost each notebook about 0.6 s. (The source still imports from the package.)"""
    readers = ("from tencent_desk import notebook\n"
               "from tencent_desk.analysis import erlang, event_metrics, poll_metrics\n"
               "from tencent_desk.analysis import record_metrics, timeline_metrics\n"
               "from tencent_desk.simulator import truth\n")
    assert cli.loaded_after(readers, ("dlt", "aiohttp", "httpx")) == []
    assert cli.loaded_after(readers + "from tencent_desk import tencent_desk\n",
                            ("dlt",)) == ["dlt"]


def test_shapes_are_what_they_say(shapes: dict[str, Path]) -> None:
    """The fixture really builds the databases the notebooks are run on."""
    import duckdb

    def one(path: Path, sql: str) -> object:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(sql).fetchall()[0][0]

    days = "SELECT count(DISTINCT started_at::DATE) FROM tencent_desk.runs WHERE status = '{}'"
    assert one(shapes["several_days"], days.format("complete")) == 3
    assert one(shapes["several_days"], "SELECT count(*) FROM information_schema.tables "
                                       "WHERE table_schema = 'desk_simulator'") == 0
    assert one(shapes["failed_day"], "SELECT count(DISTINCT status) FROM tencent_desk.runs "
                                     "WHERE status <> 'complete'") == 3
    assert one(shapes["failed_day"], "SELECT count(*) FROM tencent_desk.session_states s JOIN "
                                     "tencent_desk.runs USING (run_id) "
                                     "WHERE status <> 'complete'") == 0
    assert one(shapes["nothing_queued"], "SELECT count(*) FROM tencent_desk.session_states "
                                         "WHERE state IN ('queuing', 'waiting_for_agent', "
                                         "'agent')") == 0
    assert one(shapes["single_run"], "SELECT count(*) FROM tencent_desk.runs") == 1
    assert one(shapes["failed_only"], "SELECT count(*) FROM tencent_desk.runs "
                                      "WHERE status = 'complete'") == 0
    assert one(shapes["one_day"], "SELECT count(*) FROM desk_simulator.truth") > 0


# --- The plotting helpers -------------------------------------------------------------------


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.check
def test_plottable_turns_na_into_nan() -> None:
    frame = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "ok": [True, False],
                          "t": [_t("2026-01-05 09:00"), _t("2026-01-05 10:00")]})
    shown = plottable(frame)
    assert shown.n.dtype == np.float64 and np.isnan(shown.n[1]) and shown.n[0] == 1
    assert shown.ok.dtype == bool and shown.t.equals(frame.t)


@pytest.mark.check
def test_with_breaks_at_runs_not_complete_and_long_gaps() -> None:
    at = pd.DatetimeIndex([_t(f"2026-01-05 09:{m:02d}") for m in (0, 10, 20, 30)]
                          + [_t("2026-01-06 09:00")])
    frame = pd.DataFrame({"waiting": pd.array([1, 0, 2, 0, 3], dtype="Int64")}, index=at)
    shown = with_breaks(frame, pd.Series([_t("2026-01-05 09:15")]), 600.0)
    assert shown.waiting.dtype == np.float64
    breaks = shown.index[shown.waiting.isna()]
    # the failed run, and one usual gap after the last poll before the night
    assert list(breaks) == [_t("2026-01-05 09:15"), _t("2026-01-05 09:40")]
    assert shown.waiting.dropna().tolist() == [1, 0, 2, 0, 3]  # zeros stay zeros
    assert with_breaks(frame.iloc[:1], pd.Series([], dtype="datetime64[us, UTC]"),
                       None).waiting.tolist() == [1.0]


@pytest.mark.check
def test_top_columns_keeps_the_total() -> None:
    frame = pd.DataFrame({f"a{i}": [i, 2 * i] for i in range(15)})
    top = notebook.top_columns(frame, 10, "other agents")
    assert list(top.columns[:2]) == ["a14", "a13"] and top.columns[-1] == "other agents (5)"
    assert len(top.columns) == 11 and list(top["other agents (5)"]) == [10, 20]
    pd.testing.assert_series_equal(top.sum(axis=1), frame.sum(axis=1))
    # one column left over is shown as itself, not as a band of one
    assert list(notebook.top_columns(frame.iloc[:, :11], 10).columns) == [
        f"a{i}" for i in range(10, -1, -1)]


@pytest.mark.check
def test_shade_gaps_merges_a_night_into_one_span() -> None:
    fig, ax = plt.subplots()
    hour = pd.Timedelta(hours=1)
    starts = pd.Series([_t("2026-01-05 13:00") + n * hour for n in range(20)]
                       + [_t("2026-01-06 12:00")])
    shade_gaps(ax, starts, hour)
    assert len(ax.patches) == 2
    plt.close(fig)


@pytest.mark.parametrize("start, end, freq", [
    ("2026-01-05 09:00", "2026-01-05 13:00", "5min"),    # a morning
    ("2026-01-01 09:00", "2026-01-05 18:00", "15min"),   # days across a weekend
    ("2025-12-01 00:00", "2026-01-31 00:00", "1h"),      # two months
])
@pytest.mark.check
def test_time_axis_labels_are_few_and_apart(start: str, end: str, freq: str) -> None:
    """Whatever the span, the tick labels do not overlap and there are a readable few."""
    times = pd.date_range(start, end, freq=freq, tz="UTC")
    fig, ax = plt.subplots(figsize=(11, 3.8))
    ax.bar(times, np.arange(len(times)), width=pd.Timedelta(freq))
    time_axis(ax, times)
    fig.canvas.draw()
    boxes = [label.get_window_extent() for label in ax.get_xticklabels()
             if label.get_text() and ax.get_xlim()[0] <= label.get_position()[0]
             <= ax.get_xlim()[1]]
    assert 3 <= len(boxes) <= 10
    assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes))
    plt.close(fig)


@pytest.mark.parametrize("start, end", [
    ("2026-01-05 00:00", "2026-01-05 13:00"),   # a day by the hour
    ("2026-01-01 00:00", "2026-01-05 13:00"),   # days
])
@pytest.mark.check
def test_time_axis_labels_stay_apart_on_narrow_axes(start: str, end: str) -> None:
    """Two charts side by side (the staffing notebook's hourly demand) keep labels apart."""
    hours = pd.date_range(start, end, freq="1h", tz="UTC")
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax in axes:
        ax.bar(hours, np.arange(len(hours)), width=pd.Timedelta(hours=0.9), align="edge")
        time_axis(ax, hours)
    fig.tight_layout()
    fig.canvas.draw()
    for ax in axes:
        boxes = [label.get_window_extent() for label in ax.get_xticklabels()
                 if label.get_text() and ax.get_xlim()[0] <= label.get_position()[0]
                 <= ax.get_xlim()[1]]
        assert len(boxes) >= 3
        assert all(a.x1 + 5 < b.x0 for a, b in itertools.pairwise(boxes))
    plt.close(fig)


@pytest.mark.check
def test_time_axis_gives_a_single_poll_a_window() -> None:
    fig, ax = plt.subplots()
    ax.plot([_t("2026-01-05 09:00")], [2], "o")
    time_axis(ax, pd.DatetimeIndex([_t("2026-01-05 09:00")]))
    lo, hi = ax.get_xlim()
    assert hi - lo == pytest.approx(20 / 24 / 60)  # 20 minutes, in matplotlib days
    plt.close(fig)


def test_metrics_used_for_gaps(shapes: dict[str, Path]) -> None:
    """On several days the hourly demand has NA for every hour without a complete run."""
    import duckdb

    with duckdb.connect(str(shapes["failed_day"]), read_only=True) as con:
        demand = metrics.demand_per_interval(con, interval="1h")
        stopped = metrics.incomplete_runs(con)
    gaps = demand[demand.n_polls == 0]
    assert len(gaps) > 48 and gaps.arrivals.isna().all() and gaps.aht_s.isna().all()
    assert set(stopped.status) == {"failed", "interrupted", "outage"}


@pytest.mark.parametrize("shape", ON_POSTGRES)
@pytest.mark.parametrize("window", [
    None, (date(2026, 1, 5), date(2026, 1, 5)),
    # date-times, as the notebooks' window gives: the rows inside it, on either side
    (datetime(2026, 1, 5, 9, 30, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))])
def test_metrics_on_postgres_equal_metrics_on_duckdb(shape: str, window: tuple | None,
                                                      shapes: dict[str, Path],
                                                      pg_shapes: dict[str, str]) -> None:
    """The same window read from PostgreSQL and from the DuckDB snapshot gives the same
    figures, every metric's SQL run unchanged."""
    since, until = window or (None, None)
    remote = warehouse.Reader(warehouse.destination("postgres", pg_shapes[shape]),
                              metrics.DEFAULT_DATASET, since, until)
    pg, local = remote.connection(), Reader(shapes[shape], since, until).connection()
    assert remote.pulled["session_states"] > 0
    for figure in (metrics.complete_runs, metrics.incomplete_runs, metrics.queue_per_poll,
                   metrics.waiting_per_poll, metrics.queue_per_interval, metrics.waits,
                   metrics.wait_outcomes, metrics.agent_concurrency_per_poll,
                   metrics.demand_per_interval, metrics.load_per_interval,
                   event_metrics.events_per_interval,
                   timeline_metrics.sessions, record_metrics.recorded_sessions):
        a, b = (figure(con) for con in (pg, local))
        key = list(a.columns)
        pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True),
                                      b.sort_values(key).reset_index(drop=True))
        assert len(a) > 0 or figure is metrics.incomplete_runs


# --- The window ---------------------------------------------------------------------------


def _w(env: dict[str, str], latest: str | None = "2026-01-05") -> notebook.Window:
    return notebook.window(env, None if latest is None else date.fromisoformat(latest))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.check
def test_window_coverage_says_what_was_found_and_what_to_set() -> None:
    """A window with no data: one line with the data's span and what to set; one partly
    covered (before the first load, days missing between): which days it covers."""
    days = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5)]
    with pytest.raises(ValueError) as found:
        notebook.coverage(_w({"DESK_FROM": "2026-02-01", "DESK_TO": "2026-02-02"}), days)
    assert str(found.value) == (
        "no data in the window 2026-02-01 to 2026-02-03 UTC: data from 2026-01-01 to "
        "2026-01-05 (3 days); set DESK_FROM and DESK_TO within it")
    note = notebook.coverage(_w({"DESK_FROM": "2025-12-30", "DESK_TO": "2026-01-05"}), days)
    assert note == (
        "window 2025-12-30 to 2026-01-06 UTC starts before the first load (2026-01-01): "
        "covers 2026-01-01..2026-01-02, 2026-01-05 only (3 of 7 days); set "
        "DESK_FROM=2026-01-01 DESK_TO=2026-01-05 for those")
    assert notebook.coverage(_w({"DESK_FROM": "2026-01-01", "DESK_TO": "2026-01-02"}),
                             days) is None


def test_window_defaults_to_the_latest_day_with_data() -> None:
    win = _w({})
    assert (win.since, win.until) == (_utc("2026-01-05"), _utc("2026-01-06"))
    # day over day by default; a day with no data in it compares with nothing later
    assert win.previous == notebook.Window(_utc("2026-01-04"), _utc("2026-01-05"), "none")
    empty = _w({}, latest=None)  # nothing published yet: today
    assert empty.span == timedelta(days=1)


@pytest.mark.check
def test_the_default_day_passes_over_a_days_tail() -> None:
    """A latest day on which fewer sessions began than in an hour of the day before (the
    sessions that ended after midnight, loaded by the nightly records run; a day only just
    begun) is passed over for the day before, saying why; from an hour's worth on, or with
    nothing the day before, the latest day is read."""
    monday, tuesday = date(2026, 1, 5), date(2026, 1, 6)
    assert notebook.default_day(tuesday, {monday: 2400, tuesday: 3}) == (
        monday, "the default: the latest day with data, 2026-01-06, has 3 sessions begun so far")
    assert notebook.default_day(tuesday, {monday: 2400})[0] == monday
    assert notebook.default_day(tuesday, {monday: 2400, tuesday: 100}) == (tuesday, "")
    assert notebook.default_day(tuesday, {tuesday: 1}) == (tuesday, "")


@pytest.mark.check
def test_window_dates_and_date_times() -> None:
    # DESK_TO as a date: through the end of that day
    win = _w({"DESK_FROM": "2026-01-01", "DESK_TO": "2026-01-05"})
    assert (win.since, win.until) == (_utc("2026-01-01"), _utc("2026-01-06"))
    win = _w({"DESK_FROM": "2026-01-05T09:30", "DESK_TO": "2026-01-05 12:00:00Z"})
    assert (win.since, win.until) == (_utc("2026-01-05T09:30"), _utc("2026-01-05T12:00"))
    # an offset is honoured, and the result is UTC
    win = _w({"DESK_FROM": "2026-01-05T17:30+08:00", "DESK_TO": "2026-01-05T18:30+08:00"})
    assert (win.since, win.until) == (_utc("2026-01-05T09:30"), _utc("2026-01-05T10:30"))
    # one end given: the other from that end's day, or the latest day with data
    assert _w({"DESK_TO": "2026-01-02"}).since == _utc("2026-01-02")
    assert _w({"DESK_TO": "2026-01-02T10:00"}).since == _utc("2026-01-02")
    assert _w({"DESK_FROM": "2026-01-01"}).until == _utc("2026-01-06")
    assert _w({"DESK_FROM": "2026-01-09"}).until == _utc("2026-01-10")


@pytest.mark.check
def test_window_comparison() -> None:
    week = _w({"DESK_FROM": "2026-01-05", "DESK_TO": "2026-01-11"})
    assert week.shift == timedelta(days=7)  # a week or longer: week over week
    two = _w({"DESK_FROM": "2026-01-04", "DESK_TO": "2026-01-05"})
    assert two.shift == timedelta(days=2)  # the two days before, not overlapping
    same_weekday = _w({"DESK_COMPARE": "week"})
    assert same_weekday.previous is not None
    assert same_weekday.previous.since == _utc("2025-12-29")
    assert _w({"DESK_COMPARE": "none"}).previous is None


def _desk(horizon: str | None, window: dict[str, str] | None = None) -> notebook.Desk:
    return notebook.Desk(None, Path("x.duckdb"), "tencent_desk", False, 60.0,  # type: ignore[arg-type]
                         _w(window or {}), horizon=None if horizon is None else _utc(horizon))


@pytest.mark.check
def test_a_window_past_its_data_ends_where_the_data_does() -> None:
    """Today at 15:04: nothing is counted past the last poll, and the comparison is
    yesterday until the same minute, not all of yesterday against part of today."""
    live = _desk("2026-01-05T15:04:00.250")
    assert (live.since, live.until) == (_utc("2026-01-05"), _utc("2026-01-05T15:05"))
    assert live.compared_with == notebook.Window(_utc("2026-01-04"),
                                                 _utc("2026-01-04T15:05"), "none")
    assert notebook.instants(live.shown)[-1] == pd.Timestamp("2026-01-05T15:00Z")
    # this week so far against last week so far: the whole window says how far back
    week = _desk("2026-01-08T15:04", window={"DESK_FROM": "2026-01-05", "DESK_TO": "2026-01-11"})
    assert week.compared_with == notebook.Window(_utc("2025-12-29"),
                                                 _utc("2026-01-01T15:05"), "none")
    assert _desk("2026-01-05T23:59:30").until == _utc("2026-01-06")
    # no horizon (an earlier window, shown whole), or data past the window: as chosen
    for horizon in (None, "2026-01-04T12:00", "2026-01-06T12:00"):
        assert _desk(horizon).shown == _w({}), horizon


@pytest.mark.parametrize("env, says", [
    ({"DESK_FROM": "yesterday"}, "DESK_FROM='yesterday' is not a time: give an ISO date"),
    ({"DESK_TO": "2026-13-01"}, "DESK_TO='2026-13-01' is not a time"),
    # as given: not the exclusive end a date means (2026-01-05)
    ({"DESK_FROM": "2026-01-05", "DESK_TO": "2026-01-04"},
     "DESK_FROM='2026-01-05' must be before DESK_TO='2026-01-04'"),
    ({"DESK_FROM": "2026-01-05T10:00", "DESK_TO": "2026-01-05T10:00"}, "must be before"),
    ({"DESK_COMPARE": "month"}, "DESK_COMPARE='month': give one of auto, day, week, none"),
])
@pytest.mark.check
def test_window_bad_values_say_what_is_accepted(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError) as caught:
        _w(env)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_dataset_is_named_with_those_held(shapes: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _read(shapes["one_day"], {}, monkeypatch)
    monkeypatch.setenv("DESK_DATASET", "nope")
    with pytest.raises(ValueError) as caught:
        notebook.open_desk()
    assert str(caught.value) == (f"no dataset 'nope' in {shapes['one_day']}: it holds "
                                 "desk_simulator, tencent_desk; check DESK_DATASET")


def test_latest_day_with_data(shapes: dict[str, Path]) -> None:
    assert data_days(shapes["several_days"])[-1] == date(2026, 1, 5)


def test_a_day_is_shown_to_its_last_observation(shapes: dict[str, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo day's data stops in the afternoon: the notebooks show it to the minute
    after its last complete run or callback (records, later, tell only of ended sessions),
    and say so."""
    for name in ("DESK_FROM", "DESK_TO", "DESK_APP", "DESK_DESTINATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DESK_DUCKDB", str(shapes["one_day"]))
    desk = notebook.open_desk()
    con = desk.con
    last = max(con.execute(sql).fetchone()[0] for sql in (
        "SELECT max(started_at) FROM tencent_desk.runs WHERE status = 'complete'",
        "SELECT max(event_time) FROM tencent_desk.session_events"))
    records_end = con.execute("SELECT max(ended_at) FROM tencent_desk.session_records"
                              ).fetchone()[0]
    assert desk.horizon == last and desk.horizon.hour < 23 and records_end > last
    assert desk.until == (pd.Timestamp(last).floor("min") + pd.Timedelta(minutes=1))
    assert desk.window.until - desk.window.since == timedelta(days=1)
    assert f"(data until {desk.until:%Y-%m-%d %H:%M})" in notebook.describe(desk)
    # an earlier day is shown whole, its quiet evening too: only the newest data is cut
    monkeypatch.setenv("DESK_DUCKDB", str(shapes["several_days"]))
    monkeypatch.setenv("DESK_FROM", "2026-01-02")
    monkeypatch.setenv("DESK_TO", "2026-01-02")
    earlier = notebook.open_desk()
    assert earlier.horizon is None and earlier.until == _utc("2026-01-03")
    assert "data until" not in notebook.describe(earlier)


def test_a_long_window_without_its_period_is_its_latest_day(
        shapes: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """``open_desk(period=False)`` (the planning notebook's): a long window gives its
    latest day with data in detail and no period to draw; with the period, the whole
    window is kept beside that day."""
    for name in ("DESK_APP", "DESK_DESTINATION", "DESK_COMPARE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DESK_DUCKDB", str(shapes["several_days"]))
    for key, value in LONG.items():
        monkeypatch.setenv(key, value)
    alone, with_period = notebook.open_desk(period=False), notebook.open_desk()
    try:
        assert (alone.since, alone.window.until) == (_utc("2026-01-05"), _utc("2026-01-06"))
        assert alone.period is None and alone.period_source is None
        # the line naming the window says it was narrowed; with the period, the period does
        assert ("(the latest day with data of the window asked, 2025-12-29 to 2026-01-06 UTC"
                in alone.window_line)
        assert with_period.chosen == ""
        assert (with_period.since, with_period.period.since) == (
            alone.since, _utc("2025-12-29"))
    finally:
        for desk in (alone, with_period):
            for source in (desk.source, desk.period_source):
                if source is not None:
                    source.close()


def test_key_figures_against_an_empty_comparison_window_are_a_gap(
        shapes: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first day has no day before it: no previous figures and no change, not a
    change against zero; the next day's change is against the first's figures."""
    for name in ("DESK_APP", "DESK_DESTINATION", "DESK_COMPARE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DESK_DUCKDB", str(shapes["several_days"]))
    tables = {}
    for day in ("2026-01-01", "2026-01-02"):
        monkeypatch.setenv("DESK_FROM", day)
        monkeypatch.setenv("DESK_TO", day)
        tables[day] = notebook.compared(notebook.open_desk())
    first, second = tables["2026-01-01"], tables["2026-01-02"]
    assert first.loc["sessions", "value"] > 0
    assert first.iloc[:, -2:].isna().all().all()  # previous and change
    pd.testing.assert_series_equal(second["change"], second.value - second.iloc[:, -2],
                                   check_names=False)
    assert second.iloc[:, -2].equals(first.value.rename(second.columns[-2]))


def test_a_window_limits_what_is_read(shapes: dict[str, Path]) -> None:
    """The Reader for a window reads the files of its days (one either side) only, and its
    views hold only the window's rows."""
    db = shapes["several_days"]
    reader = Reader(db, _utc("2026-01-01T10:00"), _utc("2026-01-01T11:00"))
    con = reader.connection()
    views = "\n".join(sql for (sql,) in con.execute(
        "SELECT sql FROM duckdb_views() WHERE schema_name = 'tencent_desk'").fetchall())
    assert "/2026-01-01/" in views and "/2026-01-05/" not in views
    for table, column in snapshot.WINDOW_TIMES.items():
        lo, hi, n = con.execute(
            f"SELECT min({column}), max({column}), count(*) FROM tencent_desk.{table}").fetchone()
        if table == "record_runs":  # the day's one records run started after the window
            assert n == 0
            continue
        assert n > 0 and lo >= _utc("2026-01-01T10:00") and hi < _utc("2026-01-01T11:00"), table
    # the timeline is read by day (figures at an instant need sessions begun before it)
    days = {d for (d,) in con.execute(
        "SELECT DISTINCT began_at::DATE::VARCHAR FROM tencent_desk.session_timeline").fetchall()}
    assert days == {"2026-01-01", "2026-01-02"}
    reader.close()


def test_a_notebook_with_a_bad_window_says_so(shapes: dict[str, Path], tmp_path: Path) -> None:
    env = os.environ | {"DESK_DUCKDB": str(shapes["one_day"]), "DESK_FROM": "last monday"}
    done = subprocess.run([sys.executable, str(NOTEBOOKS / "queue.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    assert "ValueError: DESK_FROM='last monday' is not a time" in done.stderr
