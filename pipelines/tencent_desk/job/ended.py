"""The destination's memory of ended sessions: what a run need not ask again."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from dlt.common.destination.exceptions import DestinationUndefinedEntity

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
