"""Figures from the session events the receiver took (``desk-sessions listen``): exact times,
no poll-interval bounds. They read the ``session_event_times`` view the job keeps (one row
per session: when it began, when an agent first had it)."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd
from tencent_desk.analysis.buckets import bucket_sql, interval_seconds
from tencent_desk.core.frames import frame
from tencent_desk.core.settings import DEFAULT_DATASET
from tencent_desk.core.sql import qualified

# job.event_load.EVENT_TIMES, named again: importing it would load dlt into every notebook
EVENT_TIMES = "session_event_times"


def has_events(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> bool:
    """Whether the job has loaded received session events (the ``session_event_times`` view)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name = ?", [dataset, EVENT_TIMES]).fetchone()
    return bool(found and found[0])


def events_per_interval(
    con: duckdb.DuckDBPyConnection,
    dataset: str = DEFAULT_DATASET,
    interval: str | timedelta | float = "1h",
) -> pd.DataFrame:
    """Per interval, from session events: ``began`` (sessions whose first event is in it),
    ``reached_agent`` (of those, how many had an event with an agent) and
    ``time_to_agent_s`` (their mean time from first event to first event with an agent).
    Exact to the millisecond, whatever the event names; a lost callback can only make a
    session begin late or reach its agent late."""
    w = interval_seconds(interval)
    sql = f"""
    SELECT to_timestamp({bucket_sql("epoch(began_at)", w)}) AS interval_start, {w} AS interval_s,
           count(*) AS began, count(agent_at) AS reached_agent,
           avg(epoch(agent_at) - epoch(began_at)) AS time_to_agent_s
    FROM {qualified(dataset, EVENT_TIMES)} GROUP BY ALL ORDER BY 1"""
    return frame(con, sql)
