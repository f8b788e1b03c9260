"""Where the plan's history comes from: the one place that reads it, so that it can move to
the interval tables (queue_intervals) when they exist.

Sessions from ``session_timeline``, read through the readers the notebooks use: the
published snapshot beside a DuckDB file (the job's own file stays the job's), or a window
pulled from a destination server.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.job.destination import DUCKDB
from tencent_desk.models.timeline import TABLE
from tencent_desk.planning import forecast as fc
from tencent_desk.planning.plan import PlanError
from tencent_desk.readers.snapshot import Reader

if TYPE_CHECKING:  # imported where used: it brings dlt, which a DuckDB file never needs
    from tencent_desk.readers import warehouse

def read_sessions(database: Path | None, destination: str, dataset: str, since: datetime,
                  until: datetime) -> pd.DataFrame:
    """The sessions that began in ``[since, until)``, with the columns the plan reads
    (:func:`forecast.derive`)."""
    if destination == DUCKDB:
        assert database is not None
        if not Reader.available(database):
            raise PlanError(f"{database} has no published snapshot beside it: run "
                            f"`desk-sessions publish --database {database}` once")
        return _read(Reader(database, since, until), dataset, since, until)
    from tencent_desk.readers import warehouse

    try:
        return _read(warehouse.Reader(warehouse.destination(destination), dataset, since,
                                      until), dataset, since, until)
    except warehouse.DestinationError as exc:
        raise PlanError(str(exc)) from None


def _read(reader: Reader | warehouse.Reader, dataset: str, since: datetime,
          until: datetime) -> pd.DataFrame:
    try:
        con = reader.connection()
        tables = {t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [dataset]).fetchall()}
        if TABLE not in tables:
            return pd.DataFrame(columns=fc.COLUMNS)
        return fc.derive(tm.sessions(con, since, until, dataset, fc.READS))
    finally:
        reader.close()
