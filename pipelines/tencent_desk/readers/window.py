"""What every reader of the job's data opens, notebooks and reports alike: a window of a
DuckDB file's published snapshot or of a destination server, and one app of several."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
from tencent_desk.core import settings
from tencent_desk.core.clock import day_start
from tencent_desk.core.sql import qualified
from tencent_desk.models import snapshot
from tencent_desk.readers.snapshot import Reader

if TYPE_CHECKING:  # imported where used: it brings dlt (~0.5 s) that a DuckDB file never needs
    from tencent_desk.readers import warehouse

# Tables whose days say whether a day has data (partitions of the published snapshot).
DATA_TABLES = ("runs", "session_states", "session_events", "session_records", "session_timeline")


def reader(where: Path | str, dataset: str, since: datetime | date | None = None,
           until: datetime | date | None = None,
           sdkappid: int | None = None,
           tables: tuple[str, ...] | None = None) -> Reader | warehouse.Reader:
    """``[since, until)`` of a DuckDB file's snapshot (``where``: a Path), or of the
    destination server named (``where``: a name such as ``postgres``; only ``tables``
    pulled from it, when given: a snapshot's views read nothing unused)."""
    if isinstance(where, Path):
        return Reader(where, since, until, sdkappid=sdkappid)
    from tencent_desk.readers import warehouse

    return warehouse.Reader(warehouse.destination(where), dataset, since, until, sdkappid,
                            tables)


def data_days(where: Path | str, dataset: str = settings.DEFAULT_DATASET) -> list[date]:
    """The UTC days with data: of a DuckDB file's published snapshot (from its file list
    alone), or of a destination server (the days runs started or sessions began, read there)."""
    if isinstance(where, Path):
        manifest = snapshot.read_manifest(snapshot.paths(where)[0])
        return sorted({date.fromisoformat(d) for entry in manifest["schemas"].values()
                       for table, spec in entry["tables"].items() if table in DATA_TABLES
                       for d, files in spec["days"].items() if files and d[:1].isdigit()})
    from tencent_desk.readers import warehouse

    server = warehouse.Reader(warehouse.destination(where), dataset)
    try:
        return server.days()
    finally:
        server.close()


def held(days: list[date]) -> str:
    """The days with data, for a message: the first to the last, and how many."""
    if not days:
        return "no data yet: run the job (desk-sessions run) first"
    return f"{days[0]} to {days[-1]} ({len(days)} day{'' if len(days) == 1 else 's'})"


def ranges(days: list[date]) -> str:
    """Consecutive days as ranges: 2026-01-01..2026-01-03, 2026-01-05."""
    runs: list[list[date]] = []
    for d in days:
        if runs and d - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)


def days_of(since: datetime, until: datetime) -> list[date]:
    """The UTC days ``[since, until)`` touches."""
    first, last = since.date(), (until - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def partly(days: list[date], since: datetime, until: datetime) -> str:
    """Which days of ``[since, until)`` have data (``days``), when not all do ("" then):
    what a comparison with that time must say beside it."""
    wanted = days_of(since, until)
    have = sorted(set(wanted) & set(days))
    if len(have) == len(wanted):
        return ""
    return (f"data on {ranges(have)} only ({len(have)} of {len(wanted)} days)" if have
            else "no data in it")


def same_point(since: datetime, end: datetime, before: tuple[datetime, datetime]) -> datetime:
    """Where the period ``before`` is cut to be compared with a period from ``since`` whose
    data ends at ``end``: as far into it (a week so far with the week before so far)."""
    return min(before[0] + (end - since), before[1])


def observed_until(con: duckdb.DuckDBPyConnection, dataset: str) -> datetime | None:
    """The latest instant at which the data read saw every open session: its last complete
    run or callback (None without either). Records do not count: they tell of the sessions
    that ended, not of those still waiting."""
    tables = {t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
        [dataset]).fetchall()}
    latest = [f"SELECT max({column}) AS t FROM {qualified(dataset, table)}{where}"
              for table, column, where in (("runs", "started_at", " WHERE status = 'complete'"),
                                           ("session_events", "event_time", ""))
              if table in tables]
    if not latest:
        return None
    (at,) = con.execute(f"SELECT max(t) FROM ({' UNION ALL '.join(latest)})").fetchone() or (
        None,)
    return None if at is None else pd.Timestamp(at).tz_convert("UTC").to_pydatetime()


def ends_inside(con: duckdb.DuckDBPyConnection, dataset: str, last_day: date | None,
           since: datetime, until: datetime) -> datetime | None:
    """Where the data of ``[since, until)`` ends when that is inside it (its figures are
    then so far): :func:`observed_until`, when the data's last day (``last_day``) is in the
    window: a day's last poll before its evening is no end of the data while a later day
    has some. None when the window is seen whole."""
    if last_day is None or day_start(last_day) >= until:
        return None
    seen = observed_until(con, dataset)
    return seen if seen is not None and since < seen < until else None
