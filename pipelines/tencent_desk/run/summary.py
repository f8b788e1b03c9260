"""The closing lines of a run, for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tencent_desk.api import states
from tencent_desk.job.record_source import summary_line as records_summary
from tencent_desk.job.runs import FAILED
from tencent_desk.models import snapshot


def summary(row: dict[str, Any], database: Path, dataset: str,
            where: str | None = None) -> str:
    """The closing lines of a run, for people. ``where``: a server destination."""
    counts = ", ".join(f"{s} {row.get(f'n_{s}', 0)}" for s in states.ALL
                       if row.get(f"n_{s}"))
    took = (row["finished_at"] - row["started_at"]).total_seconds()
    read_from = (f"  read it from: {snapshot.paths(database)[1]} (or DESK_DUCKDB={database} "
                 "for the notebooks); never open the job's file itself") if where is None \
        else "  no snapshot published: readers read the server itself"
    data = where or str(database)
    if row.get("status") == FAILED:  # one app of several that could not run
        return (f"run {row['run_id']} (app {row.get('app')}, sdkappid {row.get('sdkappid')}): "
                f"failed after {took:.1f} s, {row['rows']} rows loaded: {row['error']}")
    if row.get("seed") == "-":  # records only
        return "\n".join([
            f"run {row['run_id']}{_app(row)}: {row['records']} session records in "
            f"{took:.1f} s",
            records_summary(row),
            f"  calls: {row['calls']} ({row['retries']} retries, {row['throttled']} "
            f"throttled), {row['calls_per_second']:.1f} calls/s at max_qps {row['max_qps']:g}",
            f"  data: {data} dataset {dataset} (tables session_records, record_runs)",
            read_from])
    return "\n".join(filter(None, [
        f"run {row['run_id']}{_app(row)}: {row['rows']} rows from {row['keys']} keys in "
        f"{took:.1f} s",
        f"  states: {counts or 'none'}",
        f"  seed: {row['seed_rows']} rows, {row['rejects']} rejected (table seed_rejects), "
        f"{row['duplicates']} repeated, {row['skipped_ended']} skipped as ended",
        f"  errors: {row['errors']} keys ended in error, {row['not_asked']} not asked "
        f"(status {row['status']})",
        f"  calls: {row['calls']} ({row['retries']} retries, {row['throttled']} throttled), "
        f"{row['calls_per_second']:.1f} calls/s at max_qps {row['max_qps']:g}",
        records_summary(row),
        f"  data: {data} dataset {dataset} (tables session_states, "
        "session_state_latest, runs, seed_rejects, session_events, session_timeline)",
        *([f"  events: {row['events_loaded']} received events loaded into session_events, "
           f"{row.get('events_unknown', 0)} with unknown names"]
          if row.get("events_loaded") else []),
        read_from,
    ]))


def _app(row: dict[str, Any]) -> str:
    return f" (app {row['app']}, sdkappid {row['sdkappid']})" if row.get("app") else ""
