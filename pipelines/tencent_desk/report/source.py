"""Where a report reads: a DuckDB file's published snapshot, or a server by name. Light
(no pandas, no charts), so that input to fix is said before anything heavy is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tencent_desk.core.errors import JobError
from tencent_desk.readers.app_lookup import app_id
from tencent_desk.readers.snapshot import missing_dataset, unreadable


@dataclass(frozen=True)
class Source:
    """Where the data is: a DuckDB file (its published snapshot) or a server by name."""

    where: Path | str
    dataset: str
    app: str | None = None  # a name or an sdkappid, as --app gives it

    def check(self) -> None:
        """What the user must fix, in one line: of a DuckDB file, one readers cannot read,
        a dataset or an app it does not hold (a server's are said as it is read)."""
        if not isinstance(self.where, Path):
            return
        if why := unreadable(self.where) or missing_dataset(self.where, self.dataset):
            raise JobError(why)
        try:
            self.sdkappid  # noqa: B018  (looked up once, kept for the figures)
        except ValueError as exc:
            raise JobError(str(exc)) from None

    @cached_property
    def sdkappid(self) -> int | None:
        """--app as an sdkappid (None: every app); ValueError for one the dataset lacks."""
        return None if self.app is None else app_id(self.where, self.dataset, self.app,
                                                    "--app")
