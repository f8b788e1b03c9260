"""One run per database at a time, and what the run in progress has done so far."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from tencent_desk.core.errors import JobError


class RunLock:
    """A small file next to the database, held locked for the whole run: one job per
    database at a time (DuckDB allows one writer, but only while loading: this makes a
    second job fail before it polls anything), and a record of the run in progress.

    A run that dies while fetching left nothing to load: the next run records it in
    ``runs`` as ``interrupted``. One that dies while loading left a complete package,
    which dlt loads at the start of the next run.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd = -1

    def __enter__(self) -> RunLock:
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JobError(f"cannot write next to the database ({self.path}): "
                           f"{exc.strerror}; choose a folder you can write to",
                           exit_code=3) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = self.read().get("pid")  # none yet: a plan, or a run just started
            os.close(self._fd)
            who = f" (pid {other})" if other else ""
            raise JobError(f"another desk-sessions run{who} is writing "
                           f"{self.path.with_suffix('')}: wait for it to finish",
                           exit_code=3) from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(self._fd, 4096, 0) or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, **entry: Any) -> None:
        data = json.dumps({**entry, "pid": os.getpid()}, default=str).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def interrupted(self) -> list[dict[str, Any]]:
        """The ``runs`` row of a previous run that stopped before it had anything to load:
        ``failed`` (with its error) or ``interrupted`` (killed)."""
        last = self.read()
        if last.get("phase") not in ("fetching", "failed") or not last.get("run_id"):
            return []
        return [{"run_id": last["run_id"],
                 "status": "interrupted" if last["phase"] == "fetching" else "failed",
                 "error": last.get("error"),
                 "started_at": datetime.fromisoformat(last["started_at"]),
                 "kind": last.get("kind", "poll")}]
