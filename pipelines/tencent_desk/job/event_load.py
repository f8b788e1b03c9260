"""The job's side of the spool: load sealed segments into ``session_events`` exactly once,
retire them, and pick the sessions to poll from the events.

Exactly once under kill -9 anywhere: segments are deleted only after dlt has recorded
their load, and the load merges on ``request_id``, so loading a segment again (the job
died between load and delete) changes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from tencent_desk.core import dialect
from tencent_desk.intake import events
from tencent_desk.intake.spool import read_records, retire, sealed_segments

log = logging.getLogger("desk_sessions")

TABLE = "session_events"
EVENT_TIMES = "session_event_times"
_BATCH = 20_000
_MS = pa.timestamp("ms", tz="UTC")  # as spooled


def _schema(ts: pa.DataType) -> pa.Schema:
    return pa.schema([
    ("session_id", pa.string()), ("event", pa.string()), ("event_time", ts),
    ("client_user_id", pa.string()), ("customer_service_id", pa.string()),
    ("agent_id", pa.string()), ("forward_from_agent_id", pa.string()),
    ("channel_type", pa.string()), ("is_contact_user", pa.bool_()),
    ("satisfaction", pa.int32()), ("msg_key", pa.string()),
    pa.field("request_id", pa.string(), nullable=False), ("received_at", ts),
    ("sdkappid", pa.int64())])


SPOOLED = _schema(_MS)
SCHEMA = _schema(pa.timestamp("us", tz="UTC"))  # as loaded, like session_states
CONTENT = [pa.field(c, pa.string()) for c in events.CONTENT_COLUMNS]
KEYS = pa.schema([("session_id", pa.string()), ("client_user_id", pa.string()),
                  ("customer_service_id", pa.string())])
# with request_id the merge key: two apps' callbacks never replace each other
MERGE_KEY = ("sdkappid", "request_id")


@dataclass
class EventsLoaded:
    segments: int = 0
    records: int = 0
    names: Counter[str] = field(default_factory=Counter)

    @property
    def unknown(self) -> int:
        return sum(n for name, n in self.names.items() if events.meaning(name) == "unknown")


def _tables(paths: list[Path], tally: EventsLoaded, run_id: str,
            legacy: int | None) -> Iterator[pa.Table]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        for record in read_records(path):
            rows.append(record)
            tally.records += 1
            tally.names[record.get("event") or ""] += 1
            if len(rows) >= _BATCH:
                yield _table(rows, run_id, legacy)
                rows = []
    if rows:
        yield _table(rows, run_id, legacy)


def _table(rows: list[dict[str, Any]], run_id: str, legacy: int | None = None) -> pa.Table:
    """``legacy``: the app of records spooled by a receiver older than the sdkappid field."""
    spooled, schema = SPOOLED, SCHEMA
    if any("msg_body" in r for r in rows):  # kept only with keep_message_content
        spooled, schema = pa.schema([*SPOOLED, *CONTENT]), pa.schema([*SCHEMA, *CONTENT])
    table = pa.Table.from_pylist(rows, schema=spooled).cast(schema)
    if legacy is not None and table["sdkappid"].null_count:
        table = table.set_column(table.schema.get_field_index("sdkappid"), "sdkappid",
                                 pc.fill_null(table["sdkappid"], legacy))
    # the run that loaded them: what readers' snapshot and the timeline take as new
    return table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))


def events_source(paths: list[Path], tally: EventsLoaded, run_id: str,
                  legacy: int | None = None) -> Any:
    @dlt.source(name="tencent_desk", max_table_nesting=0)
    def tencent_desk_events() -> Any:
        # NULL: spooled by a receiver older than the field, with no app known to own it
        return dlt.resource(_tables(paths, tally, run_id, legacy), name=TABLE,
                            write_disposition="merge", primary_key=MERGE_KEY,
                            columns={"sdkappid": {"data_type": "bigint", "nullable": True}})

    return tencent_desk_events()


def load_events(pipeline: Any, spool: Path, run_id: str, legacy: int | None = None
                ) -> EventsLoaded:
    """Load every sealed segment of ``spool`` into ``session_events`` (stamped with this
    ``run_id``), then retire them. ``legacy``: the app of events spooled without one."""
    paths = sealed_segments(spool)
    tally = EventsLoaded(segments=len(paths))
    if not paths:
        return tally
    pipeline.run(events_source(paths, tally, run_id, legacy))
    with pipeline.sql_client() as client:
        make_event_times(pipeline, client)
    retire(paths)
    log.info("loaded %d received events from %d spool segments (%d with unknown names)",
             tally.records, len(paths), tally.unknown)
    return tally


def make_event_times(pipeline: Any, client: Any) -> None:
    """(Re)make the view of each session's times from its events, in the destination's SQL."""
    name = client.make_qualified_table_name
    client.execute_sql(f"DROP VIEW IF EXISTS {name(EVENT_TIMES)}")
    client.execute_sql(event_times_view(dialect.of(pipeline), name(EVENT_TIMES), name(TABLE)))


def event_times_view(sql_dialect: str, view: str, table: str) -> str:
    """The SQL making the event-times view ``view`` over the events table ``table``."""
    first_agent = dialect.first_by(sql_dialect, "agent_id", "event_time",
                                   "agent_id IS NOT NULL")
    return events.EVENT_TIMES_VIEW.format(view=view, table=table, first_agent_id=first_agent)


def write_open_sessions(pipeline: Any, out: Path, *, now_s: float, max_age_s: float,
                        sdkappid: int | None = None) -> int:
    """Sessions (of app ``sdkappid``, if given) that began within ``max_age_s`` before
    ``now_s`` and have no closing event, as a Parquet seed at ``out``; returns how many."""
    table = KEYS.empty_table()
    try:
        with pipeline.sql_client() as client:
            if client.has_dataset():
                with client.execute_query(
                        f"SELECT session_id, client_user_id, customer_service_id FROM "
                        f"{client.make_qualified_table_name(EVENT_TIMES)} WHERE NOT closed AND "
                        "began_at >= to_timestamp(%s) AND began_at <= to_timestamp(%s) "
                        "AND (%s IS NULL OR sdkappid = %s) ORDER BY began_at, session_id",
                        now_s - max_age_s, now_s, sdkappid, sdkappid
                ) as cursor:
                    rows = cursor.fetchall()
                    table = pa.Table.from_pylist(
                        [dict(zip(KEYS.names, r, strict=True)) for r in rows], schema=KEYS)
    except DestinationUndefinedEntity:  # no event received yet
        pass
    pq.write_table(table, out)
    return table.num_rows
