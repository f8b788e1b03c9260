"""Every failure a user can cause ends the real CLI in one line, the last on stderr, with
no traceback before it, a library's own log records included (see core/logs.py); the
full disk and PostgreSQL that never answers have their own tests (test_full_disk.py,
test_postgres_unanswered.py)."""

from __future__ import annotations

import argparse
import socket

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


def _simulate_shares() -> list[str]:
    """Every share option of ``simulate``: its fault knobs and its callback knobs."""
    from tencent_desk.cli import parser

    (commands,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    shares = [a.option_strings[0] for a in commands.choices["simulate"]._actions
              if a.metavar == "SHARE"]
    assert len(shares) == 13, shares
    return shares


# What the command line refuses, before any work (no server, no database): the option named,
# exit 2, in the one line. Each of these once ended in "unexpected error: ..." or a simulator
# serving nothing on port 99999.
REFUSED = [
    (["listen", "--database", "d.duckdb", "--port", "99999"], "--port", "1 to 65535"),
    (["listen", "--database", "d.duckdb", "--port", "0"], "--port", "1 to 65535"),
    (["simulate", "--port", "99999"], "--port", "1 to 65535"),
    (["simulate", "--port", "http"], "--port", "1 to 65535"),
    (["demo", "--sessions", "0"], "--sessions", "above 0"),
    (["demo", "--agents", "0"], "--agents", "above 0"),
    (["demo", "--seed", "-1"], "--seed", "0 or more"),
    (["simulate", "--sessions", "-5"], "--sessions", "above 0"),
    (["simulate", "--seed", "-1"], "--seed", "0 or more"),
    (["simulate", "--rate-limit", "-1"], "--rate-limit", "0 or more"),
    (["simulate", "--latency-ms", "nan"], "--latency-ms", "0 or more"),
    (["simulate", "--speed", "-2"], "--speed", "0 or more"),
    (["simulate", "--agent-groups", "0"], "--agent-groups", "above 0"),
    (["simulate", "--agent-groups", "9"], "--agent-groups", "at most 8"),
    *[(["simulate", option, "2"], option, "from 0 to 1") for option in _simulate_shares()],
    (["simulate", "--callback-lost", "-0.1"], "--callback-lost", "from 0 to 1"),
    (["simulate", "--internal-error", "0.6", "--http-502", "0.5"], "--http-502", "at most 1"),
    (["simulate", "history", "--database", "h.duckdb", "--seed", "-1"], "--seed", "0 or more"),
    # report's once took any name, and said so only after the period was read
    *[([command, "--destination", "nowhere"], "--destination", "invalid choice")
      for command in ("run", "records", "publish", "plan", "report")],
    (["plan", "--database", "d.duckdb", "--target", "1.5:60"], "--target", "0.8:60 or 80:60"),
    (["run", "--database", "d.duckdb", "--seed-table", "ops.open", "--seed", "keys.csv"],
     "--seed-table", "not a DuckDB database"),
    (["run", "--database", "d.duckdb", "--seed-table", "ops.open"], "--seed-table",
     "give --seed too"),
    (["records", "--database", "d.duckdb", "--since", "yesterday"], "--since", "ISO 8601"),
    (["records", "--database", "d.duckdb", "--until", "soon"], "--until", "ISO 8601"),
    (["records", "--database", "d.duckdb", "--since", "2026-01-05T00:00:00Z", "--until",
      "2026-01-04T00:00:00Z"], "--since", "is not before --until"),
    # an empty value (a cron line's variable left unset): --dataset once loaded the run, and
    # the receiver's spool drained, into a dataset dlt named itself; --since/--until once
    # meant an incremental load, --seed none, --out the current folder (exit 3)
    *[([command, "--database", "d.duckdb", option, blank], option, "an empty")
      for command in ("run", "records", "publish", "plan", "report")
      for option in ("--dataset", "--state-dir") for blank in ("", " ")
      if (command, option) not in (("report", "--state-dir"), ("plan", "--state-dir"))],
    *[(["records", "--database", "d.duckdb", option, ""], option, "an empty time")
      for option in ("--since", "--until")],
    (["run", "--database", "d.duckdb", "--seed", ""], "--seed", "an empty name"),
    (["report", "--database", "d.duckdb", "--out", ""], "--out", "an empty name"),
    (["plan", "--database", "d.duckdb", "--out", ""], "--out", "an empty name"),
    # a count below 1, a wait below 0 (docs/failures.md), once taken as given
    (["run", "--database", "d.duckdb", "--max-concurrency", "0"], "--max-concurrency",
     "above 0"),
    (["records", "--database", "d.duckdb", "--max-qps", "0"], "--max-qps", "above 0"),
    (["run", "--database", "d.duckdb", "--max-session-age", "-1"], "--max-session-age",
     "above 0"),
    (["run", "--database", "d.duckdb", "--max-error-share", "2"], "--max-error-share",
     "from 0 to 1"),
    *[([command, "--database", "d.duckdb", "--lock-wait", "-1"], "--lock-wait", "0 or more")
      for command in ("run", "records", "publish", "plan")],
    (["listen", "--database", "d.duckdb", "--seal-after", "0"], "--seal-after", "above 0"),
    # an empty period (a cron line's $DAY left unset) once reported yesterday
    *[(["report", "--database", "d.duckdb", *given], option, "''")
      for given, option in ((["--day="], "--day"), (["--week="], "--week"),
                            (["--month="], "--month"), (["--from=", "--to=2026-01-05"], "--from"),
                            (["--from=2026-01-05", "--to="], "--to"))],
]


@pytest.mark.check
@pytest.mark.parametrize("argv, option, says", REFUSED,
                         ids=[" ".join(argv[:1] + argv[-2:]) for argv, *_ in REFUSED])
def test_a_value_the_command_line_refuses(tmp_path, argv, option, says) -> None:
    proc = cli.run([cli.CLI, *argv], tmp_path, timeout=60)
    line = cli.failed_in_one_line(proc, 2, option, says)
    assert proc.stderr == line + "\n" and "unexpected error" not in line, proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing made


@pytest.mark.check
def test_simulate_on_a_taken_port(tmp_path) -> None:
    """As ``listen`` does (tests/test_receiver.py): our line and exit 3, not uvicorn's own
    ``ERROR: [Errno 98]`` log line, and before the day is built."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = cli.run([cli.CLI, "simulate", "--port", str(port)], tmp_path, timeout=60)
    line = cli.failed_in_one_line(proc, 3, f"cannot listen on 127.0.0.1:{port}",
                                  "Address already in use", "--port")
    assert proc.stderr == line + "\n", proc.stderr


@pytest.mark.check
@pytest.mark.parametrize("command", ["publish", "run", "records", "listen"])
def test_a_database_that_cannot_be_the_jobs_file(tmp_path, command) -> None:
    """A text file, a folder or an empty name (a cron variable left unset) as --database:
    one line, exit 2, and no lock nor spool (nor anything else) made beside it or its
    folder; once exit 3 ("not a valid DuckDB database file") with README.md.lock left
    behind, and the receiver served into README.md.spool."""
    (tmp_path / "README.md").write_text("# notes\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "here").mkdir()
    for given, says in (("README.md", "is not a DuckDB database"), ("docs", "is a folder"),
                        ("", "an empty name")):
        proc = cli.run([cli.CLI, command, "--database", given and f"../{given}"],
                       tmp_path / "here", timeout=60)
        line = cli.failed_in_one_line(proc, 2, "--database", says)
        assert proc.stderr == line + "\n", proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["README.md", "docs", "here"]


MISSING_FOLDER = [["run"], ["records"], ["publish"], ["plan"], ["report"],
                  ["listen", "--port", str(closed_port())], ["simulate", "history", "--days", "1"]]


@pytest.mark.check
@pytest.mark.parametrize("command", MISSING_FOLDER, ids=[" ".join(c[:2]) for c in MISSING_FOLDER])
def test_a_database_in_a_folder_that_does_not_exist(tmp_path, command) -> None:
    """Every command says it the same way: exit 2, a path to fix, in one line naming it, and
    makes nothing; run, records, listen and simulate history once exited 3 (as for a folder
    that cannot be written) while publish, plan and report exited 2."""
    database = tmp_path / "nowhere" / "desk.duckdb"
    proc = cli.run([cli.CLI, *command, "--database", str(database)], tmp_path, timeout=120)
    line = cli.failed_in_one_line(proc, 2, str(database.parent))
    assert proc.stderr == line + "\n", proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.check
@pytest.mark.parametrize("command", [["run", "--destination", "postgres"],
                                     ["listen", "--port", str(closed_port())]])
def test_a_state_dir_that_does_not_exist(tmp_path, command) -> None:
    """As a --database's folder, and named as the option it is (the receiver once said
    --database path)."""
    proc = cli.run([cli.CLI, *command, "--state-dir", str(tmp_path / "nowhere")], tmp_path,
                   timeout=60, **{CREDENTIALS: "postgresql://nobody@127.0.0.1:1/desk"})
    line = cli.failed_in_one_line(proc, 2, "folder", str(tmp_path / "nowhere"), "--state-dir")
    assert proc.stderr == line + "\n", proc.stderr
    assert list(tmp_path.iterdir()) == []


# A setting (config or environment) that is not what it must be: one line naming it and what
# it must be, exit 2, before the lock or the spool is touched. The first four once ended in
# "unexpected error: ValueError: could not convert string to float: 'fast'"; the others were
# taken as given (max_concurrency 0 as "automatic", keep_message_content=perhaps as false).
BAD_SETTINGS = [
    ("MAX_QPS", "fast", "a number above 0"),
    ("TIMEOUT", "abc", "a number of seconds above 0"),
    ("RECORDS", "maybe", "true or false"),
    ("RECORDS_SETTLE", "abc", "a whole number of seconds, 0 or more"),
    ("MAX_CONCURRENCY", "0", "a whole number of 1 or more"),
    ("MAX_CONCURRENCY", "2.5", "a whole number of 1 or more"),
    ("RECORDS_SINCE", "-1", "a whole number of seconds above 0"),
    ("KEEP_NICKNAMES", "perhaps", "true or false"),
    ("MAX_ERROR_SHARE", "5%", "a share from 0 to 1"),
    ("TRANSPORT", "curl", "one of aiohttp"),
    ("APPS__EU__MAX_QPS", "fast", "a number above 0"),
]


@pytest.mark.check
@pytest.mark.parametrize("command", ["run", "records"])
@pytest.mark.parametrize("key, value, says", BAD_SETTINGS,
                         ids=[f"{k}={v}" for k, v, _ in BAD_SETTINGS])
def test_a_setting_that_is_not_what_it_must_be(tmp_path, command, key, value, says) -> None:
    extra = {f"SOURCES__TENCENT_DESK__{key}": value}
    if key.startswith("APPS__"):  # a named app: its section and variable are named
        extra.update(SOURCES__TENCENT_DESK__APPS__EU__SDKAPPID="1400000999",
                     SOURCES__TENCENT_DESK__APPS__EU__SECRET_KEY="k")
    spool = tmp_path / "d.duckdb.spool"
    spool.mkdir()
    (spool / "segment").write_text("kept\n")
    proc = cli.run([cli.CLI, command, "--database", str(tmp_path / "d.duckdb"), "--api-url",
                    f"http://127.0.0.1:{closed_port()}", "--no-progress"], tmp_path,
                   timeout=60, **extra)
    name = key.rsplit("__", 1)[-1]
    line = cli.failed_in_one_line(proc, 2, f"{name.lower()} must be {says}", f"{value!r}",
                                  f"SOURCES__TENCENT_DESK__{key}")
    assert proc.stderr == line + "\n" and "unexpected error" not in line, proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["d.duckdb.spool", "segment"]


@pytest.mark.check
def test_keep_message_content_that_is_no_flag(tmp_path) -> None:
    proc = cli.run([cli.CLI, "listen", "--database", str(tmp_path / "d.duckdb"), "--port",
                    str(closed_port())], tmp_path, timeout=60,
                   SOURCES__TENCENT_DESK__KEEP_MESSAGE_CONTENT="perhaps")
    line = cli.failed_in_one_line(proc, 2, "keep_message_content must be true or false",
                                  "SOURCES__TENCENT_DESK__KEEP_MESSAGE_CONTENT")
    assert proc.stderr == line + "\n", proc.stderr
    assert list(tmp_path.iterdir()) == []
