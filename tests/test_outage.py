"""An unreachable Desk API stops the run: the breaker on the virtual clock, the client over
real loopback against closed ports, a black hole, unresolvable names and a gateway answering
502, the job's ``runs`` row, and the real CLI's exit codes.

The bound (outage.py): on the last domain, no answer for ``quiet_s`` (5 s) and at least
``min_failures`` (10) failed calls. So calls before the stop are at most about
``max_qps * (quiet_s + one timeout per domain)`` plus those in flight, whatever the seed's
size; ``benchmarks/bench_outage.py`` measures it for 300 and 100,000 keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import tencent_desk.job.source as source_module
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.api import codes, states
from tencent_desk.api.client import Answer, ClientConfig, DeskClient, Key
from tencent_desk.api.outage import Outage, OutageBreaker, Verdict
from tencent_desk.api.usersig import UserSigProvider
from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.errors import JobError
from tencent_desk.job.rows import state_of
from tencent_desk.run.exits import EXIT_OUTAGE, EXIT_TOO_MANY_ERRORS, alert_of
from tencent_desk.run.runner import RunOptions, run

from .support import cli, harness
from .support.harness import ADMIN, SDKAPPID, SECRET_KEY

# Every case on each HTTP client a user can choose (tests/conftest.py TRANSPORTS).
pytestmark = pytest.mark.usefixtures("transport")

QUIET_S, MIN_FAILURES = 5.0, 10

# ------------------------------------------------------------------ the breaker alone


def test_a_silence_trips_only_after_quiet_s_and_min_failures():
    b = OutageBreaker(["http://a"])
    b.sending(100.0)
    for i in range(MIN_FAILURES - 1):  # many failures, but within the quiet period
        assert b.failed_call(0, "refused", 100.0 + i * 0.1) is Verdict.NONE
    assert b.failed_call(0, "refused", 104.99) is Verdict.NONE  # 10 failures, 4.99 s
    assert b.failed_call(0, "refused", 105.0) is Verdict.TRIPPED
    assert b.tripped and b.failed == MIN_FAILURES + 1


def test_few_failures_over_a_long_time_do_not_trip_until_min_failures():
    b = OutageBreaker(["http://a"])
    b.sending(0.0)
    for i in range(MIN_FAILURES - 1):
        assert b.failed_call(0, "timed out", 10.0 * (i + 1)) is Verdict.NONE
    assert b.failed_call(0, "timed out", 1000.0) is Verdict.TRIPPED


def test_any_answer_restarts_the_quiet_period():
    b = OutageBreaker(["http://a"])
    b.sending(0.0)
    for i in range(50):
        b.failed_call(0, "HTTP 502", i * 0.09)
    b.reached(4.5)  # the API answered one call: it is there
    for i in range(MIN_FAILURES + 10):
        assert b.failed_call(0, "HTTP 502", 4.6 + i * 0.1) is Verdict.NONE  # < 5 s quiet
    assert b.failed_call(0, "HTTP 502", 9.5) is Verdict.TRIPPED
    assert "none answered for the last 5+ s" in b.message()


def test_an_unreachable_main_is_left_at_once_and_its_late_failures_do_not_count():
    b = OutageBreaker(["https://main.example", "https://backup.example"])
    assert b.sending(0.0) == 0
    assert b.failed_call(0, "DNS", 0.01, unreachable=True) is Verdict.SWITCHED
    assert b.host == 1
    for i in range(100):  # calls that were in flight to the main one
        assert b.failed_call(0, "DNS", 0.02 + i * 0.1) is Verdict.NONE
    # the backup's own quiet period starts at the switch
    for i in range(MIN_FAILURES):
        assert b.failed_call(1, "DNS", 1.0 + i * 0.1, unreachable=True) is Verdict.NONE
    assert b.failed_call(1, "DNS", 5.01, unreachable=True) is Verdict.TRIPPED


def test_a_main_that_only_times_out_is_left_after_the_same_silence():
    b = OutageBreaker(["https://main.example", "https://backup.example"])
    b.sending(0.0)
    for _ in range(MIN_FAILURES - 1):
        assert b.failed_call(0, "timed out after 10s", 10.0) is Verdict.NONE
    assert b.failed_call(0, "timed out after 10s", 10.0) is Verdict.SWITCHED
    assert b.failed_call(1, "timed out after 10s", 20.0) is Verdict.NONE


def test_a_run_whose_every_call_failed_is_an_outage_however_short():
    b = OutageBreaker(["https://main.example", "https://backup.example"])
    b.sending(0.0)
    b.failed_call(0, "refused", 0.0, unreachable=True)
    b.failed_call(1, "refused", 0.5, unreachable=True)
    assert not b.tripped and b.finish()
    quiet = OutageBreaker(["http://a"])
    assert not quiet.finish()  # nothing asked: no outage
    answered = OutageBreaker(["http://a"])
    answered.reached(0.0)
    answered.failed_call(0, "refused", 0.1)
    assert not answered.finish()


def test_the_message_names_every_domain_tried_and_what_to_check():
    b = OutageBreaker(["https://adminapisgp.im.qcloud.com", "https://adminapisgp.my-imcloud.com"])
    b.failed_call(0, "ClientConnectorDNSError: no name", 0.0, unreachable=True)
    b.failed_call(1, "ClientConnectorDNSError: no name", 0.1, unreachable=True)
    b.finish()
    text = b.message()
    assert "\n" not in text
    assert "adminapisgp.im.qcloud.com (ClientConnectorDNSError" in text
    assert "adminapisgp.my-imcloud.com (ClientConnectorDNSError" in text
    assert "DNS, firewall and proxy" in text and "region" in text
    gateway = OutageBreaker(["http://a:1"])
    gateway.failed_call(0, "HTTP 502", 0.0)
    assert "gateway" in gateway.message() and "a:1 (HTTP 502)" in gateway.message()


@pytest.mark.parametrize(("code", "reached"), [
    (0, True), (141002, True), (141005, True), (60007, True), (70001, True),
    (codes.BAD_BODY, True), (codes.BAD_ANSWER, True), (codes.HTTP_ERROR_BASE - 429, True),
    (codes.HTTP_ERROR_BASE - 404, True),
    (codes.TIMEOUT, False), (codes.CONNECTION, False), (codes.HTTP_ERROR_BASE - 502, False),
    (codes.HTTP_ERROR_BASE - 503, False), (codes.HTTP_ERROR_BASE - 504, False),
    (codes.HTTP_ERROR_BASE - 500, False), (codes.HTTP_ERROR_BASE - 408, False)])
def test_only_transport_and_gateway_failures_count_as_not_reaching_the_api(code, reached):
    assert codes.reached_api(code) is reached


# --------------------------------------------------------- the client over loopback


@pytest.fixture(scope="module")
def pop():
    return harness.population()


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A loopback server that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(512)
        yield f"http://127.0.0.1:{hole.getsockname()[1]}"


def outage_run(urls: tuple[str, ...], n_keys: int, **config: Any
               ) -> tuple[DeskClient, list[Answer], Outage | None, float]:
    """Pump ``n_keys`` keys; the answers, the outage raised (if any) and the virtual seconds
    it took (calls are paced, and backoffs slept, on a virtual clock)."""
    fields: dict[str, Any] = dict(max_qps=100, max_concurrency=8, timeout=2.0,
                                  transport=harness.configured_transport())
    fields.update(config)
    pace = VirtualClock(0.0)
    client = DeskClient(ClientConfig(SDKAPPID, ADMIN, urls, **fields),
                        UserSigProvider(SDKAPPID, ADMIN, secret_key=SECRET_KEY),
                        pace_clock=pace)
    answers: list[Answer] = []

    async def keep(answer: Answer) -> None:
        answers.append(answer)

    async def go() -> Outage | None:
        async with client:
            try:
                await client.pump((Key(session_id=f"s-{i}") for i in range(n_keys)), keep)
            except Outage as exc:
                return exc
        return None

    outage = asyncio.run(go())
    return client, answers, outage, pace.monotonic()


def bound(max_qps: float, concurrency: int, seconds: float) -> float:
    """Calls the breaker lets through in ``seconds`` of silence at most, with those in
    flight and those waiting for a backoff to end."""
    return max_qps * seconds + MIN_FAILURES + 4 * concurrency


def check_stopped(client: DeskClient, answers: list[Answer], outage: Outage | None,
                  n_keys: int, hosts: list[str]) -> str:
    assert outage is not None and client.breaker.tripped
    text = str(outage)
    for host in hosts:
        assert host in text
    assert all(state_of(a) == states.ERROR and not codes.reached_api(a.code) for a in answers)
    assert len({a.key for a in answers}) == len(answers) < n_keys  # keys left unasked
    # a call given up in flight counts in its key's attempts, if the key has a row
    attempts = sum(a.attempts for a in answers)
    assert attempts <= client.stats.calls <= attempts + client.stats.abandoned
    return text


# What each transport says of a refused connection, and of a name that does not resolve.
REFUSED = {"aiohttp": "Connect call failed", "httpx": "ConnectError: All connection attempts"}
NO_NAME = {"aiohttp": "ClientConnectorDNSError", "httpx": "Name or service not known"}


def test_closed_ports_on_both_domains_stop_within_the_bound(transport):
    main, backup = (f"http://127.0.0.1:{harness.closed_port()}" for _ in range(2))
    client, answers, outage, took = outage_run((main, backup), 5000)
    text = check_stopped(client, answers, outage, 5000, [main[7:], backup[7:]])
    assert REFUSED[transport] in text and "DNS, firewall" in text
    assert client.stats.fallbacks == 1
    assert client.stats.calls <= bound(100, 8, QUIET_S + 1)
    assert took <= QUIET_S + 20  # the quiet period, then the longest backoff cut short


def test_unresolvable_names_stop_the_run(transport):
    """``.invalid`` never resolves (RFC 6761). One lookup at a time: this machine's resolver
    answers at once, but concurrent lookups of a missing name wait out its 5 s retry."""
    main, backup = "https://main.desk.invalid", "https://backup.desk.invalid"
    client, answers, outage, _ = outage_run((main, backup), 2000, max_concurrency=1)
    text = check_stopped(client, answers, outage, 2000, ["main.desk.invalid",
                                                         "backup.desk.invalid"])
    assert NO_NAME[transport] in text
    assert client.stats.calls <= bound(100, 1, QUIET_S + 1)


def test_a_black_hole_stops_the_run_after_its_timeouts():
    with black_hole() as main, black_hole() as backup:
        client, answers, outage, _ = outage_run((main, backup), 2000, timeout=0.3)
    text = check_stopped(client, answers, outage, 2000, [main[7:], backup[7:]])
    assert "timed out after 0.3s" in text
    assert {a.code for a in answers} == {codes.TIMEOUT}
    assert client.stats.fallbacks == 1


def test_a_gateway_answering_502_on_both_domains_stops_the_run(pop):
    with harness.serve(pop, http_502=1.0) as (app, url):
        port = url.rsplit(":", 1)[1]
        # the same server under two names: a main and a backup domain behind one gateway
        client, answers, outage, _ = outage_run((url, f"http://localhost:{port}"), 3000)
        app.settle()
    text = check_stopped(client, answers, outage, 3000, [f"127.0.0.1:{port}",
                                                         f"localhost:{port}"])
    assert "(HTTP 502)" in text and "gateway" in text
    assert {a.code for a in answers} == {codes.HTTP_ERROR_BASE - 502}
    assert client.stats.calls <= bound(100, 8, 2 * (QUIET_S + 1))
    # a call given up in flight may or may not have reached the server
    calls = client.stats.calls
    assert calls - client.stats.abandoned <= app.stats.faults["http_502"] <= calls


@pytest.mark.parametrize("kind", ["http_502", "drop"])
def test_a_30_percent_fault_rate_is_no_outage(pop, kind):
    with harness.serve(pop, **{kind: 0.3}) as (_app, url):
        client, answers, outage, _ = outage_run((url,), 400, max_qps=2000,
                                                backoff_base=0.01, backoff_max=0.05)
    assert outage is None and not client.breaker.tripped
    assert len(answers) == 400 and client.breaker.failed > 50
    assert sum(a.code in (0, codes.SESSION_ENDED) for a in answers) >= 390


# ------------------------------------------------------------------------- the job


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Production backoff (0.5 s .. 20 s) made quick; the breaker's settings stay."""
    monkeypatch.setattr(source_module, "ClientConfig", functools.partial(
        ClientConfig, backoff_base=0.01, backoff_max=0.05, max_attempts=2))


def job(tmp_path: Path, rows: list[tuple[str, str, str]], url: str, **over: Any
        ) -> tuple[dict[str, Any], int]:
    """The job in this process: its ``runs`` row and exit code (0 unless it raised)."""
    tmp_path.mkdir(exist_ok=True)
    seed = harness.write_seed(tmp_path / "seed.csv", rows)
    overrides = {"api_url": url, "sdkappid": SDKAPPID, "identifier": ADMIN,
                 "secret_key": SECRET_KEY, "max_qps": 2000, "max_concurrency": 8, **over}
    options = RunOptions(seed=str(seed), database=tmp_path / "desk.duckdb",
                         pipelines_dir=str(tmp_path / "dlt"), overrides=overrides,
                         progress=False)
    try:
        return run(options), 0
    except JobError as exc:
        assert exc.row is not None, exc
        return exc.row, exc.exit_code


def db_run(tmp_path: Path, run_id: str) -> tuple[Any, ...]:
    ((row),) = harness.query(
        tmp_path / "desk.duckdb", "SELECT status, error, keys, rows, not_asked, errors, "
        "calls FROM tencent_desk.runs WHERE run_id = ?", [run_id])
    return row


def test_an_outage_loads_what_was_polled_and_records_why(tmp_path):
    dead = f"http://127.0.0.1:{harness.closed_port()}"
    rows = [(f"s-{i}", "", "") for i in range(3000)]
    row, code = job(tmp_path, rows, dead, max_qps=200)
    assert code == EXIT_OUTAGE and row["status"] == "outage"
    status, error, keys, loaded, not_asked, errors, calls = db_run(tmp_path, row["run_id"])
    assert (status, keys) == ("outage", 3000) and error == row["error"]
    assert "cannot be reached" in error and dead[7:] in error
    assert loaded == errors == row["rows"] > 0 and not_asked == 3000 - loaded > 0
    assert calls <= bound(200, 8, QUIET_S + 1)
    ((n,),) = harness.query(tmp_path / "desk.duckdb", "SELECT count(*) FROM "
                            "tencent_desk.session_states WHERE run_id = ?", [row["run_id"]])
    assert n == loaded
    # the notebooks list it as a gap, with its reason
    with duckdb.connect(str(tmp_path / "desk.duckdb"), read_only=True) as con:
        gaps = metrics.incomplete_runs(con)
    assert gaps.to_dict("records") == [{"run_id": row["run_id"], "started_at": gaps.started_at[0],
                                        "status": "outage", "error": error,
                                        "not_asked": not_asked}]


def test_many_error_rows_complete_and_the_threshold_works_both_ways(tmp_path, pop):
    t = pop.config.day_start + harness.MODEL_HOUR * 3600
    seed = harness.pick_keys(pop, t, live=60, other=60, pairs=0)
    with harness.serve(pop, internal_error=0.6) as (_app, url):
        strict, strict_code = job(tmp_path / "a", seed.rows, url, max_error_share=0.05)
        lax, lax_code = job(tmp_path / "b", seed.rows, url, max_error_share=0.9)
    # two attempts at 60% failures: about 36% of the keys end in error
    for row in (strict, lax):
        assert row["status"] == "complete" and row["not_asked"] == 0
        assert 0.05 * row["rows"] < row["errors"] < 0.9 * row["rows"]
    assert (strict_code, lax_code) == (EXIT_TOO_MANY_ERRORS, 0)
    assert db_run(tmp_path / "a", strict["run_id"])[0] == "complete"


@pytest.mark.parametrize(("errors", "alert"), [(5, False), (6, True), (0, False)])
def test_max_error_share_is_a_strict_upper_bound(errors, alert):
    row = {"run_id": "r", "status": "complete", "rows": 100, "errors": errors,
           "max_error_share": 0.05, "keys": 100, "not_asked": 0, "error": None}
    got = alert_of(row)
    assert (got is not None) is alert
    if got:
        assert got[1] == EXIT_TOO_MANY_ERRORS and "6 of 100 keys ended in error" in got[0]


@pytest.mark.parametrize(("key", "value", "says"), [
    *[("max_error_share", share, "max_error_share must be a share") for share in (
        "lots", "1.5", "-0.1", "nan")],
    ("transport", "curl", "transport must be one of aiohttp, httpx-aiohttp, httpx, got 'curl'")])
def test_a_bad_setting_is_a_configuration_error(tmp_path, key, value, says):
    seed = harness.write_seed(tmp_path / "seed.csv", [("s-1", "", "")])
    with pytest.raises(JobError) as info:
        run(RunOptions(seed=str(seed), database=tmp_path / "desk.duckdb",
                       pipelines_dir=str(tmp_path / "dlt"), progress=False, overrides={
                           "api_url": "http://127.0.0.1:9", "sdkappid": SDKAPPID,
                           "identifier": ADMIN, "secret_key": SECRET_KEY, key: value}))
    assert info.value.exit_code == 2 and str(info.value).startswith(says)


def test_the_transport_key_chooses_the_client(tmp_path, pop, transport, caplog):
    """The config key (the ``transport`` fixture sets SOURCES__TENCENT_DESK__TRANSPORT)
    reaches the run's client: httpx notes each request in its log, aiohttp keeps none."""
    caplog.set_level(logging.INFO, logger="httpx")
    with harness.serve(pop) as (_app, url):
        row, code = job(tmp_path, [("s-1", "", ""), ("s-2", "", "")], url)
    assert code == 0 and row["status"] == "complete"
    sent = [r for r in caplog.records if r.name == "httpx" and "POST" in r.getMessage()]
    assert len(sent) == row["calls"] if transport == "httpx" else not sent


# ------------------------------------------------------------- the real CLI, exit codes


def cli_run(tmp_path: Path, seed: Path, url: str, *more: str, **env: str
            ) -> tuple[Any, tuple[Any, ...]]:
    db = tmp_path / "desk.duckdb"
    proc = cli.run(cli.run_argv(seed, db, url, tmp_path / "dlt", "--transport",
                                harness.configured_transport(), *more), tmp_path, **env)
    assert "Traceback" not in proc.stderr, proc.stderr
    rows = harness.query(db, "SELECT status, error, keys, rows, not_asked, errors, calls "
                         "FROM tencent_desk.runs")
    assert len(rows) == 1, (proc.stderr, rows)
    return proc, rows[0]


def many_keys(tmp_path: Path, n: int) -> Path:
    return harness.write_seed(tmp_path / "seed.csv", [(f"s-{i}", "", "") for i in range(n)])


def test_cli_exits_5_on_a_closed_port_with_one_line_and_the_run_recorded(tmp_path):
    dead = f"http://127.0.0.1:{harness.closed_port()}"
    proc, (status, error, keys, rows, not_asked, _errors, calls) = cli_run(
        tmp_path, many_keys(tmp_path, 3000), dead, "--max-qps", "100")
    assert proc.returncode == EXIT_OUTAGE, proc.stderr
    [line] = cli.error_lines(proc.stderr)
    assert dead[7:] in line and "DNS, firewall" in line and "keys not asked" in line
    assert (status, keys, rows + not_asked) == ("outage", 3000, 3000) and not_asked > 0
    assert error in line and calls <= bound(100, 8, QUIET_S + 1)
    assert "not asked (status outage)" in proc.stdout  # the summary, then the error


@pytest.mark.slow
@pytest.mark.parametrize("where", ["dns", "black_hole", "gateway_502"])
def test_cli_exits_5_when_nothing_answers(tmp_path, where):
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        if where == "dns":
            url = "https://main.desk.invalid"
            env["SOURCES__TENCENT_DESK__BACKUP_URL"] = "https://backup.desk.invalid"
            more = ("--max-concurrency", "1")  # see test_unresolvable_names_stop_the_run
        elif where == "black_hole":
            url = stack.enter_context(black_hole())
            env["SOURCES__TENCENT_DESK__TIMEOUT"] = "1"
            more = ()
        else:
            proc, port = cli.start_server([cli.CLI, "simulate", "--http-502", "1"])
            more = ()
            stack.callback(cli.stop_server, proc)
            url = f"http://127.0.0.1:{port}"
        proc, (status, error, _keys, _rows, not_asked, _errors, calls) = cli_run(
            tmp_path, many_keys(tmp_path, 2000), url, *more, "--max-qps", "100", **env)
    assert proc.returncode == EXIT_OUTAGE, proc.stderr
    [line] = cli.error_lines(proc.stderr)
    assert status == "outage" and error in line and not_asked > 0
    assert calls <= bound(100, 8, 2 * (QUIET_S + 2))


@pytest.mark.slow  # chaos: the CLI through 30% faults
def test_cli_completes_at_a_30_percent_fault_rate(tmp_path):
    proc, port = cli.start_server([cli.CLI, "simulate", "--http-502", "0.3", "--seed-out",
                                   str(tmp_path / "sim-seed.csv")])
    try:
        seed = tmp_path / "seed.csv"
        lines = (tmp_path / "sim-seed.csv").read_text().splitlines()
        seed.write_text("\n".join(lines[:301]) + "\n")
        result, (status, error, keys, rows, not_asked, errors, _calls) = cli_run(
            tmp_path, seed, f"http://127.0.0.1:{port}")
    finally:
        cli.stop_server(proc)
    assert result.returncode == 0, result.stderr
    assert (status, error, not_asked) == ("complete", None, 0) and rows == keys == 300
    assert errors <= 0.05 * rows


@pytest.mark.slow
@pytest.mark.parametrize(("share", "code"), [("0.5", EXIT_TOO_MANY_ERRORS), ("1", 0)])
def test_cli_max_error_share_both_ways(tmp_path, share, code):
    """Desk answers 141002 to every call: the API is there (no outage) but no key gets a
    state; six attempts with production backoff take ~10 s."""
    proc, port = cli.start_server([cli.CLI, "simulate", "--internal-error", "1"])
    try:
        result, (status, _error, _keys, rows, _not_asked, errors, _calls) = cli_run(
            tmp_path, many_keys(tmp_path, 3), f"http://127.0.0.1:{port}",
            "--max-error-share", share)
    finally:
        cli.stop_server(proc)
    assert result.returncode == code, result.stderr
    assert (status, rows, errors) == ("complete", 3, 3)
    if code:
        [line] = cli.error_lines(result.stderr)
        assert "3 of 3 keys ended in error" in line and "max_error_share 0.5" in line
