"""analysis.frames.frame: the frames DuckDB's .df() gives, through Arrow."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from tencent_desk.core.frames import frame

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

ROWS = """(VALUES
    (1, 10::INTEGER, TRUE, 'a', 1.5::DOUBLE, TIMESTAMPTZ '2026-04-07 09:00:00+00',
     TIMESTAMP '2026-04-07 09:00:00', 1::UTINYINT),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, 2::UTINYINT),
    (3, 30::INTEGER, FALSE, 'c', 3.5, TIMESTAMPTZ '2026-04-07 10:00:00+08',
     TIMESTAMP '2026-04-07 10:00:00', 3::UTINYINT)
) t(id, n, flag, name, x, stamp, naive, small)"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


@pytest.mark.parametrize("sql", [
    f"SELECT * FROM {ROWS}",  # NULLs: nullable Int32 and boolean, NaN, NaT, missing strings
    f"SELECT * FROM {ROWS} WHERE id <> 2",  # no NULLs: numpy int32 and bool, as .df() gives
    f"SELECT * FROM {ROWS} WHERE FALSE",  # no rows
    f"SELECT count(*) AS n, sum(id) AS total, 1.5::DECIMAL(4, 1) AS d, DATE '2026-04-07' AS day,"
    f" INTERVAL 1 HOUR AS span FROM {ROWS}",  # types Arrow converts otherwise: .df() itself
    f"SELECT epoch(stamp) AS s, id = 2 AS second, n IS NULL AND id > 1 AS neither FROM {ROWS}",
    f"SELECT id, NULL::VARCHAR AS group_name FROM {ROWS}",  # text without a single value
    f"SELECT id, id AS id FROM {ROWS}",  # a name twice: .df() calls the second id_1
])
def test_frame_equals_df(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    pd.testing.assert_frame_equal(frame(con, sql), con.execute(sql).df())


def test_parameters_and_a_result_left_unfinished(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SELECT * FROM range(10)").fetchone()  # what a notebook cell may leave
    got = frame(con, f"SELECT id, stamp FROM {ROWS} WHERE id >= ?", [2])
    assert list(got.id) == [2, 3] and str(got.stamp.dtype) == "datetime64[us, UTC]"
