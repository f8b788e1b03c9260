"""Analysis from a destination server: a window of the dataset, pulled into a local DuckDB.

When the job loads into a warehouse (PostgreSQL first), the notebooks and metrics do not
run their SQL there: :class:`Reader` pulls, through dlt's dataset interface (the
destination's sql_client, so other SQL destinations can follow), only the window's rows of
each table, as Arrow, into an in-memory DuckDB under the same schema and table names the
snapshot :class:`~tencent_desk.readers.snapshot.Reader` offers. Every metric's SQL then runs
unchanged, and a year in the warehouse costs a notebook what its window costs, provided
the windowed columns are indexed there (:func:`tencent_desk.models.indexes.create`, which
the job calls after each load).

Which column windows which table is the snapshot's ``LAYOUTS``, and the window's days are
the snapshot Reader's (a day either side), so both readers see the same rows.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from urllib.parse import urlparse

import dlt
import duckdb
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.reference import Destination
from tencent_desk.core import dialect, redact
from tencent_desk.core.sql import ident, literal
from tencent_desk.job import event_load
from tencent_desk.models import latest, poll_views, snapshot, timeline
from tencent_desk.readers.apps import apps_sql

CHUNK_ROWS = 100_000  # rows per Arrow batch pulled: bounded memory on the way in
# The dataset's views, made again locally over the pulled rows with the job's own SQL
# (pulling the server's views would pull them whole): view -> (table it reads, its maker).
VIEWS: dict[str, tuple[str, Callable[[str, str], str]]] = {
    latest.VIEW: ("session_states", latest.latest_sql),
    event_load.EVENT_TIMES: (event_load.TABLE, lambda view, table: event_load.event_times_view(
        dialect.DUCKDB, view, table)),
}
# information_schema's data types (PostgreSQL's spelling) -> DuckDB's; anything else VARCHAR.
DUCKDB_TYPES = {
    "timestamp with time zone": "TIMESTAMPTZ", "timestamp without time zone": "TIMESTAMP",
    "date": "DATE", "time without time zone": "TIME", "bigint": "BIGINT",
    "integer": "INTEGER", "smallint": "SMALLINT", "double precision": "DOUBLE",
    "real": "FLOAT", "boolean": "BOOLEAN", "bytea": "BLOB", "jsonb": "JSON", "json": "JSON",
}
_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class DestinationError(Exception):
    """One line saying what to fix (server down, password, dataset); never a secret."""


def duckdb_type(data_type: str, precision: int | None, scale: int | None) -> str:
    """The DuckDB type holding a server column's values."""
    kind = data_type.lower()
    if kind == "numeric":
        return f"DECIMAL({min(precision or 38, 38)}, {scale or 0})"
    return DUCKDB_TYPES.get(kind, "VARCHAR")


def scrub(text: str) -> str:
    """A server's message without any password (URLs' too), first line only."""
    first = (text.strip().splitlines() or [""])[0]
    return redact.redact(_USERINFO.sub(r"\1<redacted>@", first))


def destination(name: str, credentials: str | None = None) -> Destination:  # type: ignore[type-arg]
    """The destination ``name`` with ``credentials`` (a URL), else dlt's config and secrets
    (``DESTINATION__<NAME>__CREDENTIALS``, ``.dlt/secrets.toml``)."""
    try:
        ref = Destination.from_reference(name, credentials=credentials) if credentials \
            else Destination.from_reference(name)
    except Exception:  # an unknown name, a missing driver
        raise DestinationError(f"destination {name!r} cannot be used: name a dlt SQL "
                               "destination (e.g. postgres) with its driver installed, or "
                               "unset it to read DuckDB") from None
    if credentials:
        redact.register(urlparse(credentials).password)
    return ref


class Reader:
    """An in-memory DuckDB holding the window's rows of a dataset on a destination server.

    :meth:`connection` pulls again when the server has loaded something since the last
    pull, so a kernel left open all day reads fresh data; ``pulled`` counts the rows of
    each table the last pull brought.
    """

    def __init__(self, dest: Destination, dataset: str,  # type: ignore[type-arg]
                 since: datetime | date | None = None,
                 until: datetime | date | None = None, sdkappid: int | None = None,
                 tables: Collection[str] | None = None) -> None:
        self.dataset_name = dataset
        self.tables = tables  # only these are pulled (None: all), e.g. the interval tables
        self.sdkappid = sdkappid  # one app's rows only (several apps in one dataset)
        self.since, self.until = since, until
        self.first, self.last = snapshot.window_days(since, until)
        self._dataset = dlt.dataset(dest, dataset)
        # no progress bar: in Jupyter DuckDB draws one as a widget in the notebook's output
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET enable_progress_bar = false")
        self._key: tuple[Any, ...] | None = None
        self.pulled: dict[str, int] = {}
        self.where = dest.destination_name
        self._postgres = dest.destination_type.endswith(".postgres")

    def connection(self) -> duckdb.DuckDBPyConnection:
        with self._client() as client, client.begin_transaction():
            if self._postgres:  # every table as of one instant: never half of a load
                client.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            key = (self.sdkappid, *self._freshness(client))
            if key != self._key:
                self._pull(client)
                self._key = key
        return self._con

    def latest(self, table: str, column: str, before: datetime) -> datetime | None:
        """The latest ``column`` of ``table`` before ``before`` (of the reader's app, when
        one), read on the server without pulling anything (where the data ends, however long
        before the window)."""
        app = "" if self.sdkappid is None else f" AND sdkappid = {int(self.sdkappid)}"
        with self._client() as client:
            ((at,),) = client.execute_sql(
                f"SELECT max({ident(column)}) FROM {client.make_qualified_table_name(table)} "
                f"WHERE {ident(column)} < %s{app}", before)
        return at

    def days(self) -> list[date]:
        """The UTC days with data, read on the server: those on which runs started or
        sessions began (the timeline's days, whatever loaded them: a dataset loaded by
        callbacks and records alone has no runs)."""
        with self._client() as client:
            tables, name = self._server_tables(client), client.make_qualified_table_name
            days = [sql for table, sql in (
                ("runs", f"SELECT CAST(started_at AT TIME ZONE 'UTC' AS DATE) AS day "
                         f"FROM {name('runs')}"),
                (timeline.TABLE, f"SELECT CAST(day AS DATE) FROM {name(timeline.TABLE)} "
                                 "WHERE day <> 'undated'")) if table in tables]
            rows = client.execute_sql(f"{' UNION '.join(days)} ORDER BY 1") if days else []
        return [d for (d,) in rows or []]

    def apps(self) -> list[tuple[str | None, int]]:
        """The (name, sdkappid) pairs of the dataset, read on the server without pulling
        anything (:func:`~tencent_desk.readers.apps.apps_sql`)."""
        with self._client() as client:
            columns = {t: {c for c, _ in cols} for t, cols in self._server_tables(client).items()}
            sql = apps_sql(columns, client.make_qualified_table_name)
            rows = (client.execute_sql(sql) or []) if sql else []
        return [(name, int(sdkappid)) for name, sdkappid in rows]

    def close(self) -> None:
        self._con.close()

    @contextmanager
    def _client(self) -> Iterator[Any]:
        """The destination's sql_client, every failure turned into one clear line."""
        try:
            with self._dataset.sql_client as client:
                redact.register(getattr(client.credentials, "password", None))
                if not client.has_dataset():
                    raise DestinationError(
                        f"dataset {self.dataset_name!r} not found on {self.where}: load it "
                        "first (desk-sessions run --destination ...) or set DESK_DATASET")
                yield client
        except (DestinationError, duckdb.Error):  # ours, and the local side's
            raise
        except ConfigFieldMissingException:
            name = self.where.upper()
            raise DestinationError(
                f"no credentials for {self.where}: set DESTINATION__{name}__CREDENTIALS or "
                f"[destination.{self.where}] credentials in .dlt/secrets.toml") from None
        except Exception as exc:
            raise DestinationError(f"cannot read {self.where}: {scrub(str(exc))}") from None

    def _freshness(self, client: Any) -> tuple[Any, ...]:
        """What changes when the job loaded or completed runs: the last load, and the runs
        still loading (after_load marks them complete after the load itself)."""
        name = client.make_qualified_table_name
        key: list[Any] = [_scalar(client, f"SELECT max(load_id) FROM {name('_dlt_loads')} "
                                          "WHERE status = 0")]
        if "runs" in self._server_tables(client):
            key.append(_scalar(client, f"SELECT count(*) FROM {name('runs')} "
                                       "WHERE status = 'loading'"))
        return tuple(key)

    def _server_tables(self, client: Any) -> dict[str, list[tuple[str, str]]]:
        """The dataset's base tables (the job's bookkeeping and dlt's own left out), with
        their columns as DuckDB types."""
        rows = client.execute_sql(
            "SELECT c.table_name, c.column_name, c.data_type, c.numeric_precision, "
            "c.numeric_scale FROM information_schema.columns c JOIN information_schema.tables t"
            " ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = %s "
            "AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position",
            client.dataset_name) or []
        out: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind, precision, scale in rows:
            if not table.startswith("_"):
                out.setdefault(table, []).append((column, duckdb_type(kind, precision, scale)))
        return out

    def _pull(self, client: Any) -> None:
        local = ident(self.dataset_name)
        con = self._con
        con.execute(f"DROP SCHEMA IF EXISTS {local} CASCADE")
        con.execute(f"CREATE SCHEMA {local}")
        self.pulled = {}
        tables = {t: c for t, c in self._server_tables(client).items()
                  if self.tables is None or t in self.tables}
        for table, columns in tables.items():
            target = f"{local}.{ident(table)}"
            con.execute(f"CREATE TABLE {target} ("
                        f"{', '.join(f'{ident(c)} {t}' for c, t in columns)})")
            select = self.select(client, table, [c for c, _ in columns])
            by_copy = self._postgres and all(t != "BLOB" for _, t in columns)
            self.pulled[table] = (_by_copy if by_copy else _by_arrow)(
                client, select, con, target, columns)
        for view, (table, make) in VIEWS.items():
            if table in tables:
                con.execute(make(f"{local}.{ident(view)}", f"{local}.{ident(table)}"))
        poll_views.for_reader(con, self.dataset_name)

    def select(self, client: Any, table: str, columns: list[str]) -> str:
        """The server-side query for a table's window (the whole table if it has no layout)."""
        layout = snapshot.LAYOUTS.get(table)
        where = layout.window_filter(self.first, self.last) if layout else "TRUE"
        # the same rows as the snapshot's Reader keeps: figures equal on every destination
        where += f" AND {snapshot.window_rows(table, self.since, self.until)}"
        if self.sdkappid is not None and "sdkappid" in columns:
            where += f" AND sdkappid = {int(self.sdkappid)}"
        return (f"SELECT {', '.join(ident(c) for c in columns)} FROM "
                f"{client.make_qualified_table_name(table)} WHERE {where}")


def _by_arrow(client: Any, select: str, con: duckdb.DuckDBPyConnection, target: str,
              _columns: list[tuple[str, str]]) -> int:
    """Any SQL destination: the rows as Arrow batches from dlt's cursor; returns their count."""
    rows = 0
    with client.execute_query(select) as cursor:
        for batch in cursor.iter_arrow(CHUNK_ROWS):
            con.register("pulled_batch", batch)
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM pulled_batch")
            con.unregister("pulled_batch")
            rows += batch.num_rows
    return rows


def _by_copy(client: Any, select: str, con: duckdb.DuckDBPyConnection, target: str,
             columns: list[tuple[str, str]]) -> int:
    """PostgreSQL: ``COPY (select) TO STDOUT`` as CSV into a temporary file that DuckDB
    parses in parallel, typed as the server's columns: several times the rows/s of
    fetching Python tuples, and memory bounded however large the window."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as file, \
            client.native_connection.cursor() as cur:
        # times as UTC offsets, floats exact: what DuckDB reads back to the same values
        cur.execute("SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; "
                    "SET extra_float_digits TO 3")
        cur.copy_expert(f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)", file)
        file.flush()
        types = "{" + ", ".join(f"{literal(c)}: {literal(t)}" for c, t in columns) + "}"
        # NULL is an empty field, an empty string a quoted one
        (rows,) = con.execute(
            f"INSERT INTO {target} BY NAME SELECT * FROM read_csv({literal(file.name)}, "
            f"header = true, columns = {types}, nullstr = '', allow_quoted_nulls = false, "
            "auto_detect = false, delim = ',', quote = '\"', escape = '\"')").fetchall()[0]
    return int(rows)


def _scalar(client: Any, sql: str) -> Any:
    rows = client.execute_sql(sql)
    return rows[0][0] if rows else None
