"""What every analysis notebook does first: find the database, open the snapshot the job
publishes beside it (so the job can keep writing), and set up headless-safe plots."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from tencent_desk.analysis import metrics, warehouse
from tencent_desk.job import snapshot

ROOT = Path(__file__).resolve().parents[3]  # the repository, for the demo database


@dataclass
class Desk:
    source: snapshot.Reader | warehouse.Reader | duckdb.DuckDBPyConnection
    path: Path | str  # the DuckDB file, or ``destination:dataset``
    dataset: str
    has_truth: bool
    poll_s: float | None
    sdkappid: int | None = None  # DESK_APP: the one app shown (several in one database)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The latest published snapshot (views made again after each run), the window
        pulled from a destination server (again after each load), or the database itself,
        read-only, where nothing was ever published."""
        if isinstance(self.source, duckdb.DuckDBPyConnection):
            return self.source
        return self.source.connection()


def database() -> Path:
    """``DESK_DUCKDB`` (relative to the working folder or the repository), else the demo's."""
    given = os.environ.get("DESK_DUCKDB")
    if not given:
        path = ROOT / "demo.duckdb"
    else:
        path = next((p for p in (Path(given).expanduser(), ROOT / given) if p.exists()),
                    Path(given))
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `make demo` or set DESK_DUCKDB")
    return path


def server_reader(dataset: str, since: datetime | date | None = None,
                  until: datetime | date | None = None) -> warehouse.Reader | None:
    """``DESK_DESTINATION`` (e.g. ``postgres``, credentials as the job's: dlt config and
    secrets, or ``DESTINATION__POSTGRES__CREDENTIALS``): the window pulled from there;
    None when it is unset or ``duckdb`` (``DESK_DUCKDB`` is read)."""
    name = os.environ.get("DESK_DESTINATION", "").strip().lower()
    if name in ("", "duckdb"):
        return None
    return warehouse.Reader(warehouse.destination(name), dataset, since, until)


# --- Plotting helpers: every chart's time axis and gaps (no complete run) are drawn here,
# one way for all notebooks. -----------------------------------------------------------------


def describe(desk: Desk) -> str:
    """One line on what a notebook reads: database, dataset, snapshots, poll interval, truth."""
    snapshots = metrics.complete_runs(desk.con, desk.dataset)
    if snapshots.empty:
        seen = "no complete run yet"
    else:
        first, last = snapshots.snapshot_at.min(), snapshots.snapshot_at.max()
        n = len(snapshots)
        seen = (f"{n} snapshot{'s' if n > 1 else ''} from {first:%Y-%m-%d %H:%M} "
                f"to {last:%Y-%m-%d %H:%M} UTC")
    every = (f"polls every {desk.poll_s:.0f} s (median)" if desk.poll_s is not None
             else "no poll interval (fewer than two snapshots)")
    app = f" (app {desk.sdkappid})" if desk.sdkappid is not None else ""
    return (f"{desk.path} / {desk.dataset}{app}: {seen}; {every}; "
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


def _utc(times: pd.Index | pd.Series | list) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(times)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def open_desk() -> Desk:
    """The database read-only (or a window of a server destination: ``DESK_DESTINATION``),
    its dataset (``DESK_DATASET``), and plot defaults."""
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")  # run as a plain script: draw off-screen
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.figsize": (11, 3.8), "axes.grid": True, "grid.alpha": 0.3})
    dataset = os.environ.get("DESK_DATASET", "tencent_desk")
    source: snapshot.Reader | warehouse.Reader | duckdb.DuckDBPyConnection
    where: Path | str
    app = os.environ.get("DESK_APP", "").strip() or None
    sdkappid = None
    remote = server_reader(dataset)
    if remote is not None:
        source, where = remote, remote.where
        if app is not None:  # that app's rows only, filtered on the server
            sdkappid = remote.sdkappid = app_id(remote.connection(), dataset, app)
    elif snapshot.Reader.available(path := database()):
        source, where = snapshot.Reader(path), path
        if app is not None:  # every table and view shows that app's rows only
            sdkappid = app_id(source.connection(), dataset, app)
            source = snapshot.Reader(path, sdkappid=sdkappid)
    elif app is not None:
        raise ValueError(f"DESK_APP needs the snapshot a run publishes beside {path}: run "
                         f"`desk-sessions publish --database {path}` once")
    else:  # a database no job published: read it directly (this blocks a writer)
        source, where = duckdb.connect(str(path), read_only=True), path
    con = source if isinstance(source, duckdb.DuckDBPyConnection) else source.connection()
    return Desk(source, where, dataset, metrics.has_truth(con),
                metrics.poll_interval_s(con, dataset), sdkappid)


def app_id(con: duckdb.DuckDBPyConnection, dataset: str, app: str) -> int:
    """``DESK_APP`` as an sdkappid: a number, or the name of an app (as its runs record)."""
    if app.isdigit():
        return int(app)
    known = dict(con.execute(
        f'SELECT DISTINCT app, sdkappid FROM "{dataset}".runs WHERE app IS NOT NULL'
    ).fetchall()) if "app" in {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = 'runs'", [dataset]).fetchall()} else {}
    if app not in known:
        raise ValueError(f"DESK_APP={app!r}: no app of that name in {dataset}.runs; give its "
                         f"sdkappid or one of: {', '.join(sorted(known)) or 'none recorded'}")
    return int(known[app])
