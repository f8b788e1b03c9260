"""Every failure a user can cause ends the real CLI in one line, the last on stderr, with
no traceback before it, a library's own log records included (see core/logs.py); the
full disk and PostgreSQL that never answers have their own tests (test_full_disk.py,
test_postgres_unanswered.py)."""

from __future__ import annotations

import pytest

from .support import cli
from .support.harness import closed_port

CREDENTIALS = "DESTINATION__POSTGRES__CREDENTIALS"


def test_a_seed_that_is_not_there(tmp_path, sim) -> None:
    _app, url = sim
    proc = cli.run(cli.run_argv(tmp_path / "no-such.csv", tmp_path / "d.duckdb", url,
                                tmp_path / "dlt"), tmp_path)
    cli.failed_in_one_line(proc, 2, "no-such.csv")


def test_a_seed_that_is_no_parquet(tmp_path, sim) -> None:
    _app, url = sim
    bad = tmp_path / "seed.parquet"
    bad.write_text("session_id\nnot really parquet\n")
    proc = cli.run(cli.run_argv(bad, tmp_path / "d.duckdb", url, tmp_path / "dlt"), tmp_path)
    cli.failed_in_one_line(proc, 2, "seed.parquet")


def test_an_api_that_cannot_be_reached(tmp_path, seed) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    proc = cli.run(cli.run_argv(seed, tmp_path / "d.duckdb", url, tmp_path / "dlt"), tmp_path)
    cli.failed_in_one_line(proc, 5)


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_a_date_that_is_no_date(tmp_path, sim, option) -> None:
    _app, url = sim
    proc = cli.run([cli.CLI, "records", "--database", str(tmp_path / "d.duckdb"), "--api-url",
                    url, "--pipelines-dir", str(tmp_path / "dlt"), "--no-progress",
                    "--since", "2026-01-01", option, "the 3rd of Smarch"], tmp_path)
    cli.failed_in_one_line(proc, 2, "Smarch")


def test_a_wrong_postgres_password(tmp_path, sim, seed, postgres_server, postgres_url) -> None:
    _app, url = sim
    wrong = postgres_url.replace(postgres_server.password, "wrong-pw-8086")
    proc = cli.run([cli.CLI, "run", "--destination", "postgres", "--state-dir", str(tmp_path),
                    "--seed", str(seed), "--api-url", url, "--pipelines-dir",
                    str(tmp_path / "dlt"), "--no-progress"], tmp_path, **{CREDENTIALS: wrong})
    cli.failed_in_one_line(proc, 2, "refused the credentials")
    assert "wrong-pw-8086" not in proc.stderr


@pytest.mark.parametrize("name, value", [("header_timeout", "soon"),
                                         ("max_connections", "0")])
def test_a_receiver_limit_that_is_no_limit(tmp_path, name, value) -> None:
    proc = cli.run([cli.CLI, "listen", "--database", str(tmp_path / "d.duckdb"), "--port",
                    str(closed_port())], tmp_path,
                   **{f"SOURCES__TENCENT_DESK__{name.upper()}": value})
    cli.failed_in_one_line(proc, 2, name, "above 0")
