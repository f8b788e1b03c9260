"""``desk-sessions report``, run as a user runs it (the real CLI in a child process): the page
in a real headless Chromium at a desktop and a phone width, the mail through a real SMTP
server on loopback (aiosmtpd), every shape of database the tests know (PostgreSQL too),
and each bad input as one line."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.readers.snapshot import Reader
from tencent_desk.report import period as periods
from tencent_desk.report.period import Period, PeriodError
from tencent_desk.run.publish import publish

from tests.nb_fixture import DS, SHAPES, build_shape

from .support import browser
from .support.cli import CLI, error_lines, run
from .support.harness import closed_port

DAY = "2026-01-05"  # the demo's Monday (several_days adds the Thursday and Friday before)
SECOND_APP = 1400000001
HOSTILE = '<script>alert("x")</script> <b>&co'
# every figure the page shows, as tm.key_figures (or the occupancy notebook) names it
ROWS = {"service_level": "service level (60 s)", "speed_of_answer_s":
        "speed of answer, mean (s)", "abandonment": "abandonment",
        "handling_time_s": "handling time, mean (s)",
        "arrivals": "arrivals (asked for a human)"}
FIGURES_JS = """[...document.querySelectorAll('[data-figure]')].map(e =>
  [e.dataset.figure, e.dataset.value, e.querySelector('.value').textContent])"""


def _report(db: Path | None, out: Path, *more: str, **env: str):
    argv = [CLI, "report", *(["--database", str(db)] if db else []), "--out", str(out), *more]
    return run(argv, cwd=out.parent, **env)


def _utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def expected(db: Path, since: datetime, until: datetime,
             sdkappid: int | None = None) -> dict[str, float]:
    """The key figures as a notebook computes them from the same snapshot."""
    files = Reader(db, since - pd.Timedelta(days=1), until, sdkappid=sdkappid)
    try:
        con = files.connection()
        around = tm.sessions(con, since - pd.Timedelta(days=1), until, DS)
        window = tm.sessions(con, since, until, DS)
    finally:
        files.close()
    rows = tm.key_figures(window)
    out = {k: float(rows.loc[name, "value"]) for k, name in ROWS.items()}
    hourly = tm.occupancy_per_interval(around, since, until, "1h", 3)
    desk = tm.occupancy_over_intervals(hourly, "1h", 3, by=None)["occupancy"]
    out["occupancy"] = float(desk.iloc[0]) if len(desk) else float("nan")
    return out


def shown(key: str, value: float) -> str:
    """How the page must print a figure (written out here, not taken from the page's code)."""
    if key in ("service_level", "abandonment", "occupancy"):
        return f"{value * 100:.1f} %"
    if key.endswith("_s"):
        return f"{value:.1f} s"
    return f"{value:,.0f}"


# --- the period ---------------------------------------------------------------------------


def test_periods_and_what_they_are_compared_with() -> None:
    today = date(2026, 12, 5)
    assert periods.parse(today=today) == Period(_utc("2026-12-04"), _utc("2026-12-05"), "day")
    week = periods.parse(week="2026-W48", today=today)
    assert (week.since, week.until) == (_utc("2026-11-23"), _utc("2026-11-30"))
    assert week.previous.since == _utc("2026-11-16") and week.interval == "1h"
    month = periods.parse(month="2026-03", today=today)
    assert (month.since, month.until) == (_utc("2026-03-01"), _utc("2026-04-01"))
    assert (month.previous.since, month.previous.until) == (_utc("2026-02-01"),
                                                            _utc("2026-03-01"))
    assert month.interval == "1D"
    span = periods.parse(since="2026-11-01", until="2026-11-10", today=today)
    assert span.days == 10 and span.previous.since == _utc("2026-10-22")
    # today is not the future: a report of today so far is allowed
    assert periods.parse(day="2026-12-05", today=today).days == 1


@pytest.mark.parametrize(("given", "says"), [
    ({"day": "2026-13-01"}, "--day '2026-13-01' is not a date"),
    ({"week": "2026-48"}, "--week '2026-48' is not a week: give an ISO week"),
    ({"month": "Nov"}, "--month 'Nov' is not a month"),
    ({"since": "2026-11-01"}, "give both --from and --to"),
    ({"since": "2026-11-05", "until": "2026-11-01"}, "--to 2026-11-01 is before --from"),
    ({"day": "2026-12-06"}, "is in the future (today is 2026-12-05 UTC)"),
    ({"day": "2026-11-01", "week": "2026-W44"}, "give one period, not --day and --week"),
])
def test_a_bad_period_says_what_to_give(given: dict[str, str], says: str) -> None:
    with pytest.raises(PeriodError, match=re.escape(says)):
        periods.parse(**given, today=date(2026, 12, 5))


# --- a real browser -----------------------------------------------------------------------


@pytest.mark.skipif(browser.CHROMIUM is None, reason=browser.WHY_NOT)
def test_the_page_in_a_real_browser_on_a_desktop_and_a_phone(shapes, tmp_path) -> None:
    """No console error, no request but the page itself, nothing wider than the viewport,
    and the key figures as text equal to timeline_metrics' for the day."""
    db = shapes["several_days"]
    out = tmp_path / "report.html"
    done = _report(db, out, "--day", DAY)
    assert done.returncode == 0, done.stderr
    figures = expected(db, _utc(DAY), _utc("2026-01-06"))
    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)  # nothing to fetch
    rendered = browser.render(out, [(1280, 900, False), (390, 844, True)], FIGURES_JS,
                              artefacts=tmp_path / "screenshots")
    for page in rendered:
        assert page.console_errors == [], page.width
        assert page.requests == [out.resolve().as_uri()], page.width
        assert page.overflow["wide"] == [], (page.width, page.overflow)
        assert page.overflow["scrollWidth"] <= page.width
        assert page.screenshot.startswith(b"\x89PNG")
        on_page = {key: (float(value), text) for key, value, text in page.result}
        assert set(on_page) == set(figures)
        for key, value in figures.items():
            assert on_page[key][0] == pytest.approx(value, rel=1e-12), key
            assert on_page[key][1] == shown(key, value), key
    assert sorted(p.name for p in (tmp_path / "screenshots").iterdir()) == [
        "report-1280px.png", "report-390px.png"]


# --- a real mail server -------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it so
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


def _smtp(tmp_path: Path, accept: bool) -> tuple[Controller, Inbox]:
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (accept and isinstance(auth_data, LoginPassword)
              and auth_data.password == b"s3cret-mail-pw")
        return AuthResult(success=ok, handled=False)

    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=closed_port(),
                        authenticator=authenticate, auth_require_tls=False)
    server.start()
    return server, inbox


def _mail_env(port: int) -> dict[str, str]:
    return {"SOURCES__TENCENT_DESK__REPORT__SMTP__HOST": "127.0.0.1",
            "SOURCES__TENCENT_DESK__REPORT__SMTP__PORT": str(port),
            "SOURCES__TENCENT_DESK__REPORT__SMTP__SECURITY": "none",
            "SOURCES__TENCENT_DESK__REPORT__SMTP__USER": "reports",
            "SOURCES__TENCENT_DESK__REPORT__SMTP__SENDER": "desk@example.com",
            "SOURCES__TENCENT_DESK__REPORT__SMTP__PASSWORD": "s3cret-mail-pw"}


def test_the_report_is_mailed_and_read_back(shapes, tmp_path) -> None:
    server, inbox = _smtp(tmp_path, accept=True)
    try:
        out = tmp_path / "daily.html"
        done = _report(shapes["one_day"], out, "--day", DAY, "--mail-to", "lead@example.com",
                       "client@example.org", **_mail_env(server.port))
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "mailed to lead@example.com, client@example.org" in done.stdout
    (msg,) = inbox.messages
    assert inbox.recipients == [["lead@example.com", "client@example.org"]]
    assert msg["Subject"] == "Desk report: Monday 05 January 2026"
    assert msg["From"] == "desk@example.com"
    page = out.read_text()

    def text(part: email.message.EmailMessage) -> str:  # as sent: lines end in CRLF
        return part.get_content().replace("\r\n", "\n").rstrip("\n")

    assert text(msg.get_body(preferencelist=("html",))) == page
    (attached,) = list(msg.iter_attachments())
    assert attached.get_filename() == "daily.html" and attached.get_content_type() == "text/html"
    assert text(attached) == page
    assert "s3cret" not in done.stdout + done.stderr


@pytest.mark.parametrize("failure", ["refused login", "closed port"])
def test_a_mail_server_that_refuses_or_is_not_there_is_one_line(shapes, tmp_path,
                                                              failure) -> None:
    """One line, exit 8, and the page written all the same."""
    server = None
    if failure == "refused login":
        server, inbox = _smtp(tmp_path, accept=False)
        port = server.port
    else:
        port = closed_port()
    out = tmp_path / "report.html"
    try:
        done = _report(shapes["one_day"], out, "--day", DAY, "--mail-to", "lead@example.com",
                       **_mail_env(port))
    finally:
        if server:
            server.stop()
    assert done.returncode == 8
    (line,) = error_lines(done.stderr)
    assert done.stderr.strip() == line  # nothing else, no traceback
    says = {"refused login": f"127.0.0.1:{port} refused the login of 'reports' (535)",
            "closed port": f"cannot reach 127.0.0.1:{port}"}[failure]
    assert says in line
    assert "s3cret" not in done.stdout + done.stderr
    assert out.exists() and "Key figures" in out.read_text()
    if server:
        assert inbox.messages == []


# --- every shape --------------------------------------------------------------------------


def _two_apps(shapes: dict[str, Path], path: Path) -> Path:
    """The demo day for two apps in one database: the second with every other session."""
    shutil.copyfile(shapes["one_day"], path)
    with duckdb.connect(str(path)) as con:
        con.execute(f"UPDATE {DS}.runs SET app = 'first'; "
                    f"UPDATE {DS}.record_runs SET app = 'first'")
        suffix = "|| '-b'"
        for table, ids in (("runs", ("run_id", "_dlt_id")),
                           ("record_runs", ("run_id", "_dlt_id")),
                           ("session_states", ("run_id", "session_id", "request_id")),
                           ("session_events", ("run_id", "session_id", "request_id")),
                           ("session_records", ("run_id", "session_id"))):
            keep = "" if table.endswith("runs") else " WHERE hash(session_id) % 2 = 0"
            app = ", 'second' AS app" if table.endswith("runs") else ""
            con.execute(f"INSERT INTO {DS}.{table} BY NAME SELECT * REPLACE ("
                        f"{SECOND_APP} AS sdkappid{app}, "
                        + ", ".join(f"{c} {suffix} AS {c}" for c in ids)
                        + f") FROM {DS}.{table}{keep}")
        con.execute(f"DROP TABLE {DS}.session_timeline; DROP TABLE {DS}._timeline_state; "
                    "DROP SCHEMA desk_simulator CASCADE")
    publish(path)
    return path


# what each shape's page must say (a day with data shows its figures)
SAYS = {"one_day": "Key figures", "several_days": "Key figures",
        "failed_day": "Key figures", "failed_only": "No data for this period",
        "nothing_queued": "Key figures", "single_run": "Key figures"}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_gets_its_page(shapes, tmp_path, shape) -> None:
    out = tmp_path / f"{shape}.html"
    done = _report(shapes[shape], out, "--day", DAY)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert SAYS[shape] in html
    if SAYS[shape] == "Key figures":
        figures = expected(shapes[shape], _utc(DAY), _utc("2026-01-06"))
        values = dict(re.findall(r'data-figure="(\w+)" data-value="([^"]+)"', html))
        for key, value in figures.items():
            assert float(values[key]) == pytest.approx(value, rel=1e-12, nan_ok=True), key
    if shape == "failed_only":
        assert "did not complete" in html and done.stderr.startswith(
            "desk-sessions: note: no data for Monday 05 January 2026")
    if shape == "nothing_queued":  # nobody asked for a human: no wait to count
        assert 'data-figure="arrivals" data-value="0.0"' in html
    if shape == "failed_day":
        assert "3 runs did not complete" in html


def test_one_app_of_several(shapes, tmp_path) -> None:
    db = _two_apps(shapes, tmp_path / "apps.duckdb")
    pages = {}
    for app in ("second", str(SECOND_APP), None):
        out = tmp_path / f"{app}.html"
        done = _report(db, out, "--day", DAY, *(["--app", app] if app else []))
        assert done.returncode == 0, done.stderr
        pages[app] = out.read_text()
    assert pages["second"] == pages[str(SECOND_APP)].replace(  # the same page either way
        re.search(r"made [^<]*UTC", pages[str(SECOND_APP)]).group(0),
        re.search(r"made [^<]*UTC", pages["second"]).group(0))
    for app, sdkappid in (("second", SECOND_APP), (None, None)):
        figures = expected(db, _utc(DAY), _utc("2026-01-06"), sdkappid)
        values = dict(re.findall(r'data-figure="(\w+)" data-value="([^"]+)"', pages[app]))
        assert float(values["arrivals"]) == figures["arrivals"]
    assert float(re.search(r'data-figure="arrivals" data-value="([^"]+)"', pages[None])[1]) \
        > float(re.search(r'data-figure="arrivals" data-value="([^"]+)"', pages["second"])[1])
    done = _report(db, tmp_path / "x.html", "--day", DAY, "--app", "mars")
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "desk-sessions: error: --app='mars': no app of that name in tencent_desk.runs; give "
        "its sdkappid or one of: first, second"]


def test_on_postgresql(pg_shapes, shapes, tmp_path) -> None:
    """Read from the server (the warehouse Reader), the figures are the snapshot's."""
    out = tmp_path / "pg.html"
    done = _report(None, out, "--destination", "postgres", "--day", DAY,
                   DESTINATION__POSTGRES__CREDENTIALS=pg_shapes["several_days"])
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    figures = expected(shapes["several_days"], _utc(DAY), _utc("2026-01-06"))
    values = dict(re.findall(r'data-figure="(\w+)" data-value="([^"]+)"', html))
    for key, value in figures.items():
        assert float(values[key]) == pytest.approx(value, rel=1e-9), key
    assert "Second line" in html


def test_plan_against_actual_and_text_escaped(shapes, demo_day, tmp_path) -> None:
    """A staffing_plan table (the columns planning/store.py writes) is shown against what
    happened; the plan made last wins, whatever its id. A group's name is shown as text,
    never as markup."""
    db = build_shape(demo_day, "one_day", tmp_path / "planned.duckdb")
    with duckdb.connect(str(db)) as con:
        con.execute(f"""CREATE TABLE {DS}.staffing_plan AS
            SELECT plan_id, TIMESTAMPTZ '{DAY} 00:00:00+00' - INTERVAL (3 - n) HOUR
                       AS created_at, 'Online customer service' AS "group",
                   TIMESTAMPTZ '{DAY} 00:00:00+00' + INTERVAL (h) HOUR AS interval_start,
                   n + h % 4 AS agents, 50 + h AS forecast
            FROM range(24) t(h), (VALUES ('2', 2), ('1', 1)) p(plan_id, n)""")
        # text from the data is escaped, never markup
        con.execute(f"UPDATE {DS}.session_records SET agent_group_name = ?", [HOSTILE])
    publish(db)
    out = tmp_path / "plan.html"
    assert _report(db, out, "--day", DAY).returncode == 0
    html = out.read_text()
    assert "Plan 2, intervals of 0 days 01:00:00." in html
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &lt;b&gt;&amp;co" in html
    table = html[html.index('data-table="plan"'):]
    rows = re.findall(r"<tr>(.*?)</tr>", table[:table.index("</table>")])[1:]
    cells = [re.findall(r'data-label="([^"]+)">([^<]*)<', row) for row in rows]
    assert len(cells) == 24
    assert dict(cells[1])["agents required"] == "3"  # plan 2, hour 1
    assert dict(cells[10])["forecast"] == "60" and dict(cells[10])["interval (UTC)"] == (
        f"{DAY} 10:00")
    assert _report(shapes["one_day"], out, "--day", DAY).returncode == 0
    assert "No staffing plan in the database" in out.read_text()


# --- bad input: one line each -------------------------------------------------------------


def test_bad_input_is_one_line_each(shapes, demo_day, tmp_path) -> None:
    out = tmp_path / "r.html"
    unpublished = shutil.copyfile(demo_day, tmp_path / "never.duckdb")
    cases = [
        (["--database", str(unpublished), "--day", DAY],
         f"{unpublished} has never been published for readers: run `desk-sessions run` on "
         f"it, or `desk-sessions publish --database {unpublished}` once"),
        (["--database", str(tmp_path / "nope.duckdb")], "nope.duckdb not found"),
        (["--database", str(shapes["one_day"]), "--day", "2999-01-01"], "is in the future"),
        (["--database", str(shapes["one_day"]), "--day", "05/01/2026"],
         "--day '05/01/2026' is not a date: give an ISO date like 2026-11-30"),
        (["--day", DAY], "--database is required"),
        (["--database", str(shapes["one_day"]), "--mail-to", "a@example.com"],
         "--mail-to needs an SMTP server"),
    ]
    for argv, says in cases:
        done = run([CLI, "report", "--out", str(out), *argv], cwd=tmp_path)
        assert done.returncode == 2 or "SMTP" in says, (argv, done.stderr)
        (line,) = error_lines(done.stderr)
        assert done.stderr.strip() == line and says in line, (argv, done.stderr)
    assert not out.exists()  # nothing written for input to fix
    # a period without data: the page says so, exit 0, one note
    done = run([CLI, "report", "--out", str(out), "--database", str(shapes["one_day"]),
                "--day", "2026-01-04"], cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr.strip() == ("desk-sessions: note: no data for Sunday 04 January 2026: "
                                   "the page says so")
    assert 'data-nodata="1"' in out.read_text()
