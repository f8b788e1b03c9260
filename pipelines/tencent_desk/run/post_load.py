"""What the source needs besides the client: the destination's memory of ended sessions,
and the ``runs`` row."""

from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from tencent_desk.api import states
from tencent_desk.api.client import ClientConfig, Stats
from tencent_desk.core import dialect
from tencent_desk.core.clock import Clock, utc
from tencent_desk.job.record_source import RUNS_TABLE as RECORD_RUNS
from tencent_desk.job.rows import SESSION_STATES
from tencent_desk.job.seeds import SeedCounts
from tencent_desk.models import snapshot, timeline, timeline_remote

log = logging.getLogger(__name__)


# Where the destination knows a session is over: polls that saw it end (141005), its
# session record (only ended sessions have one), and a closing event received.
ENDED_FROM = {"session_states": "state = 'ended' AND session_id IS NOT NULL",
              "session_records": "session_id IS NOT NULL",
              "session_event_times": "closed"}


def ended_sessions(pipeline: Any, chunk: int = 100_000, sdkappid: int | None = None
                   ) -> Iterator[pa.Table]:
    """Session ids (of app ``sdkappid``, if given) the destination knows ended, in Arrow
    chunks; none on a first run."""
    if not pipeline.destination:
        return
    try:
        with pipeline.sql_client() as client:
            if not client.has_dataset():
                return
            parts = []
            for table, where in ENDED_FROM.items():
                name = client.make_qualified_table_name(table)
                try:
                    client.execute_sql(f"SELECT 1 FROM {name} LIMIT 0")
                except DestinationUndefinedEntity:
                    continue
                app = "" if sdkappid is None else f" AND sdkappid = {int(sdkappid)}"
                parts.append(f"SELECT session_id FROM {name} WHERE {where}{app}")
            if not parts:
                return
            with client.execute_query(
                    f"SELECT DISTINCT session_id FROM ({' UNION ALL '.join(parts)}) AS e"
                    ) as cursor, warnings.catch_warnings():
                # dlt's DuckDB cursor uses an API DuckDB 2 warns about; harmless here.
                warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
                yield from cursor.iter_arrow(chunk)
    except DestinationUndefinedEntity:
        return


LATEST_VIEW = """
CREATE VIEW {view} AS
SELECT {columns} FROM (
    SELECT s.*, row_number() OVER (
        PARTITION BY sdkappid, key_type,
            CASE WHEN key_type = 'session' THEN session_id END,
            CASE WHEN key_type = 'pair' THEN client_user_id END,
            CASE WHEN key_type = 'pair' THEN customer_service_id END
        ORDER BY polled_at DESC, run_id DESC) AS rn
    FROM {table} AS s) AS ranked
WHERE rn = 1
"""


# Per table: the runs column counting its rows, and what is unique within a run.
RUN_TABLES = {
    "session_states": ("rows", "key_type, session_id, client_user_id, customer_service_id"),
    "seed_rejects": ("rejects", "row_no"),
}


def after_load(pipeline: Any, whole: Sequence[tuple[str, str]] = ()) -> None:
    """What a load leaves to do: runs whose package is fully loaded become ``complete``,
    ``session_state_latest`` (the latest row per key) is (re)made, and the sessions the load
    touched are brought up to date in ``session_timeline``; on DuckDB what was loaded is
    then published for readers (see :mod:`snapshot`), with the ``whole`` tables (schema,
    table) of other schemas; on PostgreSQL readers read the server itself."""
    if dialect.of(pipeline) not in dialect.ROW_ID:
        raise ValueError(f"after_load keeps runs, session_state_latest and session_timeline "
                         f"on {' and '.join(dialect.ROW_ID)} only, not on "
                         f"{dialect.of(pipeline)}: load into one of them")
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return
        name = client.make_qualified_table_name
        loaded = (f"WHERE status = 'loading' AND _dlt_load_id IN "
                  f"(SELECT load_id FROM {name('_dlt_loads')} WHERE status = 0)")
        # An outage run has its error; a records-only run has none, so it completes.
        status = f"CASE WHEN error IS NULL THEN '{COMPLETE}' ELSE '{OUTAGE}' END"
        with contextlib.suppress(DestinationUndefinedEntity):  # no records run yet
            client.execute_sql(f"UPDATE {name(RECORD_RUNS)} SET status = {status} {loaded}")
        try:
            for run in client.execute_sql(
                    f"SELECT run_id, rows, rejects FROM {name('runs')} {loaded}"):
                _drop_reloaded(client, *run, row_id=dialect.ROW_ID[dialect.of(pipeline)])
            client.execute_sql(f"UPDATE {name('runs')} SET status = {status} {loaded}")
            # dropped first: PostgreSQL replaces a view only when its columns stay the same
            client.execute_sql(f"DROP VIEW IF EXISTS {name('session_state_latest')}")
            client.execute_sql(LATEST_VIEW.format(
                view=name("session_state_latest"), table=name("session_states"),
                columns=", ".join(SESSION_STATES.names)))
        except DestinationUndefinedEntity:  # nothing polled yet: no such tables
            pass
        if dialect.of(pipeline) == dialect.DUCKDB:
            for_readers(client.native_connection, Path(client.credentials.database),
                        pipeline.dataset_name, whole)
            return
    # elsewhere readers read the destination itself: no snapshot, the timeline kept there
    timeline_remote.upkeep(pipeline)
    from tencent_desk.readers import warehouse  # it reads this module's view SQL

    with pipeline.sql_client() as client:  # what a notebook's window is read by
        warehouse.create_indexes(client)


def for_readers(con: Any, database: Path, dataset: str,
                whole: Sequence[tuple[str, str]] = ()) -> int:
    """On the job's DuckDB: the sessions the new loads touched brought up to date in
    ``session_timeline``, then everything new published for readers; returns rows published."""
    timeline.upkeep(con, dataset)
    return snapshot.publish(con, database, [dataset], whole)


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


def new_run_id(clock: Clock) -> str:
    """Sortable by time, unique across hosts."""
    return f"{utc(clock):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


# A loaded run's status: complete, or cut short by an outage (its ``error`` says why); one
# app of several that could not run (credentials refused, its seed ...) is ``failed``.
COMPLETE, OUTAGE, FAILED = "complete", "outage", "failed"


def final_status(row: dict[str, Any]) -> str:
    """What ``after_load`` makes of a loaded run's status (the same rule as its SQL)."""
    if row.get("status") == FAILED:
        return FAILED
    return COMPLETE if row.get("error") is None else OUTAGE


def run_row(*, run_id: str, started_at: datetime, finished_at: datetime, seed: str,
            counts: SeedCounts, tally: Counter[str], stats: Stats | None,
            config: ClientConfig, region: str, rejects: int, error: str | None = None,
            max_error_share: float | None = None, app: str | None = None
            ) -> dict[str, object]:
    """The ``runs`` row: what a run did, with the configuration that matters (no secret).
    ``error``: why the run stopped before asking every key (an outage)."""
    stats = stats or Stats()
    rows = sum(tally.values())
    row: dict[str, object] = {
        "run_id": run_id,
        # "loading" until after_load() sees its whole package loaded: a crash between dlt's
        # load jobs must not leave a run that says complete without its rows.
        "status": "loading",
        "error": error,
        "sdkappid": config.sdkappid,
        "app": app,  # the name of a named app ([sources.tencent_desk.core.apps.<name>])
        "started_at": started_at,
        "finished_at": finished_at,
        "seed": seed,
        "region": region,
        "api_host": config.base_urls[0].split("://", 1)[-1],
        "max_qps": config.max_qps,
        "max_concurrency": config.concurrency,
        "seed_rows": counts.rows,
        "keys": counts.keys,
        "rows": rows,
        "not_asked": counts.keys - rows,
        "rejects": rejects,
        "duplicates": counts.duplicates,
        "skipped_ended": counts.skipped_ended,
        "errors": tally[states.ERROR],
        "max_error_share": max_error_share,
        "calls": stats.calls,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "renewed_sigs": stats.renewed_sigs,
        "fallbacks": stats.fallbacks,
        "calls_per_second": round(stats.calls_per_second(), 3),
    }
    for state in states.ALL:
        row[f"n_{state}"] = tally[state]
    return row
