"""Session records (``describe_im_cdr_list``): the paged call against the simulator over
loopback, the ``session_records`` resource into real DuckDB files, and bad answers."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from tencent_desk import cli, tencent_desk
from tencent_desk.analysis import record_metrics
from tencent_desk.api.record_fields import BadRecord, check, end_kind, record_span, record_times
from tencent_desk.api.records import (
    RecordsError,
    RecordsPage,
    Window,
    cut_windows,
    plan,
    read_windows,
)
from tencent_desk.core import settings
from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.errors import ConfigError, JobError
from tencent_desk.job import record_rows
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)

from .conftest import ADMIN, SDKAPPID, SECRET_KEY, make_client
from .support.harness import closed_port

GROUPS = ("Sales", "Support", "Billing")
HOUR = 3600


@pytest.fixture(scope="module")
def grouped() -> Population:
    return Population(PopulationConfig(seed=21, sessions_per_day=3000, agents=9,
                                       agent_groups=GROUPS))


def _serve(pop: Population, hour: float = 14.0, app_class: type = SimulatorApp,
           **fields: Any):
    config = SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY, seed=3, **fields)
    app = app_class(pop, config, model_clock=VirtualClock(pop.config.day_start + hour * HOUR))
    return app, serve_in_thread(app)


def _read(url: str, windows: list[Window], **client: Any) -> list:
    async def go() -> list:
        async with make_client(url, **client) as c:
            return [w async for w in read_windows(c, windows)]
    return asyncio.run(go())


def _ended_between(pop: Population, start: int, end: int, t: float) -> set[str]:
    """The truth: sessions that ended by ``t`` whose record falls in [start, end]."""
    out = set()
    for k in pop.session_keys():
        truth = pop.session_truth(k.session_id)
        ts, _ = record_times(truth.arrived_at, truth.ended_at)
        if start <= ts <= end and truth.ended_at <= t:
            out.add(k.session_id)
    return out


# ------------------------------------------------------------------ pure functions

def test_windows_are_aligned_consecutive_and_cover_the_span():
    ws = cut_windows(1000, 10_000, 3600)
    assert ws[0] == Window(1000, 3599) and ws[-1] == Window(7200, 10_000)
    assert all(b.start == a.end + 1 for a, b in itertools.pairwise(ws))
    assert cut_windows(5, 5, 60) == [Window(5, 5)]
    assert Window(0, 9).parts(2) == [Window(0, 4), Window(5, 9)]
    assert Window(0, 9).parts(3) == [Window(0, 2), Window(3, 5), Window(6, 9)]
    assert Window(0, 1).parts(5) == [Window(0, 0), Window(1, 1)]


def test_plan_backfill_incremental_and_settle_lag():
    now = 100_000.0
    assert plan(now=now, next_start=None, since=None, until=None, settle_s=300,
                first_back_s=86_400) == (13_600, 99_700)
    assert plan(now=now, next_start=None, since=None, until=None, settle_s=300,
                first_back_s=3600) == (96_400, 99_700)
    assert plan(now=now, next_start=99_000, since=None, until=None, settle_s=300,
                first_back_s=3600) == (99_000, 99_700)
    assert plan(now=now, next_start=99_800, since=None, until=None, settle_s=300,
                first_back_s=3600) is None
    assert plan(now=now, next_start=99_000, since=10, until=20, settle_s=300,
                first_back_s=3600) == (10, 20)


def test_timestamp_and_duration_reading_is_one_function_and_its_inverse():
    ts, dur = record_times(1000.7, 1600.2)
    assert record_span(ts, dur) == (1000, 1600)


@pytest.mark.parametrize("change, problem", [
    ({"SessionId": None}, "no SessionId"),
    ({"Duration": "10"}, "Duration is str"),
    ({"Timestamp": True}, "Timestamp is bool"),
    ({"SatisfactionSelected": 9}, "not in 0..5"),
    ({"AgentId": 5}, "AgentId is int"),
])
def test_a_missing_or_mistyped_field_names_itself(grouped, change, problem):
    good = grouped.record(0)
    check(good)
    with pytest.raises(BadRecord, match=problem):
        check({**good, **change})


def test_nicknames_are_not_stored_unless_asked(grouped):
    rows = [check(grouped.record(i)) for i in range(5)]
    assert "client_user_nickname" not in record_rows.to_table(rows, "r").column_names
    kept = record_rows.to_table(rows, "r", keep_nicknames=True)
    assert kept["client_user_nickname"].to_pylist()[0].startswith("nick-")


# ----------------------------------------------------- the call against the simulator

def test_every_ended_session_of_a_window_comes_once_with_the_true_fields(grouped):
    app, server = _serve(grouped)
    t = app.model_clock.time()
    start = int(grouped.config.day_start + 8 * HOUR)
    with server as url:
        got = _read(url, [Window(start, start + 6 * HOUR - 1)])
    records = [r for w in got for r in w.records]
    ids = [r["SessionId"] for r in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == _ended_between(grouped, start, start + 6 * HOUR - 1, t)
    kinds = set()
    for r in records:
        truth = grouped.session_truth(r["SessionId"])
        started, ended = record_span(r["Timestamp"], r["Duration"])
        segs = grouped.segments(r["SessionId"])
        assert started == int(segs[0].start) and ended == int(segs[-1].end)
        assert (r["AgentId"] or None) == truth.agent_id == (
            segs[-1].agent_id if segs[-1].state == "agent" else None)
        if truth.agent_id:
            assert r["AgentGroupId"] == grouped.agent_group(truth.agent_id)
        assert (r["AgentGroupId"] or None) == truth.agent_group_id
        assert (r["AgentGroupName"] or None) == truth.agent_group_name
        assert r["ChannelType"] == truth.channel_type
        assert r["EndStatus"] == truth.end_status
        assert (r["SatisfactionSelected"] or None) == truth.satisfaction
        assert r["ClientUserId"] == truth.client_user_id
        kinds.add(end_kind(r["EndStatus"]))
    assert kinds == {"agent_ended", "user_ended", "user_timeout", "abandoned", "chatbot_only"}
    assert {r["AgentGroupName"] for r in records} >= set(GROUPS)


def test_a_crowded_window_is_cut_into_parts(grouped, monkeypatch):
    monkeypatch.setattr(settings, "RECORDS_MAX_PER_WINDOW", 150)
    app, server = _serve(grouped)
    start = int(grouped.config.day_start + 9 * HOUR)
    with server as url:
        got = _read(url, [Window(start, start + 2 * HOUR - 1)])
    assert len(got) > 2 and all(len(w.records) <= 150 for w in got)
    assert all(b.window.start == a.window.end + 1 for a, b in itertools.pairwise(got))
    assert sum(len(w.records) for w in got) == len(
        _ended_between(grouped, start, start + 2 * HOUR - 1, app.model_clock.time()))


class GrowingApp(SimulatorApp):
    """Sessions keep ending while the first pages are read: the clock moves on each call."""

    moves = 4

    def _records(self, doc: dict, t: float):
        if self.moves:
            self.moves -= 1
            self.model_clock.advance(120)  # type: ignore[attr-defined]
            t = self.model_clock.time()
        return super()._records(doc, t)


def test_records_added_while_a_window_is_paged_are_not_lost(grouped):
    app, server = _serve(grouped, app_class=GrowingApp)
    now = app.model_clock.time()
    # The window reaches past now: sessions end inside it while it is paged.
    window = Window(int(now) - 2 * HOUR, int(now) + HOUR)
    with server as url:
        (got,) = _read(url, [window])
    assert got.repaged >= 1
    ids = [r["SessionId"] for r in got.records]
    assert len(ids) == len(set(ids))
    assert set(ids) == _ended_between(grouped, window.start, window.end,
                                      app.model_clock.time())


class BadPagesApp(SimulatorApp):
    """Answers pages as a faulty server might: ``mode`` says how."""

    mode = ""
    served = 0

    def _records(self, doc: dict, t: float):
        code, body = super()._records(doc, t)
        self.served += 1
        if self.mode == "empty_page" and doc.get("Offset"):
            body["IMCdrList"] = []
        elif self.mode == "shrinking":
            body["TotalCount"] = max(0, body["TotalCount"] - self.served)
        elif self.mode == "missing_field" and doc.get("Offset"):
            del body["IMCdrList"][0]["Duration"]
        elif self.mode == "string_count":
            body["TotalCount"] = str(body["TotalCount"])
        return code, body


@pytest.mark.parametrize("mode, message", [
    ("empty_page", "held 0 records, 100 expected"),
    ("shrinking", "TotalCount kept changing"),
    ("missing_field", "has no Duration"),
    ("string_count", "TotalCount is str"),
])
def test_a_bad_page_is_an_error_naming_the_window_never_a_short_load(grouped, mode, message):
    app, server = _serve(grouped, app_class=BadPagesApp)
    app.mode = mode
    start = int(grouped.config.day_start + 9 * HOUR)
    with server as url, pytest.raises(RecordsError, match=message) as info:
        _read(url, [Window(start, start + HOUR - 1)])
    assert "nothing of this window or later was loaded" in str(info.value)
    assert datetime.fromtimestamp(start, UTC).strftime("%H:%M:%S") in str(info.value)


def test_an_internal_error_storm_ends_as_an_error_after_retries(grouped):
    _app, server = _serve(grouped, internal_error=1.0)
    start = int(grouped.config.day_start + 9 * HOUR)
    with server as url, pytest.raises(RecordsError, match=r"ErrorCode 141002.*6 attempts|"
                                                          r"6 attempts.*141002"):
        _read(url, [Window(start, start + HOUR - 1)])


def test_gateway_pages_and_garbled_answers_are_retried_to_a_complete_window(grouped):
    app, server = _serve(grouped, non_json=0.15, http_502=0.1, internal_error=0.1,
                         truncated=0.05)
    start = int(grouped.config.day_start + 8 * HOUR)
    window = Window(start, start + 4 * HOUR - 1)
    with server as url:
        got = _read(url, cut_windows(window.start, window.end))
    ids = [r["SessionId"] for w in got for r in w.records]
    assert len(ids) == len(set(ids)) == len(
        _ended_between(grouped, window.start, window.end, app.model_clock.time()))
    assert len(app.stats.faults) >= 2  # several kinds of fault met, and retried past


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_on_records_ends_complete_or_as_an_error_never_short(grouped, seed):
    config = SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY, seed=seed, chaos=0.2)
    app = SimulatorApp(grouped, config, model_clock=VirtualClock(
        grouped.config.day_start + 14 * HOUR))
    start = int(grouped.config.day_start + 8 * HOUR)
    windows = cut_windows(start, start + 3 * HOUR - 1)
    with serve_in_thread(app) as url:
        try:
            got = _read(url, windows)
        except RecordsError as exc:
            assert "nothing of this window or later was loaded" in str(exc)
            return
    ids = [r["SessionId"] for w in got for r in w.records]
    assert len(ids) == len(set(ids))
    assert set(ids) == _ended_between(grouped, start, start + 3 * HOUR - 1,
                                      app.model_clock.time())
    assert app.stats.chaos


@pytest.mark.parametrize("body, info", [
    ({"StartTimestamp": 10, "EndTimestamp": 5}, "invalid time window"),
    ({"StartTimestamp": 10, "EndTimestamp": 50, "Limit": 101}, "Limit must be 1..100"),
    ({"EndTimestamp": 50}, "required integers"),
])
def test_the_simulator_answers_bad_windows_with_141004(grouped, body, info):
    app, _ = _serve(grouped)
    code, envelope = app._records(json.loads(json.dumps(body)), app.model_clock.time())
    assert code == 141004 and info in envelope["ErrorInfo"]


def test_a_page_request_is_the_documented_body():
    page = RecordsPage(Window(10, 20), offset=200)
    assert json.loads(page.body()) == {"StartTimestamp": 10, "EndTimestamp": 20,
                                        "Limit": 100, "Offset": 200}
    assert page.path == "v4/desk_http_svc/describe_im_cdr_list"


# ------------------------------------------------------------- the resource and the job

def _options(tmp_path: Path, url: str, seed: Path | None = None, target: Any = None,
             **records: Any) -> RunOptions:
    overrides = {"api_url": url, "sdkappid": SDKAPPID, "identifier": ADMIN,
                 "secret_key": SECRET_KEY, "max_qps": 5000, "max_concurrency": 16,
                 "records": True, **records}
    where = target.options() if target else {"database": tmp_path / "desk.duckdb"}
    return RunOptions(seed=str(seed) if seed else None, poll=seed is not None,
                      pipelines_dir=str(tmp_path / "dlt"), overrides=overrides,
                      progress=False, **where)


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def test_backfills_twice_and_overlapping_leave_one_row_per_session(tmp_path, grouped, target):
    app, server = _serve(grouped)
    day = grouped.config.day_start
    clock = app.model_clock
    with server as url:
        for since, until in ((8, 11), (8, 11), (10, 13)):
            run(_options(tmp_path, url, target=target, records_from=_iso(day + since * HOUR),
                         records_until=_iso(day + until * HOUR - 1)), clock=clock)
    truth = _ended_between(grouped, int(day + 8 * HOUR), int(day + 13 * HOUR - 1),
                           clock.time())
    got = target.query("SELECT session_id, count(*) FROM tencent_desk.session_records "
                       "GROUP BY 1")
    assert {r[0] for r in got} == truth and all(r[1] == 1 for r in got)
    sid = next(iter(truth))
    truth_row = grouped.session_truth(sid)
    (row,) = target.query("SELECT agent_id, agent_group_name, end_status, satisfaction, "
                          "started_at, ended_at FROM tencent_desk.session_records "
                          "WHERE session_id = ?", [sid])
    assert row[:4] == (truth_row.agent_id, truth_row.agent_group_name, truth_row.end_status,
                       truth_row.satisfaction)
    assert int(row[4].timestamp()) == int(truth_row.arrived_at)
    assert int(row[5].timestamp()) == int(truth_row.ended_at)
    statuses = target.query("SELECT status, records FROM tencent_desk.record_runs "
                            "ORDER BY run_id")
    assert [s for s, _ in statuses] == ["complete"] * 3
    if target.duckdb:  # the metrics read DuckDB (a reader of any destination is elsewhere)
        _check_metrics(target.database, grouped, truth)


def _check_metrics(db: Path, pop: Population, ids: set[str]) -> None:
    """The record metrics on a loaded database, against the truth of those sessions."""
    truths = [pop.session_truth(s) for s in ids]
    con = duckdb.connect(str(db), read_only=True)
    try:
        mix = record_metrics.end_status_mix(con)
        assert dict(zip(mix.end_status, mix.sessions, strict=True)) == {
            k: sum(t.end_status == k for t in truths) for k in {t.end_status for t in truths}}
        by_group = record_metrics.end_status_mix(con, by="agent_group_name")
        assert by_group.groupby("agent_group_name", dropna=False).share.sum().round(9).eq(1).all()
        queued = [t for t in truths if t.end_status != "ChatbotEnded"]
        ab = record_metrics.recorded_abandonment(con)
        assert ab.queued[0] == len(queued)
        assert ab.abandoned[0] == sum(t.end_status == "QueueAbandoned" for t in queued)
        rated = record_metrics.ratings(con, by="agent_group_name")
        for group, mean in zip(rated.agent_group_name, rated.mean_rating, strict=True):
            scores = [t.satisfaction for t in truths
                      if t.agent_group_name == group and t.agent_id and t.satisfaction]
            assert mean == pytest.approx(sum(scores) / len(scores))
        arrivals = record_metrics.arrivals_per_interval(con)
        assert arrivals.arrivals.sum() == len(queued)
        handled = record_metrics.handling_times(con)  # no polls: bounds are the session
        assert len(handled) == sum(bool(t.agent_id) for t in truths)
        assert (handled.lower_s == 0).all() and (handled.upper_s == handled.duration_s).all()
    finally:
        con.close()


def test_incremental_runs_continue_where_the_last_load_ended(tmp_path, grouped, target):
    app, server = _serve(grouped, hour=10.0)
    clock = app.model_clock
    settle = settings.DEFAULT_RECORDS_SETTLE_S
    with server as url:
        first = run(_options(tmp_path, url, target=target), clock=clock)
        clock.advance(2 * HOUR)
        second = run(_options(tmp_path, url, target=target), clock=clock)
        third = run(_options(tmp_path, url, target=target), clock=clock)  # nothing settled
    assert int(second["records_from"].timestamp()) == int(first["records_until"].timestamp()) + 1
    assert third["records"] == 0 and third["records_from"] is None
    day = grouped.config.day_start
    truth = _ended_between(grouped, int(day + 10 * HOUR - 86_400), int(clock.time()) - settle,
                           clock.time())
    got = target.query("SELECT session_id FROM tencent_desk.session_records")
    assert len(got) == len(truth) == first["records"] + second["records"]
    assert {r[0] for r in got} == truth


def test_sessions_with_a_record_are_not_polled_again(tmp_path, grouped):
    app, server = _serve(grouped)
    t = app.model_clock.time()
    keys = [k for k in grouped.session_keys() if grouped.ended_at(k.session_id) < t - HOUR]
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id\n" + "".join(f"{k.session_id}\n" for k in keys[:50]))
    with server as url:
        run(_options(tmp_path, url), clock=app.model_clock)  # records only: the last day
        row = run(_options(tmp_path, url, seed, records=False), clock=app.model_clock)
        again = _options(tmp_path, url, seed, records=False)
        again.repoll_ended = True
        repolled = run(again, clock=app.model_clock)
    assert row["skipped_ended"] == 50 and row["keys"] == 0
    assert repolled["keys"] == 50


def test_run_with_records_polls_then_loads_records_in_one_run(tmp_path, grouped, target):
    app, server = _serve(grouped)
    t = app.model_clock.time()
    live = [k for k in grouped.session_keys() if grouped.state_at(k.session_id, t)][:20]
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id\n" + "".join(f"{k.session_id}\n" for k in live))
    with server as url:
        row = run(_options(tmp_path, url, seed, target), clock=app.model_clock)
    assert row["keys"] == len(live) > 10 and row["records"] > 100
    q = target.query
    assert q("SELECT count(*) FROM tencent_desk.session_states") == [(len(live),)]
    assert q("SELECT count(*) FROM tencent_desk.session_records") == [(row["records"],)]
    ((status, records),) = q("SELECT status, records FROM tencent_desk.runs")
    assert status == "complete" and records == row["records"]


def test_config_key_records_makes_every_run_load_records(tmp_path, grouped, monkeypatch):
    app, server = _serve(grouped)
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id\n" + grouped.session_keys()[0].session_id + "\n")
    monkeypatch.setenv("SOURCES__TENCENT_DESK__RECORDS", "true")
    monkeypatch.setenv("SOURCES__TENCENT_DESK__RECORDS_SINCE", "7200")
    with server as url:
        options = _options(tmp_path, url, seed)
        del options.overrides["records"]
        row = run(options, clock=app.model_clock)
    t = app.model_clock.time()
    assert row["records"] == len(_ended_between(grouped, int(t) - 7200, int(t) - 300, t)) > 0


def test_a_failed_records_run_says_what_was_missed_and_the_next_one_loads_it(tmp_path,
                                                                            grouped, target):
    app, server = _serve(grouped, app_class=BadPagesApp)
    app.mode = "missing_field"
    with server as url:
        with pytest.raises(JobError) as info:
            run(_options(tmp_path, url, target=target), clock=app.model_clock)
        assert info.value.exit_code == 1 and "has no Duration" in str(info.value)
        app.mode = ""
        good = run(_options(tmp_path, url, target=target), clock=app.model_clock)
    runs = target.query("SELECT status, error FROM tencent_desk.record_runs ORDER BY status")
    assert runs[0][0] == "complete" and runs[1][0] == "failed"
    assert "nothing of this window or later was loaded" in runs[1][1]
    assert target.query("SELECT count(*) FROM tencent_desk.session_records") == [
        (good["records"],)]


def test_a_failed_poll_is_recorded_in_runs_by_a_records_run_and_not_as_a_snapshot(
        tmp_path, grouped):
    app, server = _serve(grouped)
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id\n" + grouped.session_keys()[0].session_id + "\n")
    with server as url:
        bad = _options(tmp_path, url, seed, records=False)
        bad.overrides["secret_key"] = "not-the-key-0123456789"
        with pytest.raises(JobError):
            run(bad, clock=app.model_clock)
        run(_options(tmp_path, url), clock=app.model_clock)
    db = tmp_path / "desk.duckdb"
    assert _rows(db, "SELECT status FROM tencent_desk.runs") == [("failed",)]
    assert _rows(db, "SELECT status FROM tencent_desk.record_runs") == [("complete",)]


def test_a_backfill_that_ends_before_it_starts_is_refused_by_the_source(tmp_path):
    """What `records --since ... --until ...` refuses, the source refuses too, in the same
    words naming its config keys: for a pipeline script calling it, and for a job given
    records_from and records_until; before anything is asked."""
    url = f"http://127.0.0.1:{closed_port()}"
    span = {"records_from": "2026-01-05T10:00:00Z", "records_until": "2026-01-05T09:00:00Z"}
    says = ("records_from 2026-01-05T10:00:00Z is not before records_until "
            "2026-01-05T09:00:00Z: nothing to load")
    with pytest.raises(ConfigError) as direct:
        tencent_desk(sdkappid=SDKAPPID, identifier=ADMIN, secret_key=SECRET_KEY, api_url=url,
                     **span)
    assert str(direct.value) == says
    with pytest.raises(JobError) as job:
        run(_options(tmp_path, url, **{**span, "records_until": span["records_from"]}))
    assert job.value.exit_code == 2
    assert str(job.value) == says.replace("09:00:00Z", "10:00:00Z")


def test_cli_records_summary_and_one_line_errors(tmp_path, grouped, monkeypatch, capsys):
    _app, server = _serve(grouped)
    for name, value in (("SDKAPPID", SDKAPPID), ("IDENTIFIER", ADMIN),
                        ("SECRET_KEY", SECRET_KEY)):
        monkeypatch.setenv(f"SOURCES__TENCENT_DESK__{name}", str(value))
    day = grouped.config.day_start
    with server as url:
        args = ["records", "--database", str(tmp_path / "d.duckdb"), "--api-url", url,
                "--pipelines-dir", str(tmp_path / "dlt"), "--no-progress",
                "--since", _iso(day + 9 * HOUR), "--until", _iso(day + 10 * HOUR)]
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert "session records" in out and "windows" in out and "session_records" in out
        with pytest.raises(SystemExit) as refused:  # the command line's own refusal
            cli.main([*args[:-4], "--since", "yesterday"])
        assert refused.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "argument --since" in err and "ISO 8601" in err


def test_the_summary_line_dates_an_end_past_midnight() -> None:
    from tencent_desk.job.record_source import summary_line

    row = {"records": 3, "records_windows": 1, "records_pages": 1, "records_repaged": 0,
           "records_from": datetime(2026, 12, 5, 12, 56, 21, tzinfo=UTC)}
    same = summary_line({**row, "records_until": datetime(2026, 12, 5, 18, 0, tzinfo=UTC)})
    assert "(2026-12-05 12:56:21..18:00:00 UTC)" in same
    # the reviewer's line read "12:56:21..12:51:21", an end before its start
    later = summary_line({**row, "records_until": datetime(2026, 12, 6, 12, 51, 21, tzinfo=UTC)})
    assert "(2026-12-05 12:56:21..2026-12-06 12:51:21 UTC)" in later
