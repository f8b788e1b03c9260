"""What every analysis notebook does first: find the database, choose the window to read
(``DESK_FROM``/``DESK_TO``/``DESK_COMPARE``), open only that window of the snapshot the job
publishes beside it (so the job can keep writing), and set up headless-safe plots."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from tencent_desk.analysis import interval_metrics, service_level, timeline_metrics
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.analysis.timeline_metrics import source_note  # what notebooks import from here
from tencent_desk.core.clock import day_start, parse_instant
from tencent_desk.models import intervals, timeline
from tencent_desk.readers.app_lookup import app_id
from tencent_desk.readers.snapshot import Reader, missing_dataset, unreadable
from tencent_desk.readers.window import (
    data_days,
    days_of,
    ends_inside,
    held,
    observed_until,
    partly,
    ranges,
    same_point,
)
from tencent_desk.readers.window import reader as windowed
from tencent_desk.simulator import truth

if TYPE_CHECKING:  # imported where used: it brings dlt (~0.5 s) that a DuckDB file never needs
    from tencent_desk.readers import warehouse

DEMO_DATABASE = "demo.duckdb"  # what ``desk-sessions demo`` writes by default
DAY, WEEK = timedelta(days=1), timedelta(days=7)
COMPARE = ("auto", "day", "week", "none")
# A window up to this long keeps the per-session detail; a longer one reads the interval
# tables for the period (``overview``) and the per-session detail of its latest day only.
DETAIL_MAX = timedelta(days=5)
FORMS = ("an ISO date (2026-01-05) or date-time (2026-01-05T09:30, 2026-01-05 09:30:00Z, "
         "2026-01-05T17:30+08:00; UTC when no offset)")


@dataclass(frozen=True)
class Window:
    """What a notebook reads and draws: ``[since, until)`` in UTC, and the window its key
    figures are compared with (``previous``: None when not compared)."""

    since: datetime
    until: datetime
    compare: str = "auto"

    @property
    def span(self) -> timedelta:
        return self.until - self.since

    @property
    def shift(self) -> timedelta | None:
        """How far back the comparison window lies: whole days covering the window
        (day-over-day), or whole weeks (week-over-week: ``auto`` for a week or longer)."""
        unit = {"day": DAY, "week": WEEK, "none": None,
                "auto": WEEK if self.span >= WEEK else DAY}[self.compare]
        return None if unit is None else -(-self.span // unit) * unit

    @property
    def previous(self) -> Window | None:
        shift = self.shift
        return None if shift is None else Window(self.since - shift, self.until - shift, "none")

    def __str__(self) -> str:
        return f"{_stamp(self.since)} to {_stamp(self.until)} UTC"


def _stamp(at: datetime) -> str:
    return f"{at:%Y-%m-%d}" if at.time() == datetime.min.time() else f"{at:%Y-%m-%d %H:%M}"


def parse_time(name: str, text: str) -> tuple[datetime, bool]:
    """An ISO date or date-time (UTC when it names no zone) -> (UTC instant, was a date)."""
    try:
        return parse_instant(text)
    except ValueError:
        raise ValueError(f"{name}={text.strip()!r} is not a time: give {FORMS}") from None


def window(env: Mapping[str, str], latest: date | None,
           today: date | None = None) -> Window:
    """The window from ``DESK_FROM``, ``DESK_TO`` and ``DESK_COMPARE``. ``DESK_TO`` as a date
    means through the end of that day. Without ``DESK_FROM``: the day ``DESK_TO`` ends in,
    else the latest day with data (``latest``, as :func:`default_day` chose it; today when
    there is none); without ``DESK_TO``: through the end of that latest day (or of
    ``DESK_FROM``'s day if later)."""
    start = day_start(latest or today or datetime.now(UTC).date())
    given_from, given_to = env.get("DESK_FROM", "").strip(), env.get("DESK_TO", "").strip()
    until = None
    if given_to:
        until, is_date = parse_time("DESK_TO", given_to)
        until += DAY if is_date else timedelta(0)
    since = parse_time("DESK_FROM", given_from)[0] if given_from else None
    if since is None:
        since = _midnight(until - timedelta(microseconds=1)) if until else start
    if until is None:
        until = max(start, _midnight(since)) + DAY
    compare = env.get("DESK_COMPARE", "auto").strip().lower() or "auto"
    if compare not in COMPARE:
        raise ValueError(f"DESK_COMPARE={compare!r}: give one of {', '.join(COMPARE)}")
    if since >= until:  # both given (a default never ends before the start): as given
        raise ValueError(f"DESK_FROM={given_from!r} must be before DESK_TO={given_to!r} (a "
                         f"date there means through its end); give {FORMS}")
    return Window(since, until, compare)


def _midnight(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def default_day(latest: date, begun: Mapping[date, int]) -> tuple[date, str]:
    """The day read by default, and why when not ``latest`` (the latest day with data):
    the day before it when fewer sessions began on ``latest`` than in an hour of that day
    on average (``begun``: sessions begun per day). Such a day is only the tail of the one
    before (sessions that ended after midnight, loaded by a nightly records run) or has only
    just begun: a window on it would show next to nothing."""
    before = latest - DAY
    if begun.get(latest, 0) * 24 >= begun.get(before, 0):
        return latest, ""
    n = begun.get(latest, 0)
    return before, (f"the default: the latest day with data, {latest}, has {n} session"
                    f"{'' if n == 1 else 's'} begun so far")


def coverage(win: Window, days: list[date], tail: date | None = None) -> str | None:
    """What the data says of the window: raises ValueError (one line: what was found, what
    to set) when none of its days has data; a line saying which days it covers when only
    some have (before the first load, after the last, or days between); None when all do.
    ``tail``: a latest day holding only the tail of the day before (:func:`tail_day`),
    no day with data of its own: neither counted nor suggested."""
    wanted = days_of(win.since, win.until)
    first = wanted[0]
    have = sorted(set(wanted) & set(days) - {tail})
    span = (f"data from {held(days)}" if days
            else "no data at all: run the job (desk-sessions run) first")
    tail_note = (f"; {tail} holds only the tail of {tail - DAY} (sessions that ended after "
                 "midnight)") if tail in wanted else ""
    if not have:
        if tail_note:  # asked for the tail itself: read as asked, said once
            return f"window {win}{tail_note}"
        raise ValueError(f"no data in the window {win}: {span}; set DESK_FROM and DESK_TO "
                         "within it")
    if len(have) == len(wanted):
        return None
    before = f"starts before the first load ({days[0]}): " if first < days[0] else ""
    return (f"window {win} {before}covers {ranges(have)} only ({len(have)} of "
            f"{len(wanted)} days){tail_note}; set DESK_FROM={have[0]} DESK_TO={have[-1]} "
            "for those")


def tail_day(latest: date, begun: Mapping[date, int]) -> date | None:
    """``latest`` when :func:`default_day` passes it over (only the tail of the day before,
    or just begun), else None: the one rule for the default window, a long window's
    detail day and the coverage line."""
    return latest if default_day(latest, begun)[0] != latest else None


@dataclass
class Desk:
    source: Reader | warehouse.Reader
    path: Path | str  # the DuckDB file, or the destination's name
    dataset: str
    has_truth: bool
    poll_s: float | None
    window: Window
    sdkappid: int | None = None  # DESK_APP: the one app shown (several in one database)
    # the latest instant its data describes, when the window reaches the newest data
    horizon: datetime | None = None
    # a window longer than DETAIL_MAX: the whole of it, read from the interval tables by
    # ``period_source``; ``window`` is then its latest day with data, kept in detail
    period: Window | None = None
    period_source: Reader | warehouse.Reader | None = None
    # why the window is not the latest day with data, when it is the day before by default
    # (``default_day``), or not the window asked (a long one without its period)
    chosen: str = ""
    # the days with data of their own (a latest day holding only a tail left out)
    days: list[date] = field(default_factory=list)
    # where the period's data ends, when inside it: its figures are so far
    period_end: datetime | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The window of the latest published snapshot (views made again after each run), or
        of a destination server (pulled again after each load)."""
        return self.source.connection()

    @property
    def polls_only(self) -> bool:
        """No callbacks and no records in the window's data: every time is bounded by
        polls, and time without a complete run is a gap."""
        tables = {t for (t,) in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [self.dataset]).fetchall()}
        return not tables & {"session_events", "session_records"}

    @property
    def shown(self) -> Window:
        """The window as far as its data goes. A window reaching past the newest data (today,
        or the day the job stopped) ends at the minute after its last complete run or
        callback (``horizon``): nothing is counted or drawn past what was seen (a customer
        waiting at the last poll is not waiting all evening), and the comparison covers
        the same hours. An earlier window is shown whole, its quiet hours and gaps too."""
        win = self.window
        if self.horizon is None or not win.since < self.horizon < win.until:
            return win
        end = pd.Timestamp(self.horizon).floor("min") + pd.Timedelta(minutes=1)
        return Window(win.since, end.to_pydatetime(), win.compare)

    @property
    def window_line(self) -> str:
        """The window as a notebook names it: where its data ends, when before its end, and
        why it is not the latest day with data, when the default chose the day before."""
        shown = "" if self.shown == self.window else f" (data until {_stamp(self.until)})"
        return f"window {self.window}{shown}" + (f" ({self.chosen})" if self.chosen else "")

    @property
    def since(self) -> datetime:
        return self.window.since

    @property
    def until(self) -> datetime:
        return self.shown.until

    @property
    def compared_with(self) -> Window | None:
        """The comparison window: as far back as the whole window asks (a week: the week
        before), over the hours shown; None when not compared."""
        shift, shown = self.window.shift, self.shown
        return None if shift is None else Window(shown.since - shift, shown.until - shift,
                                                 "none")

    def previous(self) -> Desk | None:
        """The same data read for the comparison window, or None when not compared."""
        before = self.compared_with
        return None if before is None else _open(self.path, self.dataset, before,
                                                 self.sdkappid)


def database() -> Path:
    """``DESK_DUCKDB``, else the demo's database (``desk-sessions demo`` writes it in the
    folder it runs in); a relative path is looked for in :func:`folders`."""
    given = Path(os.environ.get("DESK_DUCKDB") or DEMO_DATABASE).expanduser()
    places = [given] if given.is_absolute() else [folder / given for folder in folders()]
    found = next((path for path in places if path.exists()), None)
    if found is None:
        raise FileNotFoundError(
            f"{given} not found in {' or '.join(str(p.parent) for p in places)}: run "
            "`desk-sessions demo` there (or `make demo` in a checkout), or set DESK_DUCKDB")
    return found


def folders() -> list[Path]:
    """Where a relative database is looked for: the working folder, then the checkout this
    package runs from (``make demo`` writes there; notebooks run in notebooks/). An
    installed wheel has no checkout around it: the working folder only."""
    here = Path.cwd()
    checkout = Path(__file__).resolve().parents[2]
    own = (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir()
    return [here, checkout] if own and checkout != here else [here]


# --- Plotting helpers: every chart's time axis and gaps (no complete run) are drawn here,
# one way for all notebooks. -----------------------------------------------------------------


def describe(desk: Desk) -> str:
    """One line on what a notebook reads: database, dataset, window, snapshots, poll
    interval, truth."""
    snapshots = metrics.complete_runs(desk.con, desk.dataset)
    if snapshots.empty and metrics.incomplete_runs(desk.con, desk.dataset).empty:
        polls = "no poll in the window: the figures drawn from polls are empty"
    else:
        if snapshots.empty:
            seen = "no complete run yet"
        else:
            first, last = snapshots.snapshot_at.min(), snapshots.snapshot_at.max()
            n = len(snapshots)
            seen = (f"{n} snapshot{'s' if n > 1 else ''} from {first:%Y-%m-%d %H:%M} "
                    f"to {last:%Y-%m-%d %H:%M} UTC")
        every = (f"polls every {desk.poll_s:.0f} s (median)" if desk.poll_s is not None
                 else "no poll interval (fewer than two snapshots)")
        polls = f"{seen}; {every}"
    app = f" (app {desk.sdkappid})" if desk.sdkappid is not None else ""
    period = "" if desk.period is None else (
        f"period {desk.period} from the interval tables; per-session detail of ")
    return (f"{desk.path} / {desk.dataset}{app}, {period}{desk.window_line}: {polls}; "
            f"simulator truth: {'yes' if desk.has_truth else 'no'}")


def plottable(frame: pd.DataFrame) -> pd.DataFrame:
    """Every numeric column as float, pandas' NA (how metrics mark a gap or an unknown in
    integer columns) as NaN: matplotlib cannot convert NA, and NaN breaks a line or leaves a
    bar out, so a gap shows as a gap."""
    return frame.apply(
        lambda c: c.astype("float64") if is_numeric_dtype(c) and not is_bool_dtype(c) else c
    )


def time_axis(ax: Axes, shown: pd.Index | pd.Series | None = None) -> None:
    """Readable time ticks on the x axis for any span: minutes or hours within a day, days
    across days, with the date once at the side (UTC, as the data). ``shown``: times that
    must be in view, padded so that even a single one gets a readable window."""
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel(ax.get_xlabel() or "UTC")
    times = _utc(shown if shown is not None else []).dropna()
    if len(times):
        pad = max((times.max() - times.min()) * 0.02, pd.Timedelta(minutes=10))
        ax.set_xlim(times.min() - pad, times.max() + pad)


def with_breaks(frame: pd.DataFrame, not_complete: pd.Series, poll_s: float | None) -> pd.DataFrame:
    """``frame`` (values at each complete run, indexed by snapshot time) for plotting: floats,
    with NaN at every run that did not complete (``not_complete``: their start times) and one
    usual gap after each long gap (``metrics.LONG_GAP``), so lines and areas break there
    rather than bridge the gap or drop to zero."""
    times = _utc(frame.index)
    breaks = [_utc(not_complete)]
    if poll_s:
        gap_after = (times[1:] - times[:-1]).total_seconds()
        long_after = times[:-1][gap_after > metrics.LONG_GAP * poll_s]
        breaks.append(long_after + pd.Timedelta(seconds=poll_s))
    blank = pd.DataFrame(np.nan, index=breaks[0].append(breaks[1:]), columns=frame.columns)
    shown = plottable(frame.set_axis(times))
    return pd.concat([shown, blank]).sort_index() if len(blank) else shown


def shade_gaps(ax: Axes, starts: pd.Series, width: pd.Timedelta) -> None:
    """Grey spans over intervals without a complete run (``starts``: their starts), merged
    where they follow each other, so a night or a weekend is one span."""
    spans: list[list[pd.Timestamp]] = []
    for start in _utc(starts).sort_values():
        if spans and spans[-1][1] == start:
            spans[-1][1] = start + width
        else:
            spans.append([start, start + width])
    for n, (start, end) in enumerate(spans):
        ax.axvspan(start, end, color="grey", alpha=0.2, lw=0,
                   label="no complete run" if n == 0 else None)


def heatmap(ax: Axes, grid: pd.DataFrame, width: pd.Timedelta, **style: object) -> QuadMesh:
    """One row per index label over time (columns: interval starts, ``width`` apart); an
    interval missing from ``grid`` or NA in it stays blank."""
    starts = _utc(grid.columns)
    full = pd.date_range(starts.min(), starts.max(), freq=width)
    values = plottable(grid.set_axis(starts, axis=1).reindex(columns=full)).to_numpy()
    edges = date2num(full.append(pd.DatetimeIndex([full[-1] + width])).to_pydatetime())
    mesh = ax.pcolormesh(edges, np.arange(len(grid) + 1), np.ma.masked_invalid(values), **style)
    ax.set_yticks(np.arange(len(grid)) + 0.5, grid.index)
    ax.invert_yaxis()
    ax.grid(False)
    time_axis(ax)
    return mesh


def top_columns(frame: pd.DataFrame, n: int = 10, rest: str = "others") -> pd.DataFrame:
    """The ``n`` columns with the largest totals, largest first, then one column summing
    the rest (named ``"<rest> (<how many>)"``): a chart of 150 agents with a legend one can
    read, and the same stacked total."""
    order = frame.sum().sort_values(ascending=False, kind="stable").index
    if len(order) <= n + 1:  # one column left over is shown as itself
        return frame[order]
    return frame[order[:n]].assign(
        **{f"{rest} ({len(order) - n})": frame[order[n:]].sum(axis=1)})


def instants(win: Window, most: int = 600) -> pd.DatetimeIndex:
    """Instants across the window at which to count queues and chats: every 5 minutes, or
    fewer over a long window (at most ``most``, on whole minutes)."""
    step = max(pd.Timedelta(minutes=5), pd.Timedelta(win.span / most).ceil("min"))
    return pd.date_range(win.since, win.until, freq=step, inclusive="left")


def compared(desk: Desk, target_s: float = 60.0,
             sessions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The key figures of the window (with bounds and what they rest on) next to those of
    its comparison window (``DESK_COMPARE``) and the change. ``sessions``: the window's
    ``timeline_metrics.sessions`` when already read."""
    if sessions is None:
        sessions = timeline_metrics.sessions(desk.con, desk.since, desk.until, desk.dataset)
    now = timeline_metrics.key_figures(sessions, target_s)
    table = now.assign(rests_on=now.exact_share.map(source_note))
    before_desk = desk.previous()
    if before_desk is not None:
        with_before = timeline_metrics.key_figures(timeline_metrics.sessions(
            before_desk.con, before_desk.since, before_desk.until, desk.dataset), target_s)
        before_desk.source.close()
        # a window with no session at all is a gap in the data, not a desk with nothing
        had = with_before.loc["sessions", "value"] > 0
        previous = with_before.value if had else float("nan")
        table[f"previous ({before_desk.window})"] = previous
        table["change"] = now.value - previous
    return table


def _utc(times: pd.Index | pd.Series | list) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(times)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def open_desk(period: bool = True) -> Desk:
    """The window (``DESK_FROM``, ``DESK_TO``, ``DESK_COMPARE``) of the database's snapshot
    (or of a server destination: ``DESK_DESTINATION``), one app of several (``DESK_APP``),
    its dataset (``DESK_DATASET``), and plot defaults. ``period=False``: a long window's
    latest day only, without the reader of its interval tables (a notebook that draws no
    period)."""
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")  # run as a plain script: draw off-screen
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.figsize": (11, 3.8), "axes.grid": True, "grid.alpha": 0.3})
    dataset = os.environ.get("DESK_DATASET", "tencent_desk")
    app = os.environ.get("DESK_APP", "").strip() or None
    server = os.environ.get("DESK_DESTINATION", "").strip().lower()
    where: Path | str
    if server not in ("", "duckdb"):
        where = server
    else:
        where = database()
        if why := unreadable(where):
            raise FileNotFoundError(why)
        if why := missing_dataset(where, dataset, "DESK_DATASET"):
            raise ValueError(why)
    days = data_days(where, dataset)
    latest = days[-1] if days else None
    sdkappid = None if app is None else app_id(where, dataset, app)
    read, chosen, begun = latest, "", None
    if latest is not None and not os.environ.get("DESK_TO", "").strip():  # the default's end
        begun = _begun(where, dataset, sdkappid, latest)
        read, chosen = default_day(latest, begun)
    win = window(os.environ, read)
    tail = None
    if latest is not None and win.until > day_start(latest):
        chosen = ""  # the window reaches the latest day (DESK_FROM on it): read as asked
        tail = tail_day(latest, begun if begun is not None
                        else _begun(where, dataset, sdkappid, latest))
    note = coverage(win, days, tail) if days else None  # nothing loaded: each notebook says so
    if note:
        print(note)
    if win.span <= DETAIL_MAX:
        desk = _open(where, dataset, win, sdkappid, latest)
    else:  # the latest day of the window with data of its own, in detail; the period from
        # the intervals
        inside = [d for d in days if win.since.date() <= d < win.until.date() and d != tail]
        day = day_start((inside or days)[-1])
        desk = _open(where, dataset, Window(max(day, win.since), min(day + DAY, win.until)),
                     sdkappid, latest)
        if period:
            desk.period = win
            desk.period_source = windowed(where, dataset, win.since, win.until, sdkappid,
                                          intervals.TABLES)
            desk.period_end = _data_end(where, dataset, win, sdkappid, latest)
        else:  # nothing else says that the window asked was narrowed
            chosen = (f"the latest day with data of the window asked, {win}: longer than "
                      f"{DETAIL_MAX.days} days, it is read on that day")
    desk.chosen = chosen
    desk.days = [d for d in days if d != tail]
    return desk


def _data_end(where: Path | str, dataset: str, win: Window, sdkappid: int | None,
              latest: date | None) -> datetime | None:
    """Where a window's data ends, when inside it (``observed_until`` of its latest day)."""
    if latest is None or win.until <= day_start(latest):
        return None
    reader = windowed(where, dataset, day_start(latest), win.until, sdkappid,
                      ("runs", "session_events"))
    try:
        return ends_inside(reader.connection(), dataset, latest, win.since, win.until)
    finally:
        reader.close()


def _begun(where: Path | str, dataset: str, sdkappid: int | None,
           latest: date) -> dict[date, int]:
    """Sessions begun on ``latest`` and on the day before (what ``default_day`` weighs),
    read from the timeline alone."""
    since = day_start(latest) - DAY
    reader = windowed(where, dataset, since, since + 2 * DAY, sdkappid, (timeline.TABLE,))
    try:
        began = timeline_metrics.sessions(reader.connection(), since, since + 2 * DAY, dataset,
                                          ["began_at"]).began_at
    finally:
        reader.close()
    return {d.date(): int(n) for d, n in
            _utc(began).floor("D").value_counts().items()}


def _open(where: Path | str, dataset: str, win: Window, sdkappid: int | None,
          latest: date | None = None) -> Desk:
    """The window read; ``latest`` (the newest day with data): a window reaching into it
    is shown as far as its data goes (``Desk.shown``)."""
    reader = windowed(where, dataset, win.since, win.until, sdkappid)
    con = reader.connection()
    live = latest is not None and win.until > day_start(latest)
    return Desk(reader, where, dataset, truth.has_truth(con),
                metrics.poll_interval_s(con, dataset), win, sdkappid,
                observed_until(con, dataset) if live else None)


# --- A long window: the period from the interval tables ------------------------------------

OVERVIEW = ("trend", "heatmap", "groups", "agents")


def overview(desk: Desk, *parts: str, target_s: float = intervals.SERVICE_TARGET_S) -> None:
    """For a window longer than ``DETAIL_MAX``, what a long window is for, from the interval
    tables (see docs/intervals.md): ``trend``, arrivals and service level per day with a
    7-day rolling line and the period before; ``heatmap``, arrivals and service level per
    weekday and hour; ``groups`` and ``agents``, ranked over the period. A shorter window:
    one line saying so (its figures are the per-session ones below)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    if desk.period is None or desk.period_source is None:
        print(f"window {desk.window}: per-session detail (the interval tables serve windows "
              f"longer than {DETAIL_MAX.days} days)")
        return
    con, win, ds = desk.period_source.connection(), desk.period, desk.dataset
    if interval_metrics.made_earlier(con, ds):
        flag = "--database" if isinstance(desk.path, Path) else "--destination"
        print(f"period {win}: the interval tables were made by an earlier version; run "
              f"`desk-sessions publish {flag} {desk.path}` once, it makes them anew")
        return
    covered = interval_metrics.covered_days(con, win.since, win.until, ds)
    print(f"period {win}: interval tables cover {len(covered)} day(s)"
          + (f", {covered[0]} to {covered[-1]}" if covered else ""))
    if not covered:
        return
    for part in parts or OVERVIEW:
        if part not in OVERVIEW:
            raise ValueError(f"overview part {part!r}: give one of {', '.join(OVERVIEW)}")
        {"trend": _trend, "heatmap": _heatmap, "groups": _groups,
         "agents": _agents}[part](desk, con, target_s, plt, display)


def _trend(desk: Desk, con: duckdb.DuckDBPyConnection, target_s: float, plt: Any,
           display: Any) -> None:
    win, ds = desk.period, desk.dataset
    assert win is not None
    shift = win.span
    # data ending inside the period: the period before as far in (a week so far with the
    # week before so far), not whole
    end = desk.period_end or win.until
    before = Window(win.since - shift, same_point(win.since, end, (win.since - shift,
                                                                   win.since)))
    if desk.period_end is not None:
        print(f"so far: to {_stamp(end)} UTC, against the period before to the same point "
              f"({_stamp(before.until)} UTC)")
    if partial := partly(desk.days, before.since, before.until):
        print(f"the period before, {before}: {partial}")
    reader = windowed(desk.path, ds, before.since, before.until, desk.sdkappid,
                      intervals.TABLES)
    try:
        prev_con = reader.connection()
        daily = interval_metrics.per_interval(
            con, win.since, win.until, "1D", dataset=ds, target_s=target_s,
            gaps=interval_metrics.days_without(desk.days, win.since, win.until))
        prev = interval_metrics.per_interval(
            prev_con, before.since, before.until, "1D", dataset=ds, target_s=target_s,
            gaps=interval_metrics.days_without(desk.days, before.since, before.until))
        now_fig = interval_metrics.figures(con, win.since, end, target_s, dataset=ds)
        prev_fig = interval_metrics.figures(prev_con, before.since, before.until, target_s,
                                            dataset=ds)
    finally:
        reader.close()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
    days = plottable(daily.set_index("period_start"))
    ax1.bar(days.index, days.arrivals, width=0.8, label="arrivals per day")
    ax1.plot(days.index, days.arrivals.rolling(7, min_periods=1).mean(), "k-",
             label="7-day rolling mean")
    ax2.plot(days.index, days.service_level, "o", ms=3, label="per day")
    ax2.plot(days.index, days.service_level.rolling(7, min_periods=1).mean(), "k-",
             label="7-day rolling mean")
    if len(prev):
        back = plottable(prev.set_index("period_start"))
        ax1.plot(back.index + shift, back.arrivals.rolling(7, min_periods=1).mean(), "--",
                 color="grey", label="the period before (7-day mean)")
        ax2.plot(back.index + shift, back.service_level.rolling(7, min_periods=1).mean(), "--",
                 color="grey", label="the period before (7-day mean)")
    ax1.set_title("Arrivals per day (asked for a human)")
    ax2.set_title(service_level.title(target_s))
    for ax in (ax1, ax2):
        time_axis(ax, pd.Series([win.since, win.until]))
        ax.legend(loc="best", fontsize="small", framealpha=0.6)
    fig.tight_layout()
    plt.show()
    rows = ["queued", "answered", "wait_mean_s", "wait_median_s", "wait_p90_s",
            "service_level", "abandonment", "handle_mean_s", "handle_median_s", "handle_p90_s"]
    table = pd.DataFrame({"this period": now_fig.iloc[0].reindex(rows)})
    before_name = f"previous ({before})"
    table[before_name] = prev_fig.iloc[0].reindex(rows) if len(prev_fig) else np.nan
    table["change"] = table["this period"] - table[before_name]
    display(table.astype(float).round(3))


def _heatmap(desk: Desk, con: duckdb.DuckDBPyConnection, target_s: float, plt: Any, display: Any
             ) -> None:
    win = desk.period
    assert win is not None
    grid = interval_metrics.weekday_hour(con, win.since, win.until, desk.dataset, target_s,
                                         desk.days)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for ax, column, title, style in (
            (axes[0], "arrivals_per_hour", "Arrivals per hour (mean per weekday)",
             {"cmap": "viridis"}),
            (axes[1], "service_level", service_level.title(target_s),
             {"cmap": "RdYlGn", "vmin": 0, "vmax": 1})):
        table = grid.pivot(index="weekday", columns="hour", values=column).reindex(
            index=range(7), columns=range(24))
        mesh = ax.pcolormesh(np.arange(25), np.arange(8),
                             np.ma.masked_invalid(table.to_numpy(dtype=float)), **style)
        ax.set_yticks(np.arange(7) + 0.5, names)
        ax.invert_yaxis()
        ax.set_xlabel("hour (UTC)")
        ax.set_title(title)
        ax.grid(False)
        fig.colorbar(mesh, ax=ax)
    fig.tight_layout()
    plt.show()


def _groups(desk: Desk, con: duckdb.DuckDBPyConnection, target_s: float, plt: Any, display: Any
            ) -> None:
    win = desk.period
    assert win is not None
    by = interval_metrics.figures(con, win.since, win.until, target_s, "agent_group_name",
                                  desk.dataset)
    # a group with nothing queued (chatbot-only sessions: no agent group) has no figure here
    ranked = by[by["queued"] > 0].sort_values("queued", ascending=False)[
        ["queued", "answered", "abandonment", "service_level", "wait_mean_s", "wait_p90_s",
         "handle_mean_s"]]
    fig, ax = plt.subplots()
    shown = plottable(ranked.head(15))
    ax.barh(shown.index.astype(str), shown.queued)
    ax.invert_yaxis()
    ax.set_title("Agent groups by arrivals over the period")
    ax.set_xlabel("arrivals (asked for a human)")
    fig.tight_layout()
    plt.show()
    display(ranked.round(3))


def _agents(desk: Desk, con: duckdb.DuckDBPyConnection, target_s: float, plt: Any, display: Any
            ) -> None:
    win = desk.period
    assert win is not None
    ranked = interval_metrics.agents(con, win.since, win.until, desk.dataset)
    fig, ax = plt.subplots()
    top = plottable(ranked.head(20))
    ax.barh(top.agent_id.astype(str), top.held_s / 3600)
    ax.invert_yaxis()
    ax.set_title("Agents by chat-hours held over the period (top 20)")
    ax.set_xlabel("chat-hours")
    fig.tight_layout()
    plt.show()
    display(ranked.head(20).round(1))
