"""``desk-sessions report``: its options, and what it does with them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tencent_desk.core import settings
from tencent_desk.core.arguments import DATABASE, DATASET, OUT
from tencent_desk.core.errors import JobError
from tencent_desk.job.destination import DESTINATIONS, DUCKDB

DESCRIPTION = """\
Write one self-contained HTML page (no request leaves it; charts inline; readable on a
phone and printed) with the key figures of a day, ISO week, month or range against the
period before and against the targets in config, arrivals and service level over the
period, the agent groups side by side, the agents with the highest and lowest occupancy and
rating, what the figures rest on, the gaps, and plan against actual. It reads the snapshot
the job publishes (or the server), with the notebooks' own functions.

  desk-sessions report --database desk.duckdb                  yesterday (UTC)
  desk-sessions report --database desk.duckdb --week 2026-W48 --mail-to lead@example.com
"""
EPILOG = """\
Targets: [sources.tencent_desk.report] in .dlt/config.toml: service_level (0.80),
service_level_s (60), speed_of_answer_s (30), abandonment (0.05), handling_time_s (600),
occupancy (0.85), arrivals (none), chats_per_agent (none: each group's, read from the
data; a number overrides it for every group); "none" drops a target.
Mail: [sources.tencent_desk.report.smtp] host, port, security (starttls | tls | none),
user, sender, timeout; password in .dlt/secrets.toml (or
SOURCES__TENCENT_DESK__REPORT__SMTP__PASSWORD).
Exit codes: 0 written (a period without data too: the page says so); 2 something to fix
(destination, period, database, dataset, app); 3 --out cannot be written (a folder, no
permission); 8 the page is written but the mail was not sent.
See docs/report.md.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="one HTML page of a day, week or month; mailed if asked",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database", type=DATABASE, help="the job's DuckDB file (its published "
                   "snapshot is read, never the file itself)")
    p.add_argument("--destination", choices=DESTINATIONS, default=DUCKDB,
                   help="where the job loads (default %(default)s); postgres: the server, "
                   "credentials as for desk-sessions run")
    p.add_argument("--dataset", type=DATASET, default=settings.DEFAULT_DATASET,
                   help="schema of the tables (default %(default)s)")
    when = p.add_argument_group("period (UTC; default: yesterday)")
    when.add_argument("--day", metavar="DATE", help="one day, e.g. 2026-11-30")
    when.add_argument("--week", metavar="WEEK", help="an ISO week, e.g. 2026-W48")
    when.add_argument("--month", metavar="MONTH", help="a month, e.g. 2026-11")
    when.add_argument("--from", dest="since", metavar="DATE", help="first day of a range")
    when.add_argument("--to", dest="until", metavar="DATE", help="last day of a range "
                      "(included)")
    p.add_argument("--app", help="one app of several: its name or sdkappid")
    p.add_argument("--out", type=OUT, default=Path("report.html"),
                   help="the HTML file to write (default %(default)s)")
    p.add_argument("--mail-to", nargs="+", metavar="ADDR", help="also mail it to these "
                   "addresses (SMTP settings from config)")
    p.add_argument("--log-level", default="WARNING",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def report(args: argparse.Namespace) -> int:
    from . import period
    from .source import Source

    # what the user must fix is said first, before pandas and the charts are loaded
    try:
        chosen = period.parse(args.day, args.week, args.month, args.since, args.until)
    except period.PeriodError as exc:
        raise JobError(str(exc)) from None
    if args.destination == DUCKDB:
        if args.database is None:
            raise JobError("--database is required: the job's DuckDB file")
        where: Path | str = args.database
    else:
        where = args.destination
    source = Source(where, args.dataset, args.app)
    source.check()
    smtp, unmailable = None, None
    if args.mail_to:
        from . import mail

        try:  # read before any work, said after it: the page is written all the same
            smtp = mail.from_config()
        except JobError as exc:  # exit 8 (docs/report.md): the day's page is never lost
            unmailable = exc
    try:
        import matplotlib  # noqa: F401  (the charts)
    except ImportError:
        raise JobError("the report draws with matplotlib: pip install "
                       "'tencent-desk-sessions[report]'") from None
    from . import page
    from .figures import gather
    from .targets import from_config

    figures = gather(source, chosen, from_config())
    html = page.render(figures)
    out: Path = args.out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        # exit 3 as the plan's --out and the job's folder: a place that cannot be written
        raise JobError(f"cannot write {out}: {exc.strerror}", exit_code=3) from None
    print(f"report of {chosen} written to {out}")
    if figures.empty:
        print(f"desk-sessions: note: no data for {chosen} (the page says so); "
              f"{_holds(where, args.dataset)}", file=sys.stderr)
    if unmailable is not None:
        raise unmailable
    if smtp is not None:
        from . import mail

        subject = f"Desk report: {chosen}"
        mail.send(smtp, mail.message(html, out, subject, smtp.sender, args.mail_to),
                  args.mail_to)
        print(f"mailed to {', '.join(args.mail_to)}")
    return 0


def _holds(where: Path | str, dataset: str) -> str:
    """The days the database has data on, and how to ask for them: what a period without
    data (yesterday's, by default) did not say."""
    from tencent_desk.readers.window import data_days, held

    days = data_days(where, dataset)
    return f"the database holds {held(days)}" + (
        ": pass --day, --week, --month or --from/--to within it" if days else "")
