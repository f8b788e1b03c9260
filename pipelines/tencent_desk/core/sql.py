"""Quoting for the SQL this package writes itself (DuckDB's and PostgreSQL's rules), in one
place. Values go in as bound parameters wherever the driver takes them; ``literal`` is for
the few places it cannot (DDL, a file name in ``read_parquet``) or where DuckDB prunes by a
constant and not by a parameter (said where it is used)."""

from __future__ import annotations

from collections.abc import Iterable


def ident(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def qualified(*parts: str) -> str:
    """A qualified name, each part quoted: ``qualified(dataset, table)``."""
    return ".".join(ident(p) for p in parts)


def literal(text: object) -> str:
    """A quoted string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def literals(values: Iterable[str]) -> str:
    """Comma-separated string literals, for ``IN (...)``; ``NULL`` (matching nothing) for
    none, where an empty list would be a syntax error."""
    return ", ".join(literal(v) for v in values) or "NULL"
