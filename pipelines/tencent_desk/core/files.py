"""What a file is, told without opening it: readers and the job alike ask before DuckDB
would refuse it (or wait for the job holding it)."""

from __future__ import annotations

from pathlib import Path


def is_duckdb(path: Path) -> bool:
    """Whether ``path`` is a DuckDB database file, by its header's magic bytes: read, not
    opened (opening the job's file would wait for, or block, the job)."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(12)[8:] == b"DUCK"
