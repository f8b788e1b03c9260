"""The ``session_records`` resource: session records loaded incrementally, merged on
``session_id``, with the records' part of the ``runs`` row.

Where the last incremental load ended is kept in the source's dlt state, which dlt stores
with the load package of the rows it describes: a run killed before its package is loaded
leaves the state where it was, and the next run asks the same windows again (the merge on
``session_id`` keeps one row per session).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
from tencent_desk.api.client import ClientConfig, DeskClient
from tencent_desk.api.records import cut_windows, plan
from tencent_desk.api.usersig import UserSigProvider
from tencent_desk.core import settings
from tencent_desk.core.clock import Clock
from tencent_desk.job.poller import RecordsPager
from tencent_desk.job.record_rows import to_table

log = logging.getLogger(__name__)

TABLE = "session_records"
RUNS_TABLE = "record_runs"  # the runs of `desk-sessions records`, as ``runs`` for `run`
# One row per session of an app: two apps' sessions never replace each other.
MERGE_KEY = ("sdkappid", "session_id")
HINTS = {"table_name": TABLE, "write_disposition": "merge", "primary_key": MERGE_KEY}
STATE_KEY = "session_records"

@dataclass
class RecordsLoad:
    """One run's records: a backfill (``since``) or the next incremental span."""

    config: ClientConfig
    sigs: UserSigProvider
    clock: Clock
    run_id: str
    since: int | None = None
    until: int | None = None
    settle_s: int = settings.DEFAULT_RECORDS_SETTLE_S
    first_back_s: int = settings.DEFAULT_RECORDS_SINCE_S
    keep_nicknames: bool = False
    state_key: str = STATE_KEY  # where in the source's state this app's position is

    def rows(self) -> Generator[Any, None, dict[str, Any]]:
        """Yields each window's rows; returns the ``records_*`` columns of the runs row."""
        state = dlt.current.source_state().setdefault(self.state_key, {})
        span = plan(now=self.clock.time(), next_start=state.get("next_start"),
                    since=self.since, until=self.until, settle_s=self.settle_s,
                    first_back_s=self.first_back_s)
        out: dict[str, Any] = {"records": 0, "records_windows": 0, "records_pages": 0,
                               "records_repaged": 0, "records_from": _at(span[0]) if span
                               else None, "records_until": _at(span[1]) if span else None}
        if span is None:
            log.info("records: nothing settled since the last load yet")
            return out
        log.info("records: %s to %s%s", _at(span[0]), _at(span[1]),
                 " (backfill)" if self.since is not None else "")
        pager = RecordsPager(lambda: DeskClient(self.config, self.sigs, clock=self.clock),
                             cut_windows(*span))
        for got in pager:
            if got.records:
                yield dlt.mark.with_hints(
                    to_table(got.records, self.run_id, keep_nicknames=self.keep_nicknames,
                             sdkappid=self.config.sdkappid),
                    dlt.mark.make_hints(**HINTS), create_table_variant=True)
            if self.since is None:  # a backfill leaves the incremental position alone
                state["next_start"] = got.window.end + 1
            out["records"] += len(got.records)
            out["records_windows"] += 1
            out["records_pages"] += got.pages
            out["records_repaged"] += got.repaged
            log.info("records %s: %d sessions", got.window, len(got.records))
        stats = pager.client.stats if pager.client else None
        out["records_calls"] = stats.calls if stats else 0
        out["records_retries"] = stats.retries if stats else 0
        out["records_throttled"] = stats.throttled if stats else 0
        out["records_calls_per_second"] = round(stats.calls_per_second(), 3) if stats else 0.0
        return out

def _at(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)

def summary_line(row: dict[str, Any]) -> str:
    if row.get("records") is None:
        return ""
    span = "nothing settled yet"
    if row.get("records_from"):
        since, until = row["records_from"], row["records_until"]
        # the end's date too when the span crosses midnight (12:56..12:51 read backwards)
        end = f"{until:%H:%M:%S}" if until.date() == since.date() else f"{until:%Y-%m-%d %H:%M:%S}"
        span = f"{since:%Y-%m-%d %H:%M:%S}..{end} UTC"
    return (f"  records: {row['records']} sessions ({span}), {row['records_windows']} "
            f"windows, {row['records_pages']} pages, {row['records_repaged']} paged again, "
            f"{row.get('records_calls', 0)} calls (table {TABLE})")
