"""Where a test's job loads: a DuckDB file in the test's folder, or a fresh database of the
real PostgreSQL server (``postgres.py``) with the job's local files in the test's folder.

The tests that hold for every destination take the ``target`` fixture (parametrized over
both) and speak through it: the job's options and arguments, the environment of a child,
and queries in SQL both dialects accept (``?`` placeholders).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from tencent_desk.intake.spool import spool_dir

KINDS = ("duckdb", "postgres")


@dataclass(frozen=True)
class Target:
    kind: str
    folder: Path
    url: str | None = None  # postgres: the database's URL (with its password)

    @property
    def duckdb(self) -> bool:
        return self.kind == "duckdb"

    @property
    def database(self) -> Path | None:
        return self.folder / "desk.duckdb" if self.duckdb else None

    @property
    def anchor(self) -> Path:
        """What the job's local files are named after (lock, spool)."""
        return self.folder / "desk.duckdb" if self.duckdb else self.folder / "desk"

    @property
    def spool(self) -> Path:
        return spool_dir(self.anchor)

    def options(self) -> dict[str, Any]:
        """The :class:`RunOptions` fields that say where to load."""
        if self.duckdb:
            return {"database": self.database}
        return {"database": None, "destination": "postgres", "state_dir": self.folder}

    def argv(self) -> list[str]:
        """The CLI's arguments that say where to load."""
        if self.duckdb:
            return ["--database", str(self.database)]
        return ["--destination", "postgres", "--state-dir", str(self.folder)]

    def listen_argv(self) -> list[str]:
        """``desk-sessions listen``'s arguments that say where the job's spool is."""
        return ["--database", str(self.database)] if self.duckdb else [
            "--state-dir", str(self.folder)]

    def env(self) -> dict[str, str]:
        """dlt's spelling of the credentials, for the job (child or this process)."""
        return {} if self.duckdb else {"DESTINATION__POSTGRES__CREDENTIALS": str(self.url)}

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        if self.duckdb:
            con = duckdb.connect(str(self.database), read_only=True)
            try:
                return con.execute(sql, params or []).fetchall()
            finally:
                con.close()
        import psycopg2

        con = psycopg2.connect(self.url)
        try:
            with con.cursor() as cur:
                cur.execute(sql.replace("%", "%%").replace("?", "%s"), params or None)
                found = cur.fetchall() if cur.description else []
            con.commit()
            return found
        finally:
            con.close()

    def text(self) -> bytes:
        """Every value of every table and view (and dlt's state, decompressed), as text:
        for searching what the job stored."""
        from dlt.common.versioned_state import decompress_state

        chunks = []
        for schema, table in self.query(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE "
                "table_schema NOT IN ('information_schema', 'pg_catalog')"):
            rows = self.query(f'SELECT * FROM "{schema}"."{table}"')
            chunks.append(repr(rows).encode())
            if table == "_dlt_pipeline_state":
                states = self.query(f'SELECT state FROM "{schema}"."{table}"')
                chunks += [repr(decompress_state(state)).encode() for (state,) in states]
        return b"\n".join(chunks)

    def tables(self, dataset: str = "tencent_desk") -> set[str]:
        if self.duckdb and not self.database.exists():  # type: ignore[union-attr]
            return set()
        return {r[0] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [dataset])}
