"""The receiver's durable spool: a folder of segment files that only the receiver writes
and only the job retires, so the two never share (or block on) the database.

A segment is JSON lines. Its life:

* ``tmp-*``: created and locked (``flock``) by a receiver, then renamed to
* ``active-*``: appended with group commit (one ``write`` + ``fdatasync`` per batch of
  events; an event is acknowledged only after its batch is on disk). Locked for as long
  as its receiver lives. Renamed, still locked, to
* ``sealed-*``: complete; the job loads it, and deletes it once the load is recorded.

A receiver killed with -9 leaves an ``active-*`` segment no one holds a lock on: whoever
next looks (a receiver starting, or the job) seals it. Its last line may be torn: that
event was never acknowledged, and readers skip it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tencent_desk.core.durable import fsync_dir
from tencent_desk.core.settings import SEAL_AFTER_S

log = logging.getLogger("desk_sessions.spool")

SEAL_BYTES = 64 * 1024 * 1024


def spool_dir(database: Path) -> Path:
    return database.with_name(database.name + ".spool")


def seal_orphans(directory: Path) -> int:
    """Seal every ``active-*`` segment whose receiver is gone; returns how many."""
    sealed = 0
    for path in sorted(directory.glob("active-*")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # sealed meanwhile by its receiver
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live receiver writes it
            os.close(fd)
            continue
        try:
            os.rename(path, path.with_name("sealed-" + path.name.removeprefix("active-")))
            sealed += 1
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    if sealed:
        fsync_dir(directory)
        log.warning("sealed %d spool segments a stopped receiver left open", sealed)
    return sealed


def sealed_segments(directory: Path) -> list[Path]:
    """Every complete segment, oldest first, after sealing orphans."""
    if not directory.is_dir():
        return []
    seal_orphans(directory)
    return sorted(directory.glob("sealed-*"))


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a segment; a torn or unreadable line (never acknowledged) is skipped."""
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # the torn tail of a killed receiver
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("skipping an unreadable line in %s", path.name)
                continue
            if isinstance(record, dict):
                yield record


def retire(paths: list[Path]) -> None:
    """Delete loaded segments (their load is recorded: loading them again changes nothing)."""
    for path in paths:
        path.unlink(missing_ok=True)
    if paths:
        fsync_dir(paths[0].parent)


class SpoolWriter:
    """Appends records with group commit. ``append`` returns once the record is durable.

    One asyncio task commits: whatever arrived while the previous batch was being written
    goes in the next ``write`` + ``fdatasync``, done in a thread so the loop keeps taking
    requests. A segment is sealed after ``seal_after_s`` or ``seal_bytes``.
    """

    def __init__(self, directory: Path, *, seal_after_s: float = SEAL_AFTER_S,
                 seal_bytes: int = SEAL_BYTES) -> None:
        self.directory = directory
        self.seal_after_s = seal_after_s
        self.seal_bytes = seal_bytes
        self._fd = -1
        self._path: Path | None = None
        self._size = 0
        self._opened = 0.0
        self._seq = 0
        self._buf: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob("tmp-*"):  # killed between create and rename
            if time.time() - stale.stat().st_mtime > 60:
                stale.unlink(missing_ok=True)
        seal_orphans(self.directory)
        self._task = asyncio.create_task(self._commit_loop())

    async def append(self, line: bytes) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("the spool is not running")
        fut = asyncio.get_running_loop().create_future()
        self._buf.append(line)
        self._waiters.append(fut)
        self._wake.set()
        await fut

    async def close(self) -> None:
        """Commit what is pending, seal the segment, stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._fd >= 0:
            self._seal()

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.seal_after_s / 4)
            self._wake.clear()
            if self._buf:
                data, waiters = b"".join(self._buf), self._waiters
                self._buf, self._waiters = [], []
                try:
                    await loop.run_in_executor(None, self._write, data)
                except OSError as exc:
                    log.error("spool write failed: %s", exc.strerror)
                    # A torn line must stay the last of its segment: start a new one.
                    if self._fd >= 0:
                        await loop.run_in_executor(None, self._seal)
                    for w in waiters:
                        if not w.done():
                            w.set_exception(exc)
                    continue
                self.batches += 1
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
            if self._fd >= 0 and (self._size >= self.seal_bytes or
                                  time.monotonic() - self._opened >= self.seal_after_s):
                await loop.run_in_executor(None, self._seal)
            if self._closing and not self._buf:
                return

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            self._open()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fdatasync(self._fd)
        self._size += len(data)

    def _open(self) -> None:
        self._seq += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}.jsonl"
        tmp = self.directory / f"tmp-{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # before it is named active: no one seals it under us
        self._path = self.directory / f"active-{name}"
        os.rename(tmp, self._path)
        fsync_dir(self.directory)
        self._fd, self._size, self._opened = fd, 0, time.monotonic()

    def _seal(self) -> None:
        assert self._path is not None
        # Renamed while still locked: an orphan sweep never sees it active and unlocked.
        os.rename(self._path, self._path.with_name(
            "sealed-" + self._path.name.removeprefix("active-")))
        fsync_dir(self.directory)
        os.close(self._fd)
        self._fd, self._path = -1, None
