"""The readers' side of the snapshot the job publishes (:mod:`tencent_desk.models.snapshot`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import duckdb
from tencent_desk.core.files import is_duckdb
from tencent_desk.models import poll_views, snapshot


def unreadable(path: Path) -> str | None:
    """Why readers cannot read the job's DuckDB file ``path``, in one line (None: they can):
    what the plan, the report and the notebooks each say of it."""
    if not path.exists():
        return f"{path} not found: give the job's DuckDB file (desk-sessions run --database FILE)"
    if not is_duckdb(path):
        return (f"{path} is not a DuckDB database: give the job's DuckDB file "
                "(desk-sessions run --database FILE)")
    if not Reader.available(path):  # reading the job's own file would block it
        return (f"{path} has never been published for readers: run `desk-sessions run` on "
                f"it, or `desk-sessions publish --database {path}` once")
    return None


def missing_dataset(path: Path, dataset: str, option: str = "--dataset") -> str | None:
    """Why the published snapshot of ``path`` has no ``dataset``, in one line naming those it
    holds (None: it has it); ``option``: how the user gave it."""
    held = Reader.datasets(path)
    if dataset in held:
        return None
    return f"no dataset {dataset!r} in {path}: it holds {', '.join(held) or 'none'}; check {option}"


class Reader:
    """An in-memory DuckDB whose views read the latest snapshot, optionally a window: the
    days it touches, and of the tables in ``WINDOW_TIMES`` only the rows within
    ``[since, until)`` when those are date-times.

    It holds no file lock: the job never waits for it, and it never waits for the job.
    :meth:`connection` makes the views again when a newer snapshot was published, so a
    kernel left open all day reads fresh data and never a file since removed.
    """

    def __init__(self, database: Path, since: datetime | date | None = None,
                 until: datetime | date | None = None, sdkappid: int | None = None) -> None:
        self.folder, self.catalog = snapshot.paths(database)
        self.since, self.until = since, until
        self.sdkappid = sdkappid  # one app's rows only (several apps in one database)
        # no progress bar: in Jupyter DuckDB draws one as a widget in the notebook's output
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET enable_progress_bar = false")
        self._generation = -1

    @staticmethod
    def available(database: Path) -> bool:
        return (snapshot.paths(database)[0] / snapshot.MANIFEST).exists()

    @staticmethod
    def datasets(database: Path) -> list[str]:
        """The datasets (schemas) of the snapshot published beside ``database``."""
        return sorted(snapshot.read_manifest(snapshot.paths(database)[0])["schemas"])

    def connection(self) -> duckdb.DuckDBPyConnection:
        manifest = snapshot.read_manifest(self.folder)
        if manifest["generation"] != self._generation:
            for sql in snapshot.view_statements(manifest, self.folder, self._days, self._rows,
                                       self.sdkappid):
                self._con.execute(sql)
            # a snapshot published before they existed, or a dataset without polls
            for schema in manifest["schemas"]:
                poll_views.for_reader(self._con, schema)
            self._generation = manifest["generation"]
        return self._con

    def _days(self, _schema: str, _table: str) -> Callable[[str], bool]:
        lo, hi = snapshot.window_days(self.since, self.until)
        return lambda d: d in (snapshot.WHOLE, "undated") or ((lo is None or d >= lo)
                                                     and (hi is None or d <= hi))

    def _rows(self, table: str) -> str:
        return snapshot.window_rows(table, self.since, self.until)

    def close(self) -> None:
        self._con.close()
