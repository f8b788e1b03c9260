"""Where the plan's history comes from: the one place that reads it.

The sessions of ``session_timeline`` in a window, summed for planning
(:class:`summary.Summary`, with what the polls saw of the offers' ringing: :mod:`ringing`)
by the DuckDB the notebooks read through: the published snapshot
beside a DuckDB file (the job's own file stays the job's), or a window pulled from a
destination server. Only the sums leave DuckDB, never the sessions; and where the data
ends, asked of the whole timeline (a plan says so when it ends before the weeks read).
One app of several reads that app's rows alone, of every table (its runs and polls too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tencent_desk.core.sql import qualified
from tencent_desk.job.destination import DUCKDB
from tencent_desk.models.intervals import SPANS_SQL
from tencent_desk.models.timeline import TABLE
from tencent_desk.planning import ringing, ungrouped
from tencent_desk.planning.choices import PlanError
from tencent_desk.planning.summary import COLUMNS, DERIVED_SQL, Summary
from tencent_desk.readers.app_lookup import app_id
from tencent_desk.readers.snapshot import Reader, missing_dataset, unreadable

if TYPE_CHECKING:  # imported where used: it brings dlt, which a DuckDB file never needs
    from tencent_desk.readers import warehouse


def read(database: Path | None, destination: str, dataset: str, since: datetime,
         until: datetime, target_s: float, sdkappid: int | None = None) -> Summary:
    """The sessions that began in ``[since, until)``, summed for planning with answers
    counted within ``target_s``: of the app ``sdkappid`` (None: of every app together)."""
    if destination == DUCKDB:
        assert database is not None
        _check(database, dataset)
        return _read(Reader(database, since, until, sdkappid), dataset, since, until,
                     target_s, lambda: _latest_start(
                         Reader(database, until=until, sdkappid=sdkappid), dataset, until))
    from tencent_desk.readers import warehouse

    try:
        # the tables a plan reads, not the window's events and records too
        reader = warehouse.Reader(warehouse.destination(destination), dataset, since, until,
                                  sdkappid, tables=(TABLE, *ringing.NEEDS))
        return _read(reader, dataset, since, until, target_s,
                     lambda: reader.latest(TABLE, "began_at", until))
    except warehouse.DestinationError as exc:
        raise PlanError(str(exc)) from None


def app(database: Path | None, destination: str, dataset: str, given: str) -> int:
    """The sdkappid of the app ``--app`` names (a name or an sdkappid), found as the
    report finds it: an app the dataset does not hold is a PlanError naming those it does."""
    where: Path | str = destination
    fix: tuple[type[Exception], ...] = (ValueError,)
    if destination == DUCKDB:
        assert database is not None
        _check(database, dataset)
        where = database
    else:  # a server's own errors too (no credentials, not reachable)
        from tencent_desk.readers.warehouse import DestinationError

        fix = (ValueError, DestinationError)
    try:
        return app_id(where, dataset, given, "--app")
    except fix as exc:
        raise PlanError(str(exc)) from None


def _check(database: Path, dataset: str) -> None:
    if why := unreadable(database) or missing_dataset(database, dataset):
        raise PlanError(why)


def _latest_start(reader: Reader, dataset: str, until: datetime) -> datetime | None:
    """The latest session start before ``until`` in the snapshot's every day up to it."""
    try:
        ((at,),) = reader.connection().execute(
            f"SELECT max(began_at) FROM {qualified(dataset, TABLE)} WHERE began_at < ?",
            [until]).fetchall()
        return at
    finally:
        reader.close()


def _read(reader: Reader | warehouse.Reader, dataset: str, since: datetime,
          until: datetime, target_s: float, latest: Callable[[], datetime | None]
          ) -> Summary:
    try:
        con = reader.connection()
        tables = {t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [dataset]).fetchall()}
        if TABLE not in tables:
            rows = "SELECT " + ", ".join(f"NULL::{t} AS {c}" for c, t in _EMPTY.items()) \
                + " WHERE false"
            return Summary.read(con, rows, target_s)
        rows = (f"SELECT *, {SPANS_SQL} FROM {qualified(dataset, TABLE)} "
                "WHERE began_at >= ? AND began_at < ?")
        ends = latest()
        summed = Summary.read(con, DERIVED_SQL.format(rows=rows), target_s, [since, until],
                              None if ends is None else pd.Timestamp(ends).tz_convert("UTC"))
        seen = ringing.seen(con, dataset, since, until)
        return ungrouped.spread(replace(
            summed, sdkappids=_apps(con, dataset, since, until),
            **({} if seen is None else {"ringing_seen": seen})))
    finally:
        reader.close()


def _apps(con: Any, dataset: str, since: datetime, until: datetime) -> tuple[int, ...]:
    """The apps (sdkappid) of the sessions begun in ``[since, until)``: those a plan is for."""
    (has,) = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = ? AND column_name = 'sdkappid'", [dataset, TABLE]).fetchone()
    if not has:  # a timeline from before several apps
        return ()
    return tuple(int(a) for (a,) in con.execute(
        f"SELECT DISTINCT sdkappid FROM {qualified(dataset, TABLE)} WHERE began_at >= ? "
        "AND began_at < ? AND sdkappid IS NOT NULL ORDER BY 1", [since, until]).fetchall())


# the summary's columns, typed, for a dataset the job has not yet given a timeline
_EMPTY = dict(zip(COLUMNS, ["TIMESTAMPTZ"] * 5 + ["VARCHAR", "VARCHAR", "DOUBLE", "BOOLEAN"],
                  strict=True))
