"""``desk-sessions report``, run as a user runs it (the real CLI in a child process): the page
in a real headless Chromium at a desktop and a phone width, the mail through a real SMTP
server on loopback (aiosmtpd), every shape of database the tests know (PostgreSQL too),
and each bad input as one line."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import ssl
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from tencent_desk.analysis import interval_metrics as im
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.core.errors import JobError
from tencent_desk.models import intervals, snapshot
from tencent_desk.readers.snapshot import Reader
from tencent_desk.report import period as periods
from tencent_desk.report import targets
from tencent_desk.report.figures import gather
from tencent_desk.report.period import Period, PeriodError
from tencent_desk.report.source import Source
from tencent_desk.report.targets import Targets
from tencent_desk.run.publish import publish

from tests.nb_fixture import DS, SECOND_APP, SHAPES, build_shape, two_apps

from .support import browser
from .support.cli import CLI, error_lines, run
from .support.harness import closed_port

DAY = "2026-01-05"  # the demo's Monday (several_days adds the Thursday and Friday before)
HOSTILE = '<script>alert("x")</script> <b>&co'
# every figure the page shows, as tm.event_figures names it (occupancy: computed below)
COLUMNS = {"service_level": "service_level", "speed_of_answer_s": "wait_mean_s",
           "abandonment": "abandonment", "handling_time_s": "handle_mean_s",
           "arrivals": "queued"}
FIGURES_JS = """[...document.querySelectorAll('[data-figure]')].map(e =>
  [e.dataset.figure, e.dataset.value, e.querySelector('.value').textContent])"""


def _report(db: Path | None, out: Path, *more: str, **env: str):
    argv = [CLI, "report", *(["--database", str(db)] if db else []), "--out", str(out), *more]
    return run(argv, cwd=out.parent, **env)


def _utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def expected(db: Path, since: datetime, until: datetime,
             sdkappid: int | None = None) -> dict[str, float]:
    """The key figures as timeline_metrics computes them from the sessions of the same
    snapshot, under the report's rule (each event counts in the period it happened in):
    ``event_figures``; occupancy over the hours each agent held a chat, of the chats that
    ended (an open chat counts once it ends)."""
    lookback = tm.LOOKBACK_SPAN
    files = Reader(db, since - lookback, until + lookback, sdkappid=sdkappid)
    try:
        con = files.connection()
        touching = tm.sessions_touching(con, since, until, DS)
        around = tm.sessions(con, since - lookback, until, DS)
    finally:
        files.close()
    rows = tm.event_figures(touching, since, until, 60.0)
    nan = float("nan")
    out = {k: float(rows[c].iloc[0]) if len(rows) and c in rows else nan
           for k, c in COLUMNS.items()}
    ended = around[around["ended_at"].notna()]
    hourly = tm.occupancy_per_interval(ended, since, until, "1h", 3)
    desk = tm.occupancy_over_intervals(hourly, "1h", 3, by=None)["occupancy"]
    out["occupancy"] = float(desk.iloc[0]) if len(desk) else nan
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


# --- one rule: each event counts in the period it happened in --------------------------


def _gathered(db: Path, since: datetime, until: datetime) -> dict[str, float]:
    figures = gather(Source(db, DS), Period(since, until, "range"), Targets(),
                     now=_utc("2026-02-01"))
    return {f.key: f.value for f in figures.key}


def test_the_rule_the_sums_and_the_notebooks_long_window(shapes, monkeypatch) -> None:
    """A window cut through the busy hours: the figures are timeline_metrics'
    event_figures (the rule tells: counting sessions by when they began gives other
    figures there). Five days are the sum of their days. A window the notebooks read from
    the interval tables (longer than DETAIL_MAX) shows the report's figures."""
    db = shapes["several_days"]
    since, until = _utc(DAY) + pd.Timedelta(hours=9), _utc(DAY) + pd.Timedelta(hours=11)
    got, want = _gathered(db, since, until), expected(db, since, until)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    files = Reader(db, since - pd.Timedelta(days=2), until)
    try:
        began = tm.key_figures(tm.sessions(files.connection(), since, until, DS))
    finally:
        files.close()
    assert any(abs(float(began.loc[row, "value"]) - got[key]) > 1e-9
               for key, row in {"arrivals": "arrivals (asked for a human)",
                                "speed_of_answer_s": "speed of answer, mean (s)",
                                "handling_time_s": "handling time, mean (s)"}.items())
    # a range is the sum of its days (days without data add nothing)
    first = _utc("2026-01-01")
    days = [_gathered(db, first + pd.Timedelta(days=n), first + pd.Timedelta(days=n + 1))
            for n in range(5)]
    whole = _gathered(db, first, first + pd.Timedelta(days=5))
    assert whole["arrivals"] == sum(d["arrivals"] for d in days if not pd.isna(d["arrivals"]))
    assert whole["arrivals"] > max(d["arrivals"] for d in days if not pd.isna(d["arrivals"]))
    # the notebooks' long window: the same figures, from the same function
    import tencent_desk.notebook as nb

    monkeypatch.setenv("DESK_DUCKDB", str(db))
    monkeypatch.setenv("DESK_FROM", "2025-12-31")
    monkeypatch.setenv("DESK_TO", "2026-01-05")
    desk = nb.open_desk()
    try:
        assert desk.period is not None and desk.period.span > nb.DETAIL_MAX
        assert desk.period_source is not None
        shown = im.figures(desk.period_source.connection(), desk.period.since,
                           desk.period.until, 60.0, dataset=DS).iloc[0]
    finally:
        desk.source.close()
    report = _gathered(db, desk.period.since, desk.period.until)
    for key, column in COLUMNS.items():
        assert report[key] == pytest.approx(float(shown[column]), rel=1e-12), key


def test_a_service_level_threshold_the_tables_do_not_keep_is_one_line(monkeypatch) -> None:
    monkeypatch.setenv("SOURCES__TENCENT_DESK__REPORT__SERVICE_LEVEL_S", "45")
    with pytest.raises(JobError, match=re.escape(
            "[sources.tencent_desk.report] service_level_s = 45: the interval tables count "
            "answers within 8, 30, 60, 90, 120, 180, 300, 600, 1200 s; give one of those")):
        targets.from_config()
    monkeypatch.setenv("SOURCES__TENCENT_DESK__REPORT__SERVICE_LEVEL_S", "30")
    assert targets.from_config().service_level_s == 30


# --- a real mail server -------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.over_tls: list[bool] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):  # as a server refuses an unknown mailbox
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it so
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        self.over_tls.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 OK"


def _smtp(tmp_path: Path, accept: bool, **tls: object) -> tuple[Controller, Inbox]:
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (accept and isinstance(auth_data, LoginPassword)
              and auth_data.password == b"s3cret-mail-pw")
        return AuthResult(success=ok, handled=False)

    inbox = Inbox()
    settings = {"auth_require_tls": False, **tls}
    server = Controller(inbox, hostname="127.0.0.1", port=closed_port(),
                        authenticator=authenticate, **settings)
    server.start()
    return server, inbox


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (key, certificate), made by openssl in a
    child process."""
    key, cert = folder / "server-key.pem", folder / "server-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


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


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the certificate")
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_over_tls_trusts_the_certificate_config_names(shapes, tmp_path,
                                                           security) -> None:
    """STARTTLS (the server takes no mail before it) and implicit TLS, each with a
    self-signed certificate: with ``ca_file`` naming it the message arrives, over TLS,
    after the login; without it the same server is refused as untrusted (verification is
    never switched off): one line, exit 8, the page written."""
    key, cert = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    # aiosmtpd offers AUTH before STARTTLS only when told to; over implicit TLS it cannot
    # tell the connection is encrypted, so there it must be told
    tls = ({"tls_context": context, "require_starttls": True, "auth_require_tls": True}
           if security == "starttls" else {"ssl_context": context})
    server, inbox = _smtp(tmp_path, accept=True, **tls)
    env = {**_mail_env(server.port), "SOURCES__TENCENT_DESK__REPORT__SMTP__SECURITY": security}
    trusted, untrusted = tmp_path / "trusted.html", tmp_path / "untrusted.html"
    try:
        sent = _report(shapes["one_day"], trusted, "--day", DAY, "--mail-to",
                       "lead@example.com", **env,
                       SOURCES__TENCENT_DESK__REPORT__SMTP__CA_FILE=str(cert))
        refused = _report(shapes["one_day"], untrusted, "--day", DAY, "--mail-to",
                          "lead@example.com", **env)
    finally:
        server.stop()
    assert sent.returncode == 0, sent.stderr
    (msg,) = inbox.messages
    assert inbox.over_tls == [True] and msg["Subject"] == "Desk report: Monday 05 January 2026"
    assert msg.get_body(preferencelist=("html",)) is not None
    assert refused.returncode == 8
    (line,) = error_lines(refused.stderr)
    assert refused.stderr.strip() == line
    assert f"the certificate of 127.0.0.1:{server.port} is not trusted" in line
    assert "set ca_file under [sources.tencent_desk.report.smtp]" in line
    assert untrusted.exists() and "Key figures" in untrusted.read_text()
    assert "s3cret" not in sent.stdout + sent.stderr + refused.stdout + refused.stderr


def test_a_refused_recipient_is_one_line_and_the_page_is_written(shapes, tmp_path) -> None:
    """The server rejects RCPT TO: every recipient refused, nothing sent; one of two
    refused, the other gets the mail; either way one line with the address and the
    server's code, exit 8, and the page written."""
    server, inbox = _smtp(tmp_path, accept=True)
    port = server.port
    alone, mixed = tmp_path / "alone.html", tmp_path / "mixed.html"
    try:
        nobody = _report(shapes["one_day"], alone, "--day", DAY, "--mail-to",
                         "nobody@example.com", **_mail_env(port))
        some = _report(shapes["one_day"], mixed, "--day", DAY, "--mail-to",
                       "nobody@example.com", "lead@example.com", **_mail_env(port))
    finally:
        server.stop()
    for done, says in (
            (nobody, f"mail not sent: 127.0.0.1:{port} refused every recipient "
                     "(nobody@example.com (550))"),
            (some, f"mail sent, but 127.0.0.1:{port} refused nobody@example.com (550)")):
        assert done.returncode == 8, done.stderr
        (line,) = error_lines(done.stderr)
        assert done.stderr.strip() == line and says in line
    assert inbox.recipients == [["lead@example.com"]]
    for page in (alone, mixed):
        assert page.exists() and "Key figures" in page.read_text()


# --- every shape --------------------------------------------------------------------------


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
    db = two_apps(shapes["one_day"], tmp_path / "apps.duckdb")
    publish(db)
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
        f"desk-sessions: error: --app 'mars' is unknown: the apps of {DS} are first "
        f"({_sdkappid(shapes['one_day'])}), second ({SECOND_APP}); give a name or an sdkappid "
        "of those"]


def test_a_never_polled_database_checks_the_dataset_and_the_app(shapes, tmp_path) -> None:
    """A database loaded by callbacks and records alone (no runs): its apps are the
    sdkappids its sessions carry, and a dataset it does not hold is refused as the plan
    refuses it, rather than a page of "no data" on a day it holds."""
    db = shutil.copyfile(shapes["one_day"], tmp_path / "callbacks.duckdb")
    with duckdb.connect(str(db)) as con:
        con.execute(f"DELETE FROM {DS}.runs")  # the polls' rows gone, their sessions kept
    publish(db, rebuild=True)
    sdkappid = _sdkappid(shapes["one_day"])
    out = tmp_path / "r.html"
    for more, says in (
            (["--dataset", "nope"], f"no dataset 'nope' in {db}: it holds "),
            (["--app", str(sdkappid + 1)], f"--app '{sdkappid + 1}' is unknown: the apps of "
                                           f"{DS} are {sdkappid} (no name)"),
            (["--app", "eu"], f"--app 'eu' is unknown: the apps of {DS} are {sdkappid} "
                              "(no name); give a name or an sdkappid of those")):
        done = _report(db, out, "--day", DAY, *more)
        assert done.returncode == 2, (more, done.stderr)
        (line,) = error_lines(done.stderr)
        assert done.stderr.strip() == line and says in line, (more, done.stderr)
    assert not out.exists()
    assert _report(db, out, "--day", DAY, "--app", str(sdkappid)).returncode == 0
    assert 'data-figure="arrivals"' in out.read_text()


def test_an_out_that_cannot_be_written(shapes, tmp_path) -> None:
    """--out naming a folder: one line, exit 3, as the plan's --out (it was exit 2)."""
    (tmp_path / "pages").mkdir()
    done = _report(shapes["one_day"], tmp_path / "pages", "--day", DAY)
    assert done.returncode == 3, done.stderr
    assert error_lines(done.stderr) == [
        f"desk-sessions: error: cannot write {tmp_path / 'pages'}: Is a directory"]


def _sdkappid(db: Path) -> int:
    """The one app of a database the single-app form loaded."""
    with duckdb.connect(str(db), read_only=True) as con:
        ((sdkappid,),) = con.execute(f"SELECT DISTINCT sdkappid FROM {DS}.runs").fetchall()
    return int(sdkappid)


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


PLAN_ROWS = f"""
    SELECT plan_id, TIMESTAMPTZ '{DAY} 00:00:00+00' - INTERVAL (3 - n) HOUR AS created_at,
           g AS "group", TIMESTAMPTZ '{DAY} 00:00:00+00' + INTERVAL (h) HOUR AS interval_start,
           60 AS interval_min, n + h % 4 AS agents, 50 + h AS forecast
    FROM range(?, 24) t(h), unnest(?) p(plan_id), (SELECT CAST(plan_id AS INT) AS n) m,
        unnest(?) u(g)"""


def _plan(con: duckdb.DuckDBPyConnection, ids: list[str], groups: list[str],
          first_hour: int = 0) -> None:
    """Hourly plans ``ids`` of the day from ``first_hour`` for ``groups``, in the columns
    planning/store.py writes: plan n made at (n - 3) hours from midnight, a group's forecast
    50 + hour and its agents n + hour % 4."""
    if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                   "AND table_name = 'staffing_plan'", [DS]).fetchone()[0]:
        con.execute(f"INSERT INTO {DS}.staffing_plan {PLAN_ROWS}", [first_hour, ids, groups])
    else:
        con.execute(f"CREATE TABLE {DS}.staffing_plan AS {PLAN_ROWS}",
                    [first_hour, ids, groups])


def _count(cell: str) -> int | None:
    """A count as the page shows it; None for a gap (an en dash)."""
    return None if cell == "–" else int(cell.replace(",", ""))


def _plan_rows(html: str) -> list[dict[str, str]]:
    table = html[html.index('data-table="plan"'):]
    rows = re.findall(r"<tr>(.*?)</tr>", table[:table.index("</table>")])[1:]
    return [dict(re.findall(r'data-label="([^"]+)">([^<]*)<', row)) for row in rows]


def test_plan_against_actual_and_text_escaped(shapes, demo_day, tmp_path) -> None:
    """Each group's interval from the plan made last that covers it, against what happened
    over the groups planned: one group against that group's arrivals only, a newer plan of
    all groups in its place, a later plan of the afternoon (an intraday one) over the
    morning's. A group's name is text, never markup."""
    db = build_shape(demo_day, "one_day", tmp_path / "planned.duckdb")
    empty = "Billing"  # a group without sessions; the demo's sessions are all in HOSTILE
    with duckdb.connect(str(db)) as con:
        _plan(con, ["1"], [empty])
        # text from the data is escaped, never markup
        con.execute(f"UPDATE {DS}.session_records SET agent_group_name = ?", [HOSTILE])
    publish(db)
    with duckdb.connect(str(db), read_only=True) as con:  # the interval tables, published
        per_hour = dict(con.execute(
            f"SELECT hour(interval_start), sum(queued)::INT FROM {DS}.queue_intervals "
            "WHERE agent_group_name = ? AND interval_start >= ? GROUP BY 1",
            [HOSTILE, _utc(DAY)]).fetchall())
    assert sum(per_hour.values()) > 0
    out = tmp_path / "plan.html"

    def report(*plans: tuple[list[str], list[str], int]) -> tuple[str, list[dict[str, str]]]:
        with duckdb.connect(str(db)) as con:
            for plan in plans:
                _plan(con, *plan)
        publish(db, rebuild=True)  # rows written by hand make no dlt load for publish to find
        assert _report(db, out, "--day", DAY).returncode == 0
        return out.read_text(), _plan_rows(out.read_text())

    # a plan of the group that had no sessions: none of the desk's arrivals or agents
    html, cells = report()
    assert "Plan 1, intervals of 60 minutes, for Billing." in html
    # hours without data (no run, no callback: the night, the afternoon) are gaps, not 0
    assert {(c["arrivals"], c["agents with a chat"]) for c in cells} == {("0", "0"),
                                                                         ("–", "–")}
    gap = [h for h, c in enumerate(cells) if c["arrivals"] == "–"]
    assert not {9, 10, 11} & set(gap) and not {per_hour.get(h, 0) for h in gap} - {0}
    html, cells = report((["2"], [HOSTILE, empty], 0))
    assert "Plan 2, intervals of 60 minutes, for " in html
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &lt;b&gt;&amp;co" in html
    assert len(cells) == 24
    assert cells[1]["agents required"] == "6"  # plan 2, hour 1: (2 + 1) for each group
    assert cells[10]["forecast"] == "120" and cells[10]["interval (UTC)"] == f"{DAY} 10:00"
    assert [_count(c["arrivals"]) for c in cells] == [
        None if h in gap else per_hour.get(h, 0) for h in range(24)]
    busy = [_count(c["agents with a chat"]) or 0 for c in cells]
    assert max(busy) > 0
    # the afternoon planned again for one group: plan 3 there, plan 2 everywhere else
    html, cells = report((["3"], [HOSTILE], 12))
    assert "Plans 3, 2 (the one made last for each interval), intervals of 60 minutes" in html
    assert [int(c["agents required"]) for c in cells] == [
        (3 if h >= 12 else 2) + 2 + 2 * (h % 4) for h in range(24)]
    assert [_count(c["arrivals"]) for c in cells] == [
        None if h in gap else per_hour.get(h, 0) for h in range(24)]
    assert [_count(c["agents with a chat"]) or 0 for c in cells] == busy
    assert _report(shapes["one_day"], out, "--day", DAY).returncode == 0
    assert "No staffing plan in the database" in out.read_text()


# --- bad input: one line each -------------------------------------------------------------


def test_mail_without_an_smtp_server_still_writes_the_page(shapes, tmp_path) -> None:
    """--mail-to with no SMTP configured: the day's page is written all the same (cron's
    daily page is never lost), then exit 8, "written but not mailed" (docs/report.md), in
    one line naming what to set; once exit 8 with no page at all."""
    out = tmp_path / "reports" / "day.html"
    done = run([CLI, "report", "--database", str(shapes["one_day"]), "--day", DAY, "--out",
                str(out), "--mail-to", "lead@example.com"], cwd=tmp_path)
    assert done.returncode == 8, done.stderr
    (line,) = error_lines(done.stderr)
    assert done.stderr.strip() == line and "--mail-to needs an SMTP server" in line
    assert "SOURCES__TENCENT_DESK__REPORT__SMTP__HOST" in line
    assert out.is_file() and "<html" in out.read_text().lower()
    assert f"written to {out}" in done.stdout and "mailed" not in done.stdout


def test_bad_input_is_one_line_each(shapes, demo_day, tmp_path) -> None:
    out = tmp_path / "r.html"
    unpublished = shutil.copyfile(demo_day, tmp_path / "never.duckdb")
    notes = tmp_path / "notes.md"
    notes.write_text("# not a database\n")
    cases = [
        (["--database", str(unpublished), "--day", DAY],
         f"{unpublished} has never been published for readers: run `desk-sessions run` on "
         f"it, or `desk-sessions publish --database {unpublished}` once"),
        (["--database", str(tmp_path / "nope.duckdb")], "nope.duckdb not found"),
        (["--database", str(notes)], f"{notes} is not a DuckDB database"),
        (["--database", str(shapes["one_day"]), "--day", "2999-01-01"], "is in the future"),
        (["--database", str(shapes["one_day"]), "--day", "05/01/2026"],
         "--day '05/01/2026' is not a date: give an ISO date like 2026-11-30"),
        (["--day", DAY], "--database is required"),
        (["--database", str(shapes["one_day"]), "--day", DAY, "--app", "eu"],
         f"--app 'eu' is unknown: the apps of {DS} are {_sdkappid(shapes['one_day'])} "
         "(no name); give a name or an sdkappid of those"),
    ]
    for argv, says in cases:
        done = run([CLI, "report", "--out", str(out), *argv], cwd=tmp_path)
        assert done.returncode == 2, (argv, done.stderr)
        (line,) = error_lines(done.stderr)
        assert done.stderr.strip() == line and says in line, (argv, done.stderr)
    # a snapshot published before the interval tables existed: its sessions, none of them
    old = shutil.copyfile(shapes["one_day"], tmp_path / "old.duckdb")
    shutil.copytree(snapshot.paths(shapes["one_day"])[0], snapshot.paths(old)[0])
    shutil.copyfile(snapshot.paths(shapes["one_day"])[1], snapshot.paths(old)[1])
    manifest = snapshot.read_manifest(snapshot.paths(old)[0])
    for table in intervals.TABLES:
        del manifest["schemas"][DS]["tables"][table]
    manifest["generation"] += 1
    (snapshot.paths(old)[0] / snapshot.MANIFEST).write_text(json.dumps(manifest))
    cases.append((["--database", str(old), "--day", DAY],
                  f"{old} has sessions but no interval tables (the report's figures): run "
                  f"`desk-sessions publish --database {old}` once, it makes them"))
    # a snapshot published by the version before the abandon bounds: its interval tables
    # lack columns this version reads (the job's next run or a publish makes them anew)
    earlier = shutil.copyfile(shapes["one_day"], tmp_path / "earlier.duckdb")
    shutil.copytree(snapshot.paths(shapes["one_day"])[0], snapshot.paths(earlier)[0])
    shutil.copyfile(snapshot.paths(shapes["one_day"])[1], snapshot.paths(earlier)[1])
    lacking = ", ".join(f"abandoned_within_lo_{e}" for e in intervals.WAIT_EDGES_S)
    with duckdb.connect() as con:
        for part in (snapshot.paths(earlier)[0] / DS / intervals.QUEUE).rglob("*.parquet"):
            con.execute(f"COPY (SELECT * EXCLUDE ({lacking}) FROM read_parquet('{part}')) "
                        f"TO '{part}.new' (FORMAT parquet)")
            Path(f"{part}.new").replace(part)
    manifest = snapshot.read_manifest(snapshot.paths(earlier)[0])
    table = manifest["schemas"][DS]["tables"][intervals.QUEUE]
    table["columns"] = [c for c in table["columns"]
                        if not c[0].startswith("abandoned_within_lo_")]
    manifest["generation"] += 1
    (snapshot.paths(earlier)[0] / snapshot.MANIFEST).write_text(json.dumps(manifest))
    cases.append((["--database", str(earlier), "--day", DAY],
                  f"the interval tables of {earlier} were made by an earlier version: run "
                  f"`desk-sessions publish --database {earlier}` once, it makes them anew"))
    for argv, says in cases[-2:]:
        done = run([CLI, "report", "--out", str(out), *argv], cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        (line,) = error_lines(done.stderr)
        assert done.stderr.strip() == line and says in line, done.stderr
    assert not out.exists()  # nothing written for input to fix
    # a period without data: the page says so, exit 0, one note naming the days there are
    holds = ("the database holds 2026-01-05 to 2026-01-05 (1 day): pass --day, --week, "
             "--month or --from/--to within it")
    done = run([CLI, "report", "--out", str(out), "--database", str(shapes["one_day"]),
                "--day", "2026-01-04"], cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr.strip() == ("desk-sessions: note: no data for Sunday 04 January 2026 "
                                   f"(the page says so); {holds}")
    assert 'data-nodata="1"' in out.read_text()
    # no period given: yesterday, far from the demo's day; the note names both
    yesterday = periods.parse()
    done = run([CLI, "report", "--out", str(out), "--database", str(shapes["one_day"])],
               cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr.strip() == (f"desk-sessions: note: no data for {yesterday} (the page "
                                   f"says so); {holds}")
