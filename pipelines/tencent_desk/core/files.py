"""What a file is, and whether its folder can take it, told without opening it: readers,
the job and the receiver alike ask before DuckDB would refuse it (or wait for the job
holding it)."""

from __future__ import annotations

import os
from pathlib import Path

from tencent_desk.core.errors import JobError


def is_duckdb(path: Path) -> bool:
    """Whether ``path`` is a DuckDB database file, by its header's magic bytes: read, not
    opened (opening the job's file would wait for, or block, the job)."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(12)[8:] == b"DUCK"


def check_file(database: Path) -> None:
    """Refuse, before anything is made beside it (its lock, its spool), a ``--database``
    that cannot be the job's DuckDB file: a folder, or a file of something else. One not
    there yet is made by the first run."""
    if database.is_dir():
        raise JobError(f"--database {database} is a folder: give the job's DuckDB file, e.g. "
                       f"{database / 'desk.duckdb'}")
    if database.exists() and not is_duckdb(database):
        raise JobError(f"--database {database} is not a DuckDB database: give the job's "
                       "DuckDB file, or the name of a new one")


def existing(database: Path) -> Path:
    """``database`` as an absolute path, refused unless it is there and can be the job's
    DuckDB file (:func:`check_file`): what ``publish`` reads."""
    database = database.expanduser().absolute()
    if not database.exists():
        raise JobError(f"database {database} not found: check --database", exit_code=2)
    check_file(database)
    return database


def check_folder(path: Path, option: str = "--database path") -> None:
    """Refuse a path whose folder is not there (a path to fix, exit 2, as for a database to
    read) or cannot be written (exit 3, as a database in use)."""
    folder = path.parent
    if not folder.is_dir():
        raise JobError(f"folder {folder} does not exist: create it or choose another "
                       f"{option}")
    if not os.access(folder, os.W_OK):
        raise JobError(f"folder {folder} is not writable: choose another {option}",
                       exit_code=3)
