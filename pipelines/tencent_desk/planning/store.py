"""``staffing_plan``: every plan made, appended, with its id, when it was made, its method and
parameters; written by dlt into the job's destination.

On DuckDB the file is the job's alone while a run loads (one writer process): a plan takes
the job's own lock (:class:`tencent_desk.run.lock.RunLock`) for the moment it writes,
waiting for a run in progress up to ``--lock-wait``; a run that starts meanwhile fails early
with "another desk-sessions run is writing" and its next schedule loads as usual.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
from tencent_desk.core.errors import JobError
from tencent_desk.job import destination
from tencent_desk.job.upgrade import COLUMN
from tencent_desk.run.database import check_database
from tencent_desk.run.exits import explain
from tencent_desk.run.lock import RunLock

TABLE = "staffing_plan"


def stamp(plan: pd.DataFrame, kind: str, params: dict[str, object],
          now: datetime | None = None, sdkappid: int | None = None) -> pd.DataFrame:
    """The plan with what identifies it: ``plan_id``, ``created_at``, ``kind`` (plan,
    backtest, intraday), ``method``, ``parameters`` (JSON) and ``sdkappid``, the app it is
    for (:func:`app_of`; NULL: several apps' sessions at once, or an app not known). Every
    table of the job carries ``sdkappid``: without it the next run's upgrade would take
    ``staffing_plan`` for a table from before several apps."""
    out = plan.copy()
    out.insert(0, "plan_id", uuid.uuid4().hex[:16])
    out.insert(1, "created_at", pd.Timestamp(now or datetime.now(UTC)))
    out.insert(2, "kind", kind)
    out.insert(3, "method", str(params.get("method")))
    out.insert(4, "parameters", json.dumps(params, sort_keys=True, default=str))
    # a nullable integer: a column of NULLs alone is still a BIGINT, never left out by dlt
    out.insert(5, COLUMN, pd.array([sdkappid] * len(out), dtype="Int64"))
    return out


def app_of(sdkappids: Sequence[int]) -> int | None:
    """The app a plan made from the sessions of ``sdkappids`` is for: the one app, or None
    (NULL) when they are several apps' (a plan over them all) or carry none."""
    return sdkappids[0] if len(sdkappids) == 1 else None


def save(plan: pd.DataFrame, where: str, database: Path | None, dataset: str,
         lock_wait_s: float) -> None:
    """Append ``plan`` (stamped) to ``dataset.staffing_plan`` on the destination."""
    import dlt

    table = pa.Table.from_pandas(plan, preserve_index=False)
    with tempfile.TemporaryDirectory(prefix="desk-plan-") as folder:
        if where == destination.DUCKDB:
            assert database is not None
            from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

            with _journal(database, lock_wait_s):
                check_database(database, lock_wait_s)
                _load(dlt.destinations.duckdb(DuckDbCredentials(str(database))), table,
                      dataset, folder, database)
        else:
            _load(destination.server(), table, dataset, folder, Path(folder))


@contextmanager
def _journal(database: Path, wait_s: float) -> Iterator[None]:
    """The job's lock, waited for up to ``wait_s`` while a run holds it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            journal = RunLock(database).__enter__()
            break
        except JobError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)
    try:
        yield
    finally:
        journal.__exit__()


def _load(dest: object, table: pa.Table, dataset: str, folder: str, anchor: Path) -> None:
    import dlt

    pipeline = dlt.pipeline(pipeline_name="desk_sessions_plan", destination=dest,
                            dataset_name=dataset, pipelines_dir=folder)
    try:
        pipeline.run(table, table_name=TABLE, write_disposition="append")
    except Exception as exc:
        raise JobError(*explain(exc, anchor)) from None
