"""Quoting for the SQL this package writes itself (DuckDB's rules), in one place."""

from __future__ import annotations

from collections.abc import Iterable


def ident(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted string literal."""
    return "'" + text.replace("'", "''") + "'"


def literals(values: Iterable[str]) -> str:
    """Comma-separated string literals, for ``IN (...)``; ``NULL`` (matching nothing) for
    none, where an empty list would be a syntax error."""
    return ", ".join(literal(v) for v in values) or "NULL"
