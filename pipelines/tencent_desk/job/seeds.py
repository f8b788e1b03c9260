"""The seed table: which sessions and (user, customer-service account) pairs to ask about.

A seed is a CSV, Parquet or JSON-lines file, or a table in a DuckDB database. DuckDB reads
it into a work database (spilling to disk), never whole into Python memory: rows are checked there
(SQL), bad ones become rejects with a reason, repeats and sessions already known to have
ended are dropped, and the keys stream out in batches. JSON lines, and a CSV in which a
quote never closes, are parsed line by line in Python and streamed in the same way.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from tencent_desk.api.client import Key
from tencent_desk.core import settings
from tencent_desk.core.keys import CONTROL_CHARACTERS_REASON, control_characters_sql
from tencent_desk.core.sql import ident as _ident
from tencent_desk.core.sql import literal, qualified

COLUMNS = ("session_id", "client_user_id", "customer_service_id")
# The API's own names (SessionId, ...) are accepted as well as ours, in any case.
ALIASES = {c.replace("_", ""): c for c in COLUMNS} | {c: c for c in COLUMNS}
FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".duckdb": "duckdb", ".db": "duckdb", ".ddb": "duckdb"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_RAW_LIMIT = 2000
_ROW_GROUP = 20_000


class SeedError(Exception):
    """The seed cannot be read at all; the message says what to fix."""


@dataclass(frozen=True)
class SeedSpec:
    path: Path
    table: str | None = None
    extra: Path | None = None  # a Parquet file of more keys (sessions known from events)
    from_events: bool = False  # path is that file itself: the run was given no seed

    @property
    def format(self) -> str:
        fmt = FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise SeedError(f"seed {self.path.name}: unknown format; use .csv, .parquet, "
                            ".jsonl or a .duckdb database with --seed-table")
        if self.table and fmt != "duckdb":  # else the table would be ignored without a word
            raise SeedError(f"seed {self.path.name} is a {fmt} file, not a DuckDB database: "
                            f"--seed-table (seed_table) {self.table!r} names a table in a "
                            ".duckdb seed only; drop it")
        return fmt

    def where(self) -> str:
        """The seed as a message names it: the sessions from events are never its fault."""
        return str(self.path) + (f" (table {self.table})" if self.table else "")

    def describe(self) -> str:
        """What the run asked, for ``runs.seed``."""
        if self.from_events:
            return "sessions from events"
        return self.where() + (" + sessions from events" if self.extra else "")


def quote_table(name: str) -> str:
    """``[catalog.][schema.]table`` as quoted SQL identifiers; anything else is refused."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(_IDENT.match(p) for p in parts):
        raise SeedError(f"seed table {name[:80]!r} is not a plain [schema.]table name")
    return qualified(*parts)


def key_columns(names: list[str], where: str, separator: str | None = None
                ) -> dict[str, str]:
    """Our column name -> the seed's. A seed without a key column is unusable as a whole.
    ``separator``: a CSV's ("commas"), whose first line names its columns."""
    found: dict[str, str] = {}
    for name in names:
        ours = ALIASES.get(str(name).strip().lower())
        if ours and ours not in found:
            found[ours] = name
    if "session_id" not in found and not {"client_user_id", "customer_service_id"} <= set(
            found):
        shown = ", ".join(repr(str(n)[:40]) for n in names[:6]) or "none"
        keys = "session_id, or both client_user_id and customer_service_id"
        raise SeedError(f"seed {where} has no key column: " + (
            f"its first line ({shown}) must name {keys}, separated by {separator}" if separator
            else f"its columns ({shown}) must include {keys}"))
    return found


@dataclass
class SeedCounts:
    rows: int = 0
    keys: int = 0
    rejects: int = 0
    duplicates: int = 0
    skipped_ended: int = 0


class PreparedSeed:
    """A seed checked in a work database, then streamed by ``key_batches()`` and
    ``reject_batches()`` from Parquet files in a temporary folder (``close()`` removes it).

    ``ended``: chunks (Arrow, one ``session_id`` column) of sessions known to have ended;
    they are not asked again. ``empty``: the seed itself has no rows (the extra keys aside).
    """

    def __init__(self, spec: SeedSpec, *, ended: Iterable[pa.Table] | None = None,
                 work_dir: Path | None = None, memory_limit: str = "64MB") -> None:
        self.spec = spec
        self.counts = SeedCounts()
        _remove_orphans(work_dir)
        self._dir = tempfile.mkdtemp(prefix=f"desk-seed-{os.getpid()}-", dir=work_dir)
        self._keys = Path(self._dir, "keys.parquet")
        self._rejects = Path(self._dir, "rejects.parquet")
        self._csv_path = spec.path
        # In memory, spilling to the temp folder past memory_limit: a seed of millions of
        # keys never sits whole in RAM.
        self.con = duckdb.connect(":memory:")
        try:
            self.con.execute(f"SET memory_limit={literal(memory_limit)}")
            self.con.execute(f"SET temp_directory={literal(self._dir)}")
            self.con.execute("SET enable_progress_bar=false")
            self._load_raw()
            self._check()
            self._load_ended(ended)
            self._select_keys()
            self._export()
        except BaseException:
            self.close()
            raise
        # The work database is done: its memory goes back before the poll starts.
        self.con.close()

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PreparedSeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scalar(self, sql: str, params: list[object] | None = None) -> int:
        rows = self.con.execute(sql, params).fetchall()  # fetchall: DuckDB 2 wants results finished
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    # -- reading: every format becomes raw(row_no, three text columns, problem, raw) -----
    def _load_raw(self) -> None:
        spec = self.spec
        if not spec.path.is_file():
            raise SeedError(f"seed {spec.path} does not exist or is not a file")
        reader = {"csv": self._csv, "parquet": self._parquet, "jsonl": self._jsonl,
                  "duckdb": self._duckdb}[spec.format]
        try:
            try:
                self.con.execute(f"CREATE TABLE raw AS {reader()}")
            except duckdb.InvalidInputException as exc:
                if spec.format != "csv" or "state machine" not in str(exc):
                    raise
                # DuckDB's reader wants one kind of line ending per file (an edited export
                # can mix them): read a copy with LF endings only.
                self._lf_seed()
                self.con.execute(f"CREATE TABLE raw AS {reader()}")
        except duckdb.Error as exc:
            raise SeedError(f"cannot read seed {spec.where()}: {_first_line(exc)}") from None
        if spec.format == "csv" and self._quote_swallowed_lines():
            self._csv_by_lines()
        self.empty = not self._scalar("SELECT count(*) FROM raw")  # before the extra keys
        if spec.extra is not None:
            self.con.execute(f"""
                INSERT INTO raw SELECT (SELECT coalesce(max(row_no), 0) FROM raw)
                    + row_number() OVER (), session_id, client_user_id, customer_service_id,
                    NULL, NULL FROM read_parquet({literal(spec.extra)})""")
        self.counts.rows = self._scalar("SELECT count(*) FROM raw")

    def _select(self, source: str, found: dict[str, str], types: dict[str, str]) -> str:
        cols, problems = [], []
        for col in COLUMNS:
            if col not in found:
                cols.append(f"NULL::VARCHAR AS {col}")
                continue
            ident = _ident(found[col])
            kind = types.get(found[col], "VARCHAR").upper()
            if kind == "VARCHAR":
                cols.append(f"{ident} AS {col}")
                continue
            # Numbers (or anything) where text belongs: the row is rejected, not guessed at.
            cols.append(f"CAST({ident} AS VARCHAR) AS {col}")
            problems.append(f"CASE WHEN {ident} IS NOT NULL THEN "
                            f"{literal(f'{col} is {kind.lower()}, not text')} END")
        problem = f"coalesce({', '.join(problems)})" if problems else "NULL::VARCHAR"
        return (f"SELECT row_number() OVER () AS row_no, {', '.join(cols)}, "
                f"{problem} AS problem, NULL::VARCHAR AS raw FROM {source}")

    def _csv(self) -> str:
        path = self._csv_path
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        with path.open("r", encoding="utf-8", errors="replace", newline="") as f:
            header = next(csv.reader(f, delimiter=delim), None)
        if not header:  # an empty file: no keys, a run that polls nothing
            return ("SELECT NULL::BIGINT AS row_no, NULL::VARCHAR AS session_id, "
                    "NULL::VARCHAR AS client_user_id, NULL::VARCHAR AS customer_service_id, "
                    "NULL::VARCHAR AS problem, NULL::VARCHAR AS raw WHERE false")
        header = [h.lstrip("\ufeff") for h in header]
        found = key_columns(header, self.spec.where(), "tabs" if delim == "\t" else "commas")
        self._layout = (delim, len(header), {ours: header.index(n) for ours, n in found.items()})
        positional = {ours: f"c{i}" for ours, i in self._layout[2].items()}
        columns = {f"c{i}": "VARCHAR" for i in range(len(header))}
        # Lines DuckDB cannot parse (bad UTF-8, wrong column count) go to csv_rejects.
        source = (f"read_csv({literal(path)}, header=true, delim={literal(delim)}, quote='\"', "
                  f"escape='\"', auto_detect=false, columns={columns}, ignore_errors=true, "
                  "store_rejects=true, rejects_table='csv_rejects', rejects_scan='csv_scans', "
                  "max_line_size=4000000)")
        return self._select(source, positional, {})

    def _quote_swallowed_lines(self) -> bool:
        """Whether a quote that never closes made the lines after it one bad value in
        DuckDB's reading (all of them up to the end of the file, or to another quote)."""
        return self._has_table("csv_rejects") and bool(self._scalar(
            "SELECT count(*) FROM csv_rejects WHERE error_type = 'UNQUOTED VALUE' "
            "AND regexp_matches(rtrim(csv_line, chr(13) || chr(10)), "
            "'[' || chr(13) || chr(10) || ']')"))

    def _csv_by_lines(self) -> None:
        """The CSV read again one line at a time (a key never spans lines): the line with
        the open quote is the one reject, the lines after it rows of their own, and every
        row numbered by its line."""
        self.con.execute("DROP TABLE raw; DROP TABLE csv_rejects; DROP TABLE csv_scans")
        row = partial(_csv_row, *self._layout)
        # split at LF alone: a file of CR (or mixed) endings is read as DuckDB read it
        self.con.register("csv_lines", pa.RecordBatchReader.from_batches(
            _RAW_SCHEMA, _line_batches(self._lf_seed(), row, skip=1)))
        self.con.execute("CREATE TABLE raw AS SELECT * FROM csv_lines")

    def _lf_seed(self) -> Path:
        """The CSV to read from now on: a copy with LF line endings only (made once)."""
        if self._csv_path == self.spec.path:
            self._csv_path = _lf_copy(self.spec.path,
                                      Path(self._dir, "seed-lf" + self.spec.path.suffix))
        return self._csv_path

    def _parquet(self) -> str:
        source = f"read_parquet({literal(self.spec.path)})"
        return self._typed(source)

    def _duckdb(self) -> str:
        if not self.spec.table:
            raise SeedError(f"seed {self.spec.path} is a DuckDB database: name the table "
                            "with --seed-table")
        table = quote_table(self.spec.table)
        try:
            self.con.execute(f"ATTACH {literal(self.spec.path)} AS seed_db (READ_ONLY)")
        except duckdb.Error as exc:
            raise SeedError(f"cannot open seed database {self.spec.path}: "
                            f"{_first_line(exc)}") from None
        try:
            return self._typed(f"seed_db.{table}")
        except duckdb.CatalogException:
            raise SeedError(f"seed database {self.spec.path} has no table "
                            f"{self.spec.table!r}") from None

    def _typed(self, source: str) -> str:
        desc = self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        names = [r[0] for r in desc]
        return self._select(source, key_columns(names, self.spec.where()),
                            {r[0]: r[1] for r in desc})

    def _jsonl(self) -> str:
        # Checked here: raised inside the stream, DuckDB would wrap it in its own error.
        _jsonl_columns(self.spec.path, self.spec.where())
        # Python parses the lines so that a broken one is a reject with its text, not a gap.
        reader = pa.RecordBatchReader.from_batches(_RAW_SCHEMA, _line_batches(
            self.spec.path, lambda row_no, line: _json_row(row_no, line)[0]))
        self.con.register("jsonl_rows", reader)
        return "SELECT * FROM jsonl_rows"

    # -- checking --------------------------------------------------------------------------
    def _check(self) -> None:
        trimmed = ", ".join(f"nullif(trim({c}, ' '), '') AS {c}" for c in COLUMNS)
        reasons = []
        for c in COLUMNS:  # the receiver refuses such a key at intake (core/keys.py)
            reasons.append(f"CASE WHEN {control_characters_sql(c)} "
                           f"THEN '{c} {CONTROL_CHARACTERS_REASON}' END")
            reasons.append(f"CASE WHEN length({c}) > {settings.MAX_KEY_LENGTH} THEN "
                           f"'{c} is longer than {settings.MAX_KEY_LENGTH} characters' END")
        reasons.append("CASE WHEN session_id IS NULL AND (client_user_id IS NULL) <> "
                       "(customer_service_id IS NULL) THEN 'half a pair: client_user_id and "
                       "customer_service_id go together' END")
        reasons.append("CASE WHEN session_id IS NULL AND client_user_id IS NULL AND "
                       "customer_service_id IS NULL THEN 'no key: needs session_id, or "
                       "client_user_id and customer_service_id' END")
        self.con.execute(f"""
            CREATE TABLE checked AS
            SELECT row_no, session_id, client_user_id, customer_service_id, raw,
                   coalesce(problem, {', '.join(reasons)}) AS reason
            FROM (SELECT row_no, {trimmed}, problem, raw FROM raw)""")
        csv_rejects = self._has_table("csv_rejects")
        self.counts.rejects = self._scalar(
            "SELECT count(*) FROM checked WHERE reason IS NOT NULL") + (
            self._scalar("SELECT count(DISTINCT line) FROM csv_rejects") if csv_rejects else 0)

    def _has_table(self, name: str) -> bool:
        return bool(self._scalar(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]))

    def _load_ended(self, ended: Iterable[pa.Table] | None) -> None:
        self.con.execute("CREATE TABLE ended (session_id VARCHAR)")
        for chunk in ended or ():
            self.con.register("ended_chunk", chunk)
            self.con.execute("INSERT INTO ended SELECT session_id FROM ended_chunk")
            self.con.unregister("ended_chunk")

    def _select_keys(self) -> None:
        # GROUP BY rather than a window: DuckDB can spill an aggregate to disk.
        self.con.execute("""
            CREATE TABLE keys AS
            SELECT min(row_no) AS row_no, session_id, any_value(client_user_id) AS
                   client_user_id, any_value(customer_service_id) AS customer_service_id
            FROM checked WHERE reason IS NULL AND session_id IS NOT NULL
                 AND session_id NOT IN (SELECT session_id FROM ended)
            GROUP BY session_id
            UNION ALL
            SELECT min(row_no), NULL, client_user_id, customer_service_id
            FROM checked WHERE reason IS NULL AND session_id IS NULL
            GROUP BY client_user_id, customer_service_id
            ORDER BY row_no""")
        counts = self.counts
        counts.keys = self._scalar("SELECT count(*) FROM keys")
        counts.skipped_ended = self._scalar(
            "SELECT count(DISTINCT session_id) FROM checked WHERE reason IS NULL "
            "AND session_id IN (SELECT session_id FROM ended)")
        valid = self._scalar("SELECT count(*) FROM checked WHERE reason IS NULL")
        counts.duplicates = valid - counts.keys - self._scalar(
            "SELECT count(*) FROM checked WHERE reason IS NULL "
            "AND session_id IN (SELECT session_id FROM ended)")

    # -- streaming out: from Parquet files, in small row groups, at a flat memory cost ----
    def _export(self) -> None:
        # keys is stored in seed order (a scan keeps insertion order, and so does COPY).
        self.con.execute(f"""
            COPY (SELECT session_id, client_user_id, customer_service_id FROM keys)
            TO {literal(self._keys)} (FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP})""")
        self.con.execute(f"COPY ({self._rejects_sql()}) TO {literal(self._rejects)} "
                         f"(FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP})")

    def key_batches(self, size: int = settings.DEFAULT_BATCH_SIZE) -> Iterator[list[Key]]:
        for batch in _batches(self._keys, size):
            s, u, c = (batch.column(i).to_pylist() for i in range(3))
            yield [Key(*row) for row in zip(s, u, c, strict=True)]

    def reject_batches(self, size: int = 10_000) -> Iterator[pa.RecordBatch]:
        """Every rejected row: ``row_no``, ``raw`` (the row as JSON or the line), ``reason``.

        ``row_no`` counts data rows from 1; in a CSV, unreadable lines are numbered by line
        and readable rows by their place among the readable ones (all by their line in a
        CSV read line by line, see ``_csv_by_lines``).
        """
        return _batches(self._rejects, size)

    def _rejects_sql(self) -> str:
        parts = [f"""SELECT row_no::BIGINT AS row_no,
                        left(coalesce(raw, json_object('session_id', session_id,
                        'client_user_id', client_user_id,
                        'customer_service_id', customer_service_id)::VARCHAR), {_RAW_LIMIT})
                        AS raw, reason
                    FROM checked WHERE reason IS NOT NULL"""]
        if self._has_table("csv_rejects"):
            # The header is line 1, so a data line n is row n - 1, as for accepted rows.
            parts.append(f"""SELECT (line - 1)::BIGINT, left(any_value(csv_line), {_RAW_LIMIT}),
                                'unreadable line: ' || string_agg(DISTINCT lower(error_type),
                                '; ') || ' (' || any_value(error_message) || ')'
                             FROM csv_rejects GROUP BY line""")
        return " UNION ALL ".join(parts) + " ORDER BY 1"


def _lf_copy(path: Path, out: Path, chunk: int = 1 << 20) -> Path:
    """``path`` with every CRLF and lone CR turned into LF (also inside quoted values,
    where a line break is no valid key anyway)."""
    with path.open("rb") as src, out.open("wb") as dst:
        carry = b""
        while block := src.read(chunk):
            block = carry + block
            # A CR at the end may be the first half of a CRLF: decide with the next block.
            carry = b"\r" if block.endswith(b"\r") else b""
            block = block[:len(block) - len(carry)]
            dst.write(block.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        dst.write(carry.replace(b"\r", b"\n"))
    return out


def _remove_orphans(work_dir: Path | None) -> None:
    """Work folders of runs that were killed (their keys, maybe spill files): the folder
    name holds the process id, and a folder whose process is gone is nobody's."""
    for folder in Path(work_dir or tempfile.gettempdir()).glob("desk-seed-*-*"):
        try:
            pid = int(folder.name.split("-")[2])
            os.kill(pid, 0)
        except ValueError:
            continue  # not a name this module made
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue  # alive, another user's


def _batches(path: Path, size: int) -> Iterator[pa.RecordBatch]:
    # pre_buffer off: it would read whole row groups ahead, for no gain on a local file.
    with pq.ParquetFile(path, pre_buffer=False) as f:
        yield from f.iter_batches(batch_size=size)


_RAW_SCHEMA = pa.schema([("row_no", pa.int64()), ("session_id", pa.string()),
                         ("client_user_id", pa.string()), ("customer_service_id", pa.string()),
                         ("problem", pa.string()), ("raw", pa.string())])


def _jsonl_columns(path: Path, where: str) -> None:
    """Fail (SeedError) when the first JSON object of the file has no key column."""
    with path.open("rb") as f:
        for row_no, line in enumerate(f, start=1):
            if line.strip():
                _row, names = _json_row(row_no, line)
                if names is not None:
                    key_columns(names, where)
                    return


def _line_batches(path: Path, row: Callable[[int, bytes], tuple], skip: int = 0,
                  size: int = 10_000) -> Iterator[pa.RecordBatch]:
    """``row(row_no, line)`` of every line that is not blank after the first ``skip``
    (``row_no`` counts from 1 after those), as raw batches."""
    rows: list[tuple] = []
    with path.open("rb") as f:
        for row_no, line in enumerate(islice(f, skip, None), start=1):
            if not line.strip():
                continue
            rows.append(row(row_no, line))
            if len(rows) >= size:
                yield _batch(rows)
                rows = []
    if rows:
        yield _batch(rows)


def _csv_row(delim: str, width: int, at: dict[str, int], row_no: int, line: bytes) -> tuple:
    """One CSV line as a raw row: its key columns (``at``: our name -> position), or why
    it cannot be read. ``row_no``: the line's number - 1, the header being line 1."""
    try:
        text = line.decode("utf-8").rstrip("\n")
        # a line without a quote needs no parser: its values lie between the delimiters
        values = next(csv.reader([text], delimiter=delim, strict=True)) if '"' in text \
            else text.split(delim)
    except UnicodeDecodeError:
        problem = "not valid UTF-8"
    except csv.Error:  # strict: an odd quote, or text after a closing one
        problem = (f"unterminated quote (a value quoted on line {row_no + 1} does not close "
                   "on it)" if text.count('"') % 2 else "misplaced quote (text after the "
                   "quote that closes a value)")
    else:
        if len(values) == width:
            return (row_no, *(values[at[c]] if c in at else None for c in COLUMNS), None,
                    None)
        problem = (f"{'too many' if len(values) > width else 'missing'} columns ("
                   f"{len(values)} where the header names {width})")
    raw = line.decode("utf-8", errors="replace").rstrip("\n")[:_RAW_LIMIT]
    return (row_no, None, None, None, f"unreadable line: {problem}", raw)


def _json_row(row_no: int, line: bytes) -> tuple[tuple, list[str] | None]:
    raw = line.decode("utf-8", errors="replace").rstrip("\r\n")[:_RAW_LIMIT]
    try:
        doc = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return (row_no, None, None, None, "line is not valid UTF-8", raw), None
    except ValueError:
        return (row_no, None, None, None, "line is not valid JSON", raw), None
    if not isinstance(doc, dict):
        return (row_no, None, None, None, "line is not a JSON object", raw), None
    values: dict[str, object] = {}
    for name, value in doc.items():
        ours = ALIASES.get(str(name).strip().lower())
        if ours and ours not in values:
            values[ours] = value
    problem = next((f"{c} is {type(values[c]).__name__}, not text" for c in COLUMNS
                    if values.get(c) is not None and not isinstance(values[c], str)), None)
    texts = [v if isinstance(v := values.get(c), str) else None for c in COLUMNS]
    return (row_no, *texts, problem, raw), list(doc)


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(col, type=f.type) for col, f in
                                       zip(zip(*rows, strict=True), _RAW_SCHEMA, strict=True)],
                                      schema=_RAW_SCHEMA)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
