"""The dlt pipeline of a run: one per database file (or server state folder) and dataset."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from tencent_desk.core import settings
from tencent_desk.job import destination
from tencent_desk.run.database import local_anchor

if TYPE_CHECKING:
    from tencent_desk.run.options import RunOptions


def pipeline_name(database: Path, dataset: str, kind: str = destination.DUCKDB) -> str:
    """The name (and working folder's) of the pipeline of a database file (or, with a
    server, of a state folder's anchor) and dataset."""
    key = f"{database.resolve()}|{dataset}" + ("" if kind == destination.DUCKDB else f"|{kind}")
    return f"{settings.PIPELINE_NAME}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


@functools.cache
def pipeline_for(database: Path, dataset: str, pipelines_dir: str | None = None,
                 kind: str = destination.DUCKDB) -> dlt.Pipeline:
    """The pipeline (working folder, state) of :func:`pipeline_name`; kept for the
    process, as building one resolves much of dlt's configuration."""
    name = pipeline_name(database, dataset, kind)
    if kind != destination.DUCKDB:
        return dlt.pipeline(pipeline_name=name, destination=destination.server(),
                            dataset_name=dataset, pipelines_dir=pipelines_dir)
    # DuckDB's default memory_limit is 80% of RAM: loading one run's rows would otherwise
    # hold them all in memory at once (+170 MB at 1M rows; about +65 MB with this limit).
    # One thread, no insertion order: the merge of session_records deduplicates by a window
    # function, which overruns the limit with several threads (1M records: out of memory).
    credentials = DuckDbCredentials(str(database), global_config={
        "memory_limit": settings.DESTINATION_MEMORY_LIMIT, "threads": 1,
        "preserve_insertion_order": False})
    return dlt.pipeline(pipeline_name=name, destination=dlt.destinations.duckdb(credentials),
                        dataset_name=dataset, pipelines_dir=pipelines_dir)


def location(options: RunOptions) -> str | None:
    """Where a server destination is (never its password); None for a DuckDB file."""
    if options.destination == destination.DUCKDB:
        return None
    pipeline = pipeline_for(local_anchor(options.destination, options.database,
                                         options.state_dir), options.dataset, options.pipelines_dir,
                            options.destination)
    c = pipeline.sql_client().credentials  # resolved, not connected
    return f"PostgreSQL {c.username}@{c.host}:{c.port}/{c.database}"
