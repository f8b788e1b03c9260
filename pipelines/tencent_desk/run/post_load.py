"""The finish of a run, after dlt's load: runs become complete, the models the job keeps
(the latest view, the timeline, on a server the indexes) are brought up to date, and on
DuckDB everything new is published for readers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlt.common.destination.exceptions import DestinationUndefinedEntity
from tencent_desk.core import apps, dialect, settings
from tencent_desk.job.record_source import RUNS_TABLE as RECORD_RUNS
from tencent_desk.job.runs import final_status
from tencent_desk.models import (
    indexes,
    intervals,
    intervals_remote,
    latest,
    poll_views,
    snapshot,
    timeline,
    timeline_remote,
)

log = logging.getLogger(__name__)


# Per table: the runs column counting its rows, and what is unique within a run.
RUN_TABLES = {
    "session_states": ("rows", "key_type, session_id, client_user_id, customer_service_id"),
    "seed_rejects": ("rejects", "row_no"),
}


def after_load(pipeline: Any, whole: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """What a load leaves to do: runs whose package is fully loaded get their final status
    (``runs.final_status``), ``session_state_latest`` (the latest row per key) is (re)made,
    and the sessions the load touched are brought up to date in ``session_timeline`` and the
    interval tables; on DuckDB what was loaded is then published for readers (see
    :mod:`snapshot`), with the ``whole`` tables (schema, table) of other schemas; on
    PostgreSQL readers read the server itself. Returns run_id -> the status decided for
    each run it completed."""
    if dialect.of(pipeline) not in dialect.ROW_ID:
        raise ValueError(f"after_load keeps runs, session_state_latest and session_timeline "
                         f"on {' and '.join(dialect.ROW_ID)} only, not on "
                         f"{dialect.of(pipeline)}: load into one of them")
    decided: dict[str, str] = {}
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return decided
        with contextlib.suppress(DestinationUndefinedEntity):  # no records run yet
            decided.update(_complete(client, RECORD_RUNS))
        try:
            decided.update(_complete(client, "runs", dialect.ROW_ID[dialect.of(pipeline)]))
            latest.replace(client)
        except DestinationUndefinedEntity:  # nothing polled yet: no such tables
            pass
        if dialect.of(pipeline) == dialect.DUCKDB:
            for_readers(client.native_connection, Path(client.credentials.database),
                        pipeline.dataset_name, whole)
            return decided
    # elsewhere readers read the destination itself: no snapshot, the timeline kept there
    timeline_remote.upkeep(pipeline)
    intervals_remote.upkeep(pipeline)
    with pipeline.sql_client() as client:  # what a notebook's window is read by
        indexes.create(client)
    return decided


def _complete(client: Any, table: str, row_id: str | None = None) -> dict[str, str]:
    """The runs of ``table`` still ``loading`` whose package is loaded get their final
    status ("loading" until then: a crash between dlt's load jobs must not leave a run that
    says complete without its rows). ``row_id``: first drop rows a crash loaded twice."""
    name = client.make_qualified_table_name(table)
    loading = client.execute_sql(
        f"SELECT run_id, error, rows, rejects FROM {name} WHERE status = 'loading' AND "
        f"_dlt_load_id IN (SELECT load_id FROM {client.make_qualified_table_name('_dlt_loads')}"
        " WHERE status = 0)")
    decided: dict[str, str] = {}
    for run_id, error, rows, rejects in loading or ():
        if row_id is not None:
            _drop_reloaded(client, run_id, rows, rejects, row_id)
        decided[run_id] = final_status(error)
        client.execute_sql(f"UPDATE {name} SET status = %s WHERE run_id = %s",
                           decided[run_id], run_id)
    return decided


def for_readers(con: Any, database: Path, dataset: str,
                whole: Sequence[tuple[str, str]] = (), rebuild: bool = False) -> int:
    """On the job's DuckDB: the sessions the new loads touched brought up to date in
    ``session_timeline`` and the interval tables, the poll views made (they go out with the
    snapshot), then everything new published for readers (``rebuild``: everything, the old
    snapshot's files kept a retention like any replaced file); returns rows published."""
    timeline.upkeep(con, dataset)
    intervals.upkeep(con, dataset)
    poll_views.create(con, dataset)
    return snapshot.publish(con, database, [dataset], whole, retain_s=snapshot_retention(),
                            rebuild=rebuild)


def snapshot_retention() -> float:
    """Seconds the files a publish replaces are kept for readers of older snapshots: the
    setting ``snapshot_retention`` of dlt config, checked (default a day)."""
    return apps.positive_setting(
        "snapshot_retention", settings.SNAPSHOT_RETENTION_S, float,
        "seconds the snapshot's replaced files stay for readers of older snapshots")


def _drop_reloaded(client: Any, run_id: str, rows: int, rejects: int, row_id: str) -> None:
    """dlt loads at least once: a load job that committed just before a crash, unrecorded,
    is loaded again by the next run. Its second copy goes (rows of a run are unique)."""
    expected = {"rows": rows, "rejects": rejects}
    for table, (column, unique) in RUN_TABLES.items():
        qualified = client.make_qualified_table_name(table)
        try:
            ((count,),) = client.execute_sql(
                f"SELECT count(*) FROM {qualified} WHERE run_id = %s", run_id)
        except DestinationUndefinedEntity:  # e.g. no seed row was ever rejected
            continue
        if count > expected[column]:
            log.warning("run %s: %d rows of %s were loaded twice; dropping the copies",
                        run_id, count - expected[column], table)
            client.execute_sql(
                f"DELETE FROM {qualified} WHERE run_id = %s AND {row_id} NOT IN ("
                f"SELECT min({row_id}) FROM {qualified} WHERE run_id = %s GROUP BY {unique})",
                run_id, run_id)


