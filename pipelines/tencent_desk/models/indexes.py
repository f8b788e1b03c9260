"""Indexes on a server destination: what a reader's window is read by."""

from __future__ import annotations

from typing import Any

from tencent_desk.core.sql import ident
from tencent_desk.models import snapshot


def create(client: Any) -> list[str]:
    """Indexes on the columns windows are read by (``snapshot.LAYOUTS``), for the tables
    the dataset has; idempotent, cheap when they exist. Named as the timeline upkeep names
    its own (``timeline_remote.INDEXED``), so a column both need gets one index. The job
    calls it after each load on a server (``client``: its dlt sql_client). Returns the
    tables indexed."""
    done = []
    for table, layout in snapshot.LAYOUTS.items():
        columns = client.execute_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s AND column_name = %s",
            client.dataset_name, table, layout.column) or []
        if columns:
            client.execute_sql(
                f"CREATE INDEX IF NOT EXISTS {ident(f'{table}_{layout.column}_idx')} "
                f"ON {client.make_qualified_table_name(table)} ({ident(layout.column)})")
            done.append(table)
    return done
