"""A run's identity, its ``runs`` row and its status rule, in one place."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

from tencent_desk.api import states
from tencent_desk.api.client import ClientConfig, Stats
from tencent_desk.core.clock import Clock, utc
from tencent_desk.job.seeds import SeedCounts


def new_run_id(clock: Clock) -> str:
    """Sortable by time, unique across hosts."""
    return f"{utc(clock):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


# A loaded run's status: complete, or cut short by an outage (its ``error`` says why); one
# app of several that could not run (credentials refused, its seed ...) is ``failed``.
COMPLETE, OUTAGE, FAILED = "complete", "outage", "failed"


def final_status(error: str | None) -> str:
    """The status of a run once its package is loaded (``after_load`` decides it, with
    this rule only): complete, or cut short by an outage (its ``error`` says why; a
    records-only run has none, so it completes). ``failed`` is known before loading."""
    return COMPLETE if error is None else OUTAGE


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
        "app": app,  # the name of a named app ([sources.tencent_desk.apps.<name>])
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
