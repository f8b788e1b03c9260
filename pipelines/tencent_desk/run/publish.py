"""``desk-sessions publish``: what readers read, brought up to date without a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from tencent_desk.core import redact, settings
from tencent_desk.core.errors import JobError
from tencent_desk.core.files import existing
from tencent_desk.core.settings import TRUTH_SCHEMA
from tencent_desk.core.sql import qualified
from tencent_desk.job import destination
from tencent_desk.models import intervals, intervals_remote, timeline, timeline_remote
from tencent_desk.run.database import check_database, database_problem, local_anchor
from tencent_desk.run.exits import explain
from tencent_desk.run.lock import RunLock
from tencent_desk.run.pipeline import pipeline_for
from tencent_desk.run.post_load import for_readers

if TYPE_CHECKING:
    from tencent_desk.run.options import RunOptions


def publish(database: Path, dataset: str = settings.DEFAULT_DATASET, rebuild: bool = False,
            lock_wait_s: float = settings.DATABASE_LOCK_WAIT_S) -> int:
    """Publish the snapshot readers read without a run (``rebuild``: from scratch, e.g.
    after deleting it or upgrading from a version that did not publish, the timeline and
    the interval tables brought up to date with every run again; the old snapshot's files
    stay ``snapshot_retention`` for readers still on it, as a publish keeps the files it
    replaces); returns rows."""
    database = existing(database)
    with RunLock(database):
        check_database(database, lock_wait_s)
        try:
            with duckdb.connect(str(database)) as con:
                if rebuild:
                    # Without their watermarks the models' upkeep takes every run as new:
                    # it repairs what an upkeep missed (the received events of runs of
                    # several apps, before snapshot.logged_runs_sql took them as new).
                    for state in (timeline.STATE_TABLE, intervals.STATE_TABLE):
                        con.execute(f"DROP TABLE IF EXISTS {qualified(dataset, state)}")
                others = con.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables WHERE "
                    "table_schema = ? AND table_type = 'BASE TABLE'", [TRUTH_SCHEMA]).fetchall()
                return for_readers(con, database, dataset, others, rebuild=rebuild)
        except (duckdb.Error, OSError) as exc:
            raise JobError(redact.redact(database_problem(database, exc)), 3) from None


def publish_on_server(options: RunOptions) -> int:
    """``publish`` with a server destination: no snapshot (readers read the server), the
    timeline and the interval tables brought up to date as a run does; returns the sessions
    rewritten."""
    anchor = local_anchor(options.destination, options.database, options.state_dir)
    with RunLock(anchor):
        pipeline = pipeline_for(anchor, options.dataset, options.pipelines_dir,
                                options.destination)
        try:
            destination.check_server(pipeline)
            with destination.server_lock(pipeline):
                rewritten = timeline_remote.upkeep(pipeline)
                intervals_remote.upkeep(pipeline)
                return rewritten
        except Exception as exc:
            raise JobError(*explain(exc, anchor)) from None


