"""Where a report reads: a DuckDB file's published snapshot, or a server by name. Light
(no pandas, no charts), so that input to fix is said before anything heavy is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tencent_desk.core.errors import JobError
from tencent_desk.readers.snapshot import missing_dataset, unreadable


@dataclass(frozen=True)
class Source:
    """Where the data is: a DuckDB file (its published snapshot) or a server by name."""

    where: Path | str
    dataset: str
    app: str | None = None  # a name or an sdkappid, as --app gives it

    def check(self) -> None:
        if isinstance(self.where, Path) and (
                why := unreadable(self.where) or missing_dataset(self.where, self.dataset)):
            raise JobError(why)
