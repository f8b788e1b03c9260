"""What readers read while the job writes: a snapshot the job publishes after every load.

DuckDB lets one process write a file or any number read it, never both at once: a notebook
kernel holding the job's database open, even read-only, would stop every run. So the
job's database (``desk.duckdb``) is the job's alone, and after each load the job publishes
what is loaded beside it:

* ``desk.read/``: Parquet files, a folder per table and day, never changed once written,
  and ``manifest.json``, the list of current files (replaced atomically);
* ``desk.read.duckdb``: views over the current files (replaced atomically). Anything may
  hold it open, read-only or not: the job never opens it, it renames a new one over it.

A run's rows appear together with its ``runs`` row, in one step: never half a run. The
cost of a publish follows the new data, not the history: a table of runs' rows gains one
file per day a run touched, a day's files are compacted into one once there are
``COMPACT_AT``, and a table whose rows change (``runs``) rewrites only the days that
changed. Files a publish replaces are removed a retention later (the setting
``snapshot_retention``, default a day: ``core.settings.SNAPSHOT_RETENTION_S``), so that
readers still on an older snapshot go on reading it;
:class:`tencent_desk.readers.snapshot.Reader` refreshes its views whenever a newer
snapshot exists.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from tencent_desk.core.clock import SystemClock
from tencent_desk.core.durable import fsync_dir, write_atomically
from tencent_desk.core.settings import SNAPSHOT_RETENTION_S
from tencent_desk.core.sql import ident, literal, qualified
from tencent_desk.models import poll_views

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# A day's files are merged into one when there are this many: a notebook reads a day in a
# few files, and a run rewrites a whole day only once every COMPACT_AT runs.
COMPACT_AT = 16
WHOLE = "all"  # the one partition of a table that has no day


@dataclass(frozen=True)
class Layout:
    """How a table is cut into days, and whether a run only ever adds rows to it.

    A row's day must never change once written (a changed row replaces the one in its
    day's files): ``run_id`` (its first 8 characters are the run's UTC day), a time that
    is fixed for the row, or a ``day`` text column the table keeps fixed itself.
    """

    column: str
    appended: bool
    # Merged on this key (one row per key, a reload replaces it): a run's rows are added
    # to their days as new files unless one of them replaces a row already published
    # there, which has the day rewritten. Rows are mostly new, so a run writes what it
    # brought rather than its whole day again.
    key: str | None = None

    def day_sql(self) -> str:
        if self.column == "run_id":
            return ("coalesce(strftime(try_strptime(left(run_id, 8), '%Y%m%d'), '%Y-%m-%d'),"
                    " 'undated')")
        if self.column == "day":
            return "coalesce(day, 'undated')"
        return f"coalesce(strftime({self.column}, '%Y-%m-%d'), 'undated')"

    def day_filter(self, day: str) -> str:
        """Rows of one day, as a range the column's zone maps can skip by."""
        if day == "undated" or self.column == "day":
            return f"({self.day_sql()}) = {literal(day)}"
        nxt = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        if self.column == "run_id":
            return (f"run_id >= {literal(day.replace('-', ''))} "
                    f"AND run_id < {literal(nxt.replace('-', ''))}")
        col = ident(self.column)
        return f"{col} >= TIMESTAMPTZ {literal(day)} AND {col} < TIMESTAMPTZ {literal(nxt)}"

    def window_filter(self, first: str | None, last: str | None) -> str:
        """Rows of the days ``first``..``last`` (ISO dates, inclusive; None: open), and the
        undated ones, as the Reader keeps them: plain comparisons with literals, valid SQL on
        DuckDB and PostgreSQL alike, that an index on the column serves."""
        col, parts = ident(self.column), []
        for day, op in ((first, ">="), (_next_day(last), "<")):
            if day is None:
                continue
            if self.column == "run_id":
                parts.append(f"{col} {op} {literal(day.replace('-', ''))}")
            elif self.column == "day":
                parts.append(f"{col} {op} {literal(day)}")
            else:  # UTC midnight, whatever the session's time zone
                parts.append(f"{col} {op} CAST({literal(day + ' 00:00:00+00')} AS TIMESTAMPTZ)")
        if not parts:
            return "TRUE"
        undated = f"{col} IS NULL" + (f" OR {col} = 'undated'" if self.column == "day" else "")
        return f"(({' AND '.join(parts)}) OR {undated})"


# What is new in a table is found through the runs' logs: every table the job writes carries
# the run_id of the run that (last) wrote its rows.
RUN_LOGS = ("runs", "record_runs")
# The logs of a dataset that have the ``app`` column (SQL of DuckDB and PostgreSQL; ``param``
# names the dataset: DuckDB's ``?``, a dlt sql_client's ``%s``).
APP_LOGS_SQL = ("SELECT table_name FROM information_schema.columns WHERE table_schema = {param} "
                "AND table_catalog = current_database() AND column_name = 'app'")


def logged_runs_sql(ds: str, logs: Sequence[str], where: str, with_app: Sequence[str]) -> str:
    """``run_id, _dlt_load_id`` of the rows of the runs' logs ``logs`` that match ``where``,
    and of the runs they stand for (SQL of DuckDB and PostgreSQL). ``with_app``: the logs
    that have the ``app`` column (an older database's may not).

    The one rule of which run ids are new with a log's row: a run loads the received events
    once, before its apps ask, stamped with its own id; with several apps each app's row
    carries that id and ``-<app>`` (``RunContext.of``), so it stands for the run's own id
    too. Else the events of a run of several apps would never be published or reach the
    timeline (a run of one app, or one killed before its apps' rows, logs its own id)."""
    parts = []
    for t in logs:
        parts.append(f"SELECT run_id, _dlt_load_id FROM {ds}.{t} WHERE {where}")
        if t in with_app:
            parts.append(
                f"SELECT left(run_id, length(run_id) - length(app) - 1) AS run_id, _dlt_load_id "
                f"FROM {ds}.{t} WHERE ({where}) AND app IS NOT NULL AND app <> '' AND "
                "right(run_id, length(app) + 1) = '-' || app")
    return " UNION ALL ".join(parts)


# Tables not named here have one partition, rewritten whenever a load touched them.
LAYOUTS: dict[str, Layout] = {
    "runs": Layout("run_id", appended=False),
    "record_runs": Layout("run_id", appended=False),
    "session_records": Layout("started_at", appended=False),
    "session_states": Layout("run_id", appended=True),
    "seed_rejects": Layout("run_id", appended=True),
    "session_timeline": Layout("day", appended=False),
    # Merged on request_id: a reloaded event replaces itself, in the day of its event_time.
    "session_events": Layout("event_time", appended=False, key="request_id"),
    # Interval tables: a changed interval replaces its row, in the day of its start.
    "queue_intervals": Layout("interval_start", appended=False),
    "agent_intervals": Layout("interval_start", appended=False),
    "interval_sketches": Layout("interval_start", appended=False),
}
# A Reader for a window keeps, of these tables, only the rows whose time is in it. The
# timeline is left whole (by day): figures at an instant need sessions begun before it.
WINDOW_TIMES: dict[str, str] = {
    "runs": "started_at",
    "record_runs": "started_at",
    "session_states": "polled_at",
    "session_events": "event_time",
    "session_records": "started_at",
    "queue_intervals": "interval_start",
    "agent_intervals": "interval_start",
    "interval_sketches": "interval_start",
}


def window_rows(table: str, since: datetime | date | None,
                until: datetime | date | None) -> str:
    """SQL (DuckDB's and PostgreSQL's) keeping a table's rows of ``[since, until)`` by its
    ``WINDOW_TIMES`` column; "TRUE" for other tables, or bounds given as dates (whole days)."""
    column = WINDOW_TIMES.get(table)
    bounds = [f"{ident(column)} {op} TIMESTAMPTZ {literal(at.isoformat())}"
              for op, at in ((">=", since), ("<", until))
              if column and isinstance(at, datetime)]
    return " AND ".join(bounds) or "TRUE"


def paths(database: Path) -> tuple[Path, Path]:
    """The snapshot's folder and catalog for a database: ``desk.read/``, ``desk.read.duckdb``."""
    stem = database.with_suffix("") if database.suffix == ".duckdb" else database
    folder = stem.with_name(stem.name + ".read")
    return folder, folder.with_name(folder.name + ".duckdb")


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        return {"version": FORMAT_VERSION, "generation": 0, "schemas": {}, "retired": []}
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{folder / MANIFEST}: unknown snapshot format {data.get('version')!r}"
                         "; delete the folder and run `desk-sessions publish` to rebuild it")
    return data


# --- the writer's side ------------------------------------------------------------------


class Publisher:
    """Publishes, from the job's open connection, what was loaded since the last publish.
    ``retain_s``: how long the files it replaces stay for readers of older snapshots;
    ``now``: the clock that times it (the job's wall clock, read at each call);
    ``rebuild``: start the snapshot over (see :meth:`_start_over`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, database: Path,
                 now: Callable[[], float] | None = None,
                 retain_s: float = SNAPSHOT_RETENTION_S, rebuild: bool = False) -> None:
        if not retain_s > 0:  # 0 would remove files readers of the last snapshot hold
            raise ValueError(f"retain_s must be above 0, not {retain_s!r}")
        self.con = con
        self.folder, self.catalog = paths(database)
        self.now = now or SystemClock().time
        self.retain_s = retain_s
        self.folder.mkdir(exist_ok=True)
        self.written = 0
        self.replaced: list[str] = []  # files this publish takes out of the snapshot
        self.manifest = self._start_over() if rebuild else read_manifest(self.folder)

    def _start_over(self) -> dict[str, Any]:
        """An empty manifest, so that this publish writes every table again from the
        database; every file of the old snapshot is replaced, as a publish replaces files:
        retired now and removed a retention later, for readers still on an older snapshot.
        The old manifest may be lost or damaged (the reason to rebuild): the files on disk
        are what is retired, and what it had retired keeps its time. The generation goes on
        from the old one, so that a Reader moves to the new snapshot."""
        try:
            old = read_manifest(self.folder)
            generation = int(old.get("generation", 0))
            retired = [[str(n), float(at)] for n, at in old.get("retired", [])]
        except (ValueError, TypeError, AttributeError, OSError):
            # unreadable: a generation (the time) far above any a Reader counted up to
            generation, retired = int(self.now()), []
        known = {n for n, _ in retired}
        for file in sorted(self.folder.glob("*/*/*/*.parquet")):  # schema/table/day/file
            name = file.relative_to(self.folder).as_posix()
            if name not in known:
                self.replaced.append(name)
        return {"version": FORMAT_VERSION, "generation": generation, "schemas": {},
                "retired": retired}

    def dataset(self, dataset: str) -> int:
        """Publish a dlt dataset's loads since the last publish; returns the rows written."""
        entry = self.manifest["schemas"].setdefault(dataset, {"tables": {}})
        watermark = entry.get("load_id", "")
        tables = self._tables(dataset)
        if "_dlt_loads" not in tables:
            return 0
        ds = ident(dataset)
        (top,) = self.con.execute(
            f"SELECT max(load_id) FROM {ds}._dlt_loads WHERE status = 0 AND load_id > ?",
            [watermark]).fetchone() or (None,)
        if top is None:
            return 0
        new_runs = "FALSE"
        logs = [t for t in RUN_LOGS if t in tables]
        if logs:
            ids = sorted({r for (r, _) in self.con.execute(logged_runs_sql(
                ds, logs, "_dlt_load_id > $1 AND _dlt_load_id <= $2",
                [t for t in logs if "app" in tables[t]]), [watermark, top]).fetchall()})
            if ids:  # the range lets DuckDB skip the history by its zone maps
                new_runs = (f"run_id >= {literal(ids[0])} AND run_id <= {literal(ids[-1])} AND "
                            f"run_id IN ({', '.join(map(literal, ids))})")
        before = self.written
        for table in tables:
            if table.startswith("_"):  # dlt's own, and the job's bookkeeping
                continue
            layout = LAYOUTS.get(table)
            if table not in RUN_LOGS and "run_id" in tables[table]:
                changed = new_runs
            elif "_dlt_load_id" in tables[table]:
                changed = (f"_dlt_load_id > {literal(watermark)} AND _dlt_load_id <= "
                           f"{literal(top)}")
            else:
                changed = "TRUE"
            self._table(dataset, table, tables[table], layout, changed)
        self._views(dataset)
        entry["load_id"] = top
        return self.written - before

    def whole(self, schema: str, table: str) -> None:
        """Publish a table outside the dataset (the simulator's truth) in full."""
        columns = self._tables(schema).get(table)
        if columns is not None:
            self.manifest["schemas"].setdefault(schema, {"tables": {}})
            self._table(schema, table, columns, None, "TRUE")

    def commit(self) -> None:
        """Make what was published visible: the manifest, then the catalog; then remove the
        files retired ``retain_s`` ago or more. The files this publish replaced are
        retired now, as readers stop being shown them: they stay a whole retention."""
        now = self.now()
        self.manifest["generation"] = int(self.manifest.get("generation", 0)) + 1
        self.manifest["published_at"] = datetime.fromtimestamp(now).astimezone().isoformat()
        self._sweep()
        expired = [n for n, at in self.manifest.get("retired", []) if now - at >= self.retain_s]
        gone = set(expired)
        self.manifest["retired"] = [
            [n, at] for n, at in self.manifest.get("retired", []) if n not in gone
        ] + [[n, now] for n in self.replaced]
        write_atomically(self.folder / MANIFEST,
                          json.dumps(self.manifest, separators=(",", ":")).encode())
        self._write_catalog()
        # Only once the new snapshot is visible; a crash before this leaves them unlisted,
        # and the next publish's sweep retires them again.
        for name in expired:
            (self.folder / name).unlink(missing_ok=True)

    def _tables(self, schema: str) -> dict[str, dict[str, str]]:
        rows = self.con.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)"
            " WHERE c.table_schema = ? AND t.table_type = 'BASE TABLE'"
            " AND t.table_catalog = current_database() ORDER BY c.table_name, c.ordinal_position",
            [schema]).fetchall()
        out: dict[str, dict[str, str]] = {}
        for table, column, kind in rows:
            out.setdefault(table, {})[column] = kind
        return out

    def _table(self, schema: str, table: str, columns: dict[str, str], layout: Layout | None,
               changed: str) -> None:
        entry = self.manifest["schemas"][schema]["tables"].setdefault(
            table, {"days": {}, "mixed": False})
        self._note_columns(entry, list(columns))
        entry["columns"] = list(columns.items())
        days: dict[str, list[str]] = entry["days"]
        source = qualified(schema, table)
        day_sql = layout.day_sql() if layout else literal(WHOLE)
        touched = [d for (d,) in self.con.execute(
            f"SELECT DISTINCT {day_sql} FROM {source} WHERE {changed}").fetchall()]
        if not touched:
            return
        appended = layout is not None and (layout.appended or (
            layout.key in columns and self._only_new(
                layout, source, changed, [n for d in touched for n in days.get(d, [])])))
        add = [d for d in touched if appended and len(days.get(d, [])) + 1 < COMPACT_AT]
        rewrite = [d for d in touched if d not in add]
        if add:
            self._copy(schema, table, f"SELECT *, {day_sql} AS __day FROM {source} "
                       f"WHERE ({changed})", days, replace=False)
        if rewrite:
            where = " OR ".join(f"({layout.day_filter(d)})" for d in rewrite) if layout \
                else "TRUE"
            self._copy(schema, table, f"SELECT *, {day_sql} AS __day FROM {source} "
                       f"WHERE {where}", days, replace=True, only=set(rewrite))

    def _note_columns(self, entry: dict[str, Any], names: list[str]) -> None:
        """Whether the table's files may differ in columns (``mixed``): then readers read
        them with ``union_by_name``, which opens every file to read its schema; otherwise
        the first one only (a view over 90 days of files binds in milliseconds, not half a
        second). A manifest from before this was noted: the files' schemas are read once."""
        files = [n for names_ in entry["days"].values() for n in names_]
        changed = bool(files) and [c for c, _ in entry.get("columns", [])] != names
        if "mixed" not in entry and files and not changed:
            paths = ", ".join(literal(str(self.folder / n)) for n in files)
            (kinds,) = self.con.execute(
                f"SELECT count(DISTINCT cols) FROM (SELECT file_name, string_agg(name, ',' "
                f"ORDER BY name) AS cols FROM parquet_schema([{paths}]) WHERE num_children IS "
                "NULL GROUP BY file_name)").fetchone() or (0,)
            changed = kinds > 1
        entry["mixed"] = bool(entry.get("mixed")) or changed

    def _only_new(self, layout: Layout, source: str, changed: str, files: list[str]) -> bool:
        """A merged table's changed rows replace none already published in ``files``."""
        if not files:
            return True
        key = ident(str(layout.key))
        paths = ", ".join(literal(str(self.folder / n)) for n in files)
        (clash,) = self.con.execute(
            f"SELECT count(*) FROM read_parquet([{paths}]) WHERE {key} IN "
            f"(SELECT {key} FROM {source} WHERE {changed})").fetchone() or (0,)
        return clash == 0

    def _copy(self, schema: str, table: str, select: str, days: dict[str, list[str]], *,
              replace: bool, only: set[str] | None = None) -> None:
        """One pass over the table writes every day's new file (DuckDB partitions it)."""
        tmp = self.folder / f".tmp-{uuid.uuid4().hex[:12]}"
        if only is not None:
            select = f"SELECT * FROM ({select}) WHERE __day IN ({', '.join(map(literal, only))})"
        (n,) = self.con.execute(
            f"COPY ({select}) TO {literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd, "
            "PARTITION_BY (__day), FILENAME_PATTERN 'part-{uuid}')").fetchone() or (0,)
        self.written += int(n)
        stamp = f"{int(self.now() * 1000):013d}"
        for part in sorted(tmp.glob("__day=*")):
            day = part.name.split("=", 1)[1]
            target = self.folder / schema / table / day
            target.mkdir(parents=True, exist_ok=True)
            names = []
            for file in sorted(part.glob("*.parquet")):
                name = f"{schema}/{table}/{day}/{stamp}-{file.stem[5:13]}.parquet"
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(file, self.folder / name)
                names.append(name)
            fsync_dir(target)
            if replace:
                self.replaced.extend(days.get(day, []))
                days[day] = names
            else:
                days.setdefault(day, []).extend(names)
        shutil.rmtree(tmp, ignore_errors=True)

    def _views(self, schema: str) -> None:
        """The dataset's views (e.g. session_state_latest), made again over the snapshot."""
        views = self.con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = ? AND NOT internal "
            "AND database_name = current_database()", [schema]).fetchall()
        # in an order they can be made in: the poll views read those before them
        self.manifest["schemas"][schema]["views"] = dict(sorted(views, key=_view_order))

    def _sweep(self) -> None:
        """Files no manifest lists (a publish killed half-way) are retired like replaced ones."""
        known = {n for s in self.manifest["schemas"].values() for t in s["tables"].values()
                 for files in t["days"].values() for n in files}
        known |= {n for n, _ in self.manifest.get("retired", [])} | set(self.replaced)
        for schema in self.manifest["schemas"]:
            for file in (self.folder / schema).glob("*/*/*.parquet"):
                name = file.relative_to(self.folder).as_posix()
                if name not in known:
                    self.replaced.append(name)
        for stale in self.folder.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def _write_catalog(self) -> None:
        tmp = self.catalog.with_name(f".{self.catalog.name}.{uuid.uuid4().hex[:8]}.tmp")
        wal = tmp.with_name(tmp.name + ".wal")
        try:
            con = duckdb.connect(str(tmp))
            try:
                for sql in view_statements(self.manifest, self.folder):
                    con.execute(sql)
                con.execute("CHECKPOINT")  # raises on a full disk; close() would not
            finally:
                con.close()
            if wal.exists():  # views left in a WAL: renamed alone, the catalog lacks them
                raise OSError(errno.ENOSPC, "the catalog's checkpoint did not finish",
                              str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            wal.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.catalog)
        fsync_dir(self.catalog.parent)


def publish(con: duckdb.DuckDBPyConnection, database: Path, datasets: Sequence[str],
            whole: Sequence[tuple[str, str]] = (),
            retain_s: float = SNAPSHOT_RETENTION_S, rebuild: bool = False) -> int:
    """Publish the given datasets (and whole tables); returns the rows written.
    ``rebuild``: the snapshot started over, its files retired like replaced ones."""
    publisher = Publisher(con, database, retain_s=retain_s, rebuild=rebuild)
    rows = sum(publisher.dataset(d) for d in datasets)
    for schema, table in whole:
        publisher.whole(schema, table)
    publisher.commit()
    return rows


def _view_order(view: tuple[str, str]) -> tuple[int, str]:
    name = view[0]
    return (poll_views.VIEWS.index(name) + 1 if name in poll_views.VIEWS else 0, name)


# --- the readers' side ------------------------------------------------------------------


def view_statements(manifest: dict[str, Any], folder: Path,
                    days: Callable[[str, str], Callable[[str], bool]] | None = None,
                    rows: Callable[[str], str] | None = None,
                    sdkappid: int | None = None) -> list[str]:
    """SQL making every published table a view over its files (an empty table where it has
    none), then the dataset's own views. ``days(schema, table)`` keeps the days it accepts,
    ``rows(table)`` the rows its condition accepts ("TRUE": all); ``sdkappid``: only that
    app's rows, in every table that has the column."""
    out: list[str] = []
    for schema, entry in manifest["schemas"].items():
        out.append(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")
        out.append(f"CREATE SCHEMA {ident(schema)}")
        for table, spec in entry["tables"].items():
            keep = days(schema, table) if days else (lambda _d: True)
            files = [str(folder / n) for d, names in sorted(spec["days"].items()) if keep(d)
                     for n in names]
            name = qualified(schema, table)
            if files:
                cols = ", ".join(ident(c) for c, _ in spec["columns"])
                where = rows(table) if rows else "TRUE"
                if sdkappid is not None and any(c == "sdkappid" for c, _ in spec["columns"]):
                    where += f" AND sdkappid = {int(sdkappid)}"
                by_name = "true" if spec.get("mixed", True) else "false"
                out.append(f"CREATE VIEW {name} AS SELECT {cols} FROM read_parquet("
                           f"[{', '.join(map(literal, files))}], union_by_name = {by_name}) "
                           f"WHERE {where}")
            else:
                cols = ", ".join(f"{ident(c)} {t}" for c, t in spec["columns"])
                out.append(f"CREATE TABLE {name} ({cols})")
        for sql in entry.get("views", {}).values():
            out.append(sql)
    return out


def window_days(since: datetime | date | None, until: datetime | date | None
                ) -> tuple[str | None, str | None]:
    """The first and last day (ISO) whose rows a window needs. A day partition holds the rows
    of runs started that UTC day; a day either side keeps rows of a run that straddles
    midnight or a window in another time zone."""
    return _day(since, -1), _day(until, +1)


def _next_day(day: str | None) -> str | None:
    return None if day is None else (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _day(at: datetime | date | None, shift: int) -> str | None:
    if at is None:
        return None
    day = at.date() if isinstance(at, datetime) else at
    return (day + timedelta(days=shift)).isoformat()
