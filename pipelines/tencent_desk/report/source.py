"""Where a report reads: a DuckDB file's published snapshot, or a server by name. Light
(no pandas, no charts), so that input to fix is said before anything heavy is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tencent_desk.core.errors import JobError
from tencent_desk.readers.snapshot import Reader


@dataclass(frozen=True)
class Source:
    """Where the data is: a DuckDB file (its published snapshot) or a server by name."""

    where: Path | str
    dataset: str
    app: str | None = None  # a name or an sdkappid, as --app gives it

    def check(self) -> None:
        if isinstance(self.where, Path):
            if not self.where.exists():
                raise JobError(f"{self.where} not found: give the job's DuckDB file "
                               "(desk-sessions run --database FILE)")
            if not Reader.available(self.where):  # reading the job's file would block it
                raise JobError(f"{self.where} has never been published for readers: run "
                               f"`desk-sessions run` on it, or `desk-sessions publish "
                               f"--database {self.where}` once")
