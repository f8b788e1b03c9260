"""The errors that cross layers, in one place: what the user must fix, said in one line."""

from __future__ import annotations

from typing import Any


class DeskError(Exception):
    """Base of the Desk client's errors; messages never carry a secret."""


class ConfigError(DeskError):
    """The configuration cannot work; the message says what to fix."""


class JobError(Exception):
    """A problem the user must fix; ``str()`` is the one line to show. ``row``: the
    ``runs`` row when the run was loaded all the same."""

    def __init__(self, message: str, exit_code: int = 2,
                 row: dict[str, Any] | None = None,
                 rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.row = row
        self.rows = rows if rows is not None else [row] if row is not None else []
