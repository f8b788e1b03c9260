"""Checks of where a run writes, before it asks the API anything: the folder, and the
DuckDB file not held open by another process; the run's own hold on that file while it
works in it (:class:`Held`); and the one line for a database problem."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
from tencent_desk.core import settings
from tencent_desk.core.errors import JobError
from tencent_desk.core.files import check_file, check_folder
from tencent_desk.job import destination, space
from tencent_desk.models import snapshot


def local_anchor(kind: str, database: Path | None, state_dir: Path | None) -> Path:
    """The DuckDB file, or with a server ``--state-dir``'s anchor (see :mod:`destination`),
    checked: the file's kind, its folder."""
    try:
        anchor = destination.anchor(kind, database, state_dir)
    except ValueError as exc:
        raise JobError(str(exc), exit_code=2) from None
    on_server = kind != destination.DUCKDB
    if not on_server:
        check_file(anchor)
    check_folder(anchor, "--state-dir" if on_server else "--database path")
    return anchor


def check_database(database: Path, wait_s: float = settings.DATABASE_LOCK_WAIT_S,
                   sleep: Any = time.sleep) -> None:
    """Fail early, in one line, when the destination cannot be opened for writing; a lock
    held by another process is waited for a while (a moment's query against the job's own
    file by some other tool), then explained."""
    _open(database, wait_s, sleep).close()


def _open(database: Path, wait_s: float, sleep: Any = time.sleep) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(database))
        except duckdb.Error as exc:
            if not _locked(exc) or time.monotonic() >= deadline:
                raise JobError(database_problem(database, exc), exit_code=3) from None
            sleep(0.5)


class Held:
    """The run's own connection to its DuckDB file (opened as :func:`check_database`
    checks it), kept while the run works in the file: each of dlt's connections meanwhile
    shares the open database instead of opening it again (some 20 ms of CPU each, a dozen
    a run). Let go while the API is asked (:meth:`released`), as a run always has: another
    process may open the file then, and the load says so in one line."""

    def __init__(self, database: Path, wait_s: float = settings.DATABASE_LOCK_WAIT_S) -> None:
        self.database = database
        self._con: duckdb.DuckDBPyConnection | None = _open(database, wait_s)
        self._away = 0  # apps asking the API now (several at once in parallel)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        with self._lock:
            self._away += 1
            if self._away == 1:
                self.close()
        try:
            yield
        finally:
            with self._lock:
                self._away -= 1
                if self._away == 0:
                    # taken meanwhile (or gone): dlt's own connection meets it and says so
                    with contextlib.suppress(duckdb.Error):
                        self._con = duckdb.connect(str(self.database))

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _locked(exc: BaseException) -> bool:
    # DuckDB's own lock messages only: "could not allocate block" is no lock
    text = str(exc).lower()
    return "lock on file" in text or "conflicting lock" in text


def database_problem(database: Path, exc: BaseException) -> str:
    if space.no_space(exc):
        return space.message(exc, database)
    text = str(exc)
    if _locked(exc):
        pid = next((w for w in text.replace(")", " ").split() if w.isdigit()), None)
        who = f"process {pid}" if pid else "another process"
        return (f"database {database} is held open by {who} (DuckDB: no writer while "
                "another process has it open, even read-only): close it there; readers "
                f"should open {snapshot.paths(database)[1].name}, published by each run")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot use database {database}: {first[:200]}"
