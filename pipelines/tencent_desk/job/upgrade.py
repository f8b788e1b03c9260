"""A database made before ``sdkappid`` existed, brought up to date before a run loads.

Every table the job writes carries ``sdkappid`` now. A table made by an earlier version
gets the column, and its rows the app they came from: the single app that version was
configured with (``apps.legacy_sdkappid``). When that cannot be known (several named apps
and no ``[sources.tencent_desk]`` one) they keep NULL: an app of their own in every key
(merges, the timeline), never mixed with a configured app's rows.

Done before dlt loads: dlt then finds the column in place and leaves it (it adds only
columns the destination lacks), and the merge keys that include ``sdkappid`` match the
old rows instead of doubling them. Standard SQL only (named columns, information_schema).
"""

from __future__ import annotations

import logging
from typing import Any

from tencent_desk.job.event_load import TABLE as EVENTS
from tencent_desk.job.event_load import make_event_times

log = logging.getLogger("desk_sessions")

COLUMN = "sdkappid"


def tables_without_app(client: Any) -> list[str]:
    """The dataset's tables (not dlt's own) that have no ``sdkappid`` column yet."""
    rows = client.execute_sql(
        "SELECT t.table_name FROM information_schema.tables t WHERE t.table_schema = %s "
        "AND t.table_type = 'BASE TABLE' AND NOT EXISTS (SELECT 1 FROM "
        "information_schema.columns c WHERE c.table_schema = t.table_schema AND "
        "c.table_name = t.table_name AND c.column_name = %s) ORDER BY t.table_name",
        client.dataset_name, COLUMN)
    return [r[0] for r in rows or () if not r[0].startswith("_")]  # not dlt's own


def add_app_column(pipeline: Any, legacy: int | None) -> list[str]:
    """Add ``sdkappid`` where it is missing, filled with ``legacy``; returns those tables."""
    if not pipeline.destination:
        return []
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return []
        tables = tables_without_app(client)
        for table in tables:
            name = client.make_qualified_table_name(table)
            client.execute_sql(f"ALTER TABLE {name} ADD COLUMN {COLUMN} BIGINT")
            if legacy is not None:
                client.execute_sql(f"UPDATE {name} SET {COLUMN} = %s", legacy)
        if EVENTS in tables:  # its view groups by app now
            make_event_times(pipeline, client)
    if tables:
        log.warning("upgraded %d tables from before several apps (%s): their rows are app "
                    "%s", len(tables), ", ".join(tables),
                    legacy if legacy is not None else "unknown (NULL: several apps configured "
                    "and none under [sources.tencent_desk])")
    return tables
