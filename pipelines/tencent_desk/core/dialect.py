"""Where the SQL the job runs in its destination differs between DuckDB and PostgreSQL, in
one place. Everything else the job runs there is written once, in SQL both accept."""

from __future__ import annotations

from typing import Any

DUCKDB, POSTGRES = "duckdb", "postgres"

# A row's physical address, to tell apart two copies of one row.
ROW_ID = {DUCKDB: "rowid", POSTGRES: "ctid"}


def of(pipeline: Any) -> str:
    """The dialect of a pipeline's destination."""
    return str(pipeline.destination.destination_name)


def first_by(dialect: str, value: str, order: str, where: str) -> str:
    """``value`` of the first row by ``order`` among those matching ``where`` (an
    aggregate); PostgreSQL has no ``arg_min``."""
    if dialect == DUCKDB:
        return f"arg_min({value}, {order}) FILTER (WHERE {where})"
    return f"(array_agg({value} ORDER BY {order}) FILTER (WHERE {where}))[1]"
