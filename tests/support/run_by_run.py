"""A polled database's runs loaded again one at a time, as the job's loads came."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

TABLES = ("runs", "session_states")


def load_run_by_run(con: duckdb.DuckDBPyConnection, source: Path, dataset: str,
                    after_each: Callable[[], object]) -> None:
    """Into ``con``: ``source``'s runs and session_states, one run at a time in run order,
    with ``after_each()`` (the upkeep under test) called after every run."""
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    con.execute(f"CREATE SCHEMA {dataset}")
    for name in TABLES:
        con.execute(f"CREATE TABLE {dataset}.{name} AS SELECT * FROM src.{dataset}.{name} "
                    "LIMIT 0")
    runs = [r for (r,) in con.execute(f"SELECT run_id FROM src.{dataset}.runs ORDER BY 1"
                                      ).fetchall()]
    for run_id in runs:
        for name in TABLES:
            con.execute(f"INSERT INTO {dataset}.{name} SELECT * FROM src.{dataset}.{name} "
                        "WHERE run_id = ?", [run_id])
        after_each()
