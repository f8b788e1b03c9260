"""Getting a job's DuckDB dataset into a destination server, as the job would have loaded
it there: each table read as Arrow and loaded by a dlt pipeline with the same dataset and
table names."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dlt
import duckdb

DS = "tencent_desk"


def copy_dataset(database: Path, destination: str, credentials: str, dataset: str = DS,
                 pipelines_dir: Path | None = None,
                 only: tuple[str, ...] = ()) -> dict[str, int]:
    """Every table of ``dataset`` in the DuckDB ``database`` (or those ``only`` names)
    loaded into the destination (appended); returns the rows per table."""
    with duckdb.connect(str(database), read_only=True) as con:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND "
            "table_type = 'BASE TABLE' AND NOT starts_with(table_name, '_')",
            [dataset]).fetchall() if not only or t in only]
        data = {t: con.sql(f'SELECT * FROM "{dataset}"."{t}"').to_arrow_table()
                for t in tables}
    folder = pipelines_dir or Path(tempfile.mkdtemp(prefix="desk-copy-"))
    pipeline = dlt.pipeline(pipeline_name=f"copy_{dataset}", pipelines_dir=str(folder),
                            destination=dlt.destinations.postgres(credentials=credentials)
                            if destination == "postgres" else destination,
                            dataset_name=dataset)
    # insert_values: dlt's default for Arrow into PostgreSQL (csv, COPY) loads an empty
    # string as NULL, and the copy must hold exactly what DuckDB does
    pipeline.run([dlt.resource(arrow, name=t, write_disposition="append")
                  for t, arrow in data.items()], loader_file_format="insert_values")
    return {t: arrow.num_rows for t, arrow in data.items()}
