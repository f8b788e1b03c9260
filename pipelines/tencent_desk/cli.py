"""``desk-sessions``: poll Tencent Cloud Desk session states into DuckDB (or PostgreSQL:
--destination postgres --state-dir DIR instead of --database).

  desk-sessions run --database FILE.duckdb [--seed SEED] one run of the batch job (cron)
  desk-sessions records --database FILE.duckdb          load session records (incremental)
  desk-sessions publish --database FILE.duckdb          (re)publish what readers read
  desk-sessions demo                                     a simulated day, no account needed
  desk-sessions simulate --port PORT                     a local stand-in for the Desk API
  desk-sessions simulate history --weeks 10 --database F weeks of history via the intake path
  desk-sessions listen --database FILE.duckdb            receive Desk's session event callbacks
  desk-sessions plan --database FILE.duckdb              forecast and staff tomorrow
  desk-sessions report --database FILE.duckdb            a day's (week's, month's) HTML page
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from datetime import date
from pathlib import Path
from typing import NoReturn

from tencent_desk.api.transport import KINDS as TRANSPORTS
from tencent_desk.core import logs, redact, settings
from tencent_desk.core.arguments import (
    ABOVE_0,
    AT_LEAST_0,
    COUNT,
    DATABASE,
    DATASET,
    PORT,
    SEED,
    SEED_FILE,
    SHARE,
    STATE_DIR,
    given,
)
from tencent_desk.core.clock import parse_span, parse_time
from tencent_desk.core.errors import ConfigError
from tencent_desk.job.destination import DESTINATIONS
from tencent_desk.report.command import add_parser as _report_parser

CONFIG = """\
Credentials and settings come from dlt config: .dlt/config.toml and .dlt/secrets.toml
under [sources.tencent_desk], or environment variables SOURCES__TENCENT_DESK__SDKAPPID,
SOURCES__TENCENT_DESK__IDENTIFIER, SOURCES__TENCENT_DESK__SECRET_KEY (or __USERSIG),
SOURCES__TENCENT_DESK__REGION (or __API_URL), __MAX_QPS, __MAX_CONCURRENCY,
__MAX_ERROR_SHARE, __TRANSPORT. Several apps: each under [sources.tencent_desk.apps.<name>] (or
SOURCES__TENCENT_DESK__APPS__<NAME>__<KEY>), all covered by one run (--app to pick).
--destination postgres: credentials from [destination.postgres.credentials] in
.dlt/secrets.toml or DESTINATION__POSTGRES__CREDENTIALS; --state-dir holds the job's lock.
"""
# run's and records' (docs/data.md#exit-codes); the other commands' are in their own --help
JOB_EXITS = """\
0 done; 2 configuration, run's seed or the --database path to fix (e.g. its folder does not
exist; with PostgreSQL also credentials refused); 3 database in use or not writable
(PostgreSQL: unreachable, or no permission); 4 the Desk API refused the credentials or the
app; 5 the Desk API cannot be reached (stopped early, what was answered is loaded); 6 run:
more keys ended in error than max_error_share (run loaded); 7 several apps: some failed or
must alert (named in the line), the others loaded; 1 anything else.
"""
EPILOG = f"{CONFIG}Exit codes:\n{JOB_EXITS}"
TOP_EPILOG = (f"{CONFIG}Exit codes of run and records (every command's --help gives its "
              f"own):\n{JOB_EXITS}")
LISTEN_EPILOG = """\
Exit codes: 0 stopped by SIGTERM or Ctrl-C (SIGINT), cleanly: in-flight callbacks are
answered and the open spool segment is sealed; 2 configuration to fix (e.g. no sdkappid, a
--database or --state-dir in a folder that does not exist); 3 the folder or the port cannot
be used; 1 anything else.
"""
SIMULATE_EPILOG = """\
Credentials: sdkappid, identifier and secret_key (callback_token, when set, signs the
--callback-url callbacks) under [sources.tencent_desk] in .dlt/config.toml and
.dlt/secrets.toml, or SOURCES__TENCENT_DESK__<KEY>; with --app NAME, those of
[sources.tencent_desk.apps.<name>]. It serves until Ctrl-C or SIGTERM.
Exit codes: 0 stopped by SIGTERM or Ctrl-C (SIGINT); 2 configuration or an option to fix
(e.g. no sdkappid, fault shares adding up to more than 1, --host off loopback without
--allow-remote); 3 the port cannot be used; 1 anything else.
"""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose mistakes end in one line too, as every mistake the user must
    fix does (docs/failures.md): ``desk-sessions: error: ...``, exit 2, no usage above it.
    Subcommands' parsers are of this class too (add_subparsers makes them so)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"desk-sessions: error: {message} (see {self.prog} --help)\n")


def _iso_time(text: str) -> str:
    """An argparse ``type=`` for --since and --until: an ISO 8601 time, refused at once."""
    try:
        parse_time(text, "")
    except ConfigError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as "
                                         "2026-01-05T09:00:00Z") from None
    return text


# an empty one (a cron line's $SINCE left unset) once meant no --since: an incremental load
ISO_TIME = given("an ISO 8601 time such as 2026-01-05T09:00:00Z", _iso_time,
                 empty="an empty time")


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="poll the open sessions once and load the rows",
                       description="Poll once every session known from received events "
                       "(desk-sessions listen) and every key of --seed, if given (or each "
                       "app's seed in config); load session_states, seed_rejects and runs.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=SEED_FILE, help="seed file: .csv, .parquet, .jsonl, or a "
                   ".duckdb database (with --seed-table); added to the sessions known from "
                   "received events")
    p.add_argument("--seed-table", help="the table holding the seed in a .duckdb --seed "
                   "(refused with any other seed)")
    _database_and_api(p)
    p.add_argument("--repoll-ended", action="store_true",
                   help="ask again sessions an earlier run saw end")
    p.add_argument("--records", action="store_true", default=None,
                   help="also load new session records (config key records = true)")
    p.add_argument("--max-error-share", type=SHARE, metavar="SHARE",
                   help="exit 6 when more than this share of the keys end in error "
                   f"(default: config, else {settings.DEFAULT_MAX_ERROR_SHARE:g}; 1 turns it "
                   "off)")
    p.add_argument("--max-session-age", type=ABOVE_0, metavar="HOURS",
                   default=settings.DEFAULT_MAX_SESSION_AGE_H, help="sessions from events: "
                   "ask those that began within this many hours and are not known to have "
                   "ended (default %(default)g)")
    p.add_argument("--pipelines-dir", help="dlt's working folder (default: dlt's)")
    _common(p)


def _records_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("records", help="load session records (describe_im_cdr_list)",
                       description="Load session records into session_records (one row per "
                       "ended session): a backfill of --since..--until, or without --since "
                       "everything settled since the last load.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _database_and_api(p)
    p.add_argument("--since", type=ISO_TIME,
                   help="backfill from this ISO 8601 time (UTC unless it says)")
    p.add_argument("--until", type=ISO_TIME, help="up to this ISO 8601 time (default: now "
                   "minus the settle lag, config records_settle, 300 s)")
    p.add_argument("--pipelines-dir", help="dlt's working folder (default: dlt's)")
    _common(p)


def _destination(p: argparse.ArgumentParser, database_help: str) -> None:
    """Where to load: a DuckDB file, or a server with a local state folder."""
    p.add_argument("--destination", choices=DESTINATIONS, default=DESTINATIONS[0],
                   help="where to load (default %(default)s); postgres: credentials from "
                   "[destination.postgres.credentials] in .dlt/secrets.toml or "
                   "DESTINATION__POSTGRES__CREDENTIALS")
    p.add_argument("--database", type=DATABASE, help=database_help)
    p.add_argument("--state-dir", type=STATE_DIR, help="with --destination postgres: the local "
                   "folder for the job's lock and the receiver's spool")
    p.add_argument("--dataset", type=DATASET, default=settings.DEFAULT_DATASET,
                   help="schema for the tables (default %(default)s)")


def _database_and_api(p: argparse.ArgumentParser) -> None:
    """What ``run`` and ``records`` share: where to load, and how to reach the API."""
    _destination(p, "the DuckDB file to load (--destination duckdb)")
    p.add_argument("--max-qps", type=ABOVE_0, help="calls per second, never exceeded in any "
                   f"one-second window (default: config, else {settings.DEFAULT_MAX_QPS:g})")
    p.add_argument("--max-concurrency", type=COUNT, help="calls in flight at most (default: "
                   "config, else enough for --max-qps with half-second answers: 50 at "
                   "100/s, 500 at 1000/s)")
    p.add_argument("--region", help="data centre: " + ", ".join(settings.REGIONS))
    p.add_argument("--api-url", help="any other API root, e.g. a simulator on loopback")
    p.add_argument("--transport", choices=TRANSPORTS, help="the HTTP client (default: config "
                   f"transport, else {settings.DEFAULT_TRANSPORT}, the lightest; see "
                   "docs/transports.md)")
    p.add_argument("--app", action="append", metavar="NAME", help="only this app of those "
                   "under [sources.tencent_desk.apps.<name>] (repeat for more; default: all)")
    _lock_wait(p)


def _listen_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="receive Desk's SessionEventNotify callbacks",
                       description="Receive Desk.SessionEventNotify callbacks (behind a "
                       "TLS-terminating proxy) into a durable spool next to the database; "
                       "desk-sessions run loads them into session_events. Settings under "
                       "[sources.tencent_desk]: sdkappid; callback_token (secret, optional: "
                       "checks each callback's Sign); keep_message_content (default false).",
                       epilog=LISTEN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database", type=DATABASE,
                   help="the DuckDB file the job loads (the spool is FILE.spool/)")
    p.add_argument("--state-dir", type=STATE_DIR, help="instead, with a server destination: "
                   "the job's --state-dir (the spool is DIR/desk.spool/)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    p.add_argument("--port", type=PORT, default=8080, help="port (default %(default)s)")
    p.add_argument("--seal-after", type=ABOVE_0, default=settings.SEAL_AFTER_S, metavar="SECONDS",
                   help="a spool segment is handed to the job after this long (default "
                   "%(default)g)")
    _common(p)


def _lock_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-wait", type=AT_LEAST_0, default=settings.DATABASE_LOCK_WAIT_S,
                   metavar="SECONDS", help="how long to wait while another process holds "
                   "the database open before giving up with exit code 3 (default "
                   "%(default)g)")


def _publish_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="publish the read snapshot again, without polling",
                       description="Every run publishes what it loaded for readers: Parquet "
                       "files in FILE.read/ and the views in FILE.read.duckdb. This does it "
                       "without a run; --rebuild starts over from the whole database (after "
                       "deleting the snapshot, or upgrading from a version without one); "
                       "the old snapshot's files stay snapshot_retention for readers still "
                       "on it, as files a publish replaces do.",
                       epilog="Exit codes: 0 published; 2 something to fix (no such "
                       "database, not a DuckDB file, an empty name); 3 the database is in "
                       "use by a run or not writable; 1 anything else.")
    _destination(p, "the job's DuckDB file")
    p.add_argument("--rebuild", action="store_true", help="start the snapshot over")
    p.add_argument("--pipelines-dir", help="dlt's working folder (default: dlt's)")
    _lock_wait(p)
    _common(p)


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulate a working day and poll it (no account needed)",
                       description="Start the simulator on loopback, poll its sessions every "
                       "5-15 simulated minutes through a working day, load the rows into a "
                       "DuckDB file, then print how to open the notebooks.")
    p.add_argument("--database", type=DATABASE, default=Path("demo.duckdb"),
                   help="the DuckDB file to create (default %(default)s)")
    p.add_argument("--seed", type=SEED, default=7, help="random seed of the simulated day")
    p.add_argument("--sessions", type=COUNT, default=2400,
                   help="sessions in the simulated day (default %(default)s)")
    p.add_argument("--agents", type=COUNT, default=6,
                   help="agents, 3 chats each (default %(default)s: queues at the peaks)")
    p.add_argument("--start-hour", type=float, default=9.0,
                   help="first poll, simulated hour of the day (default %(default)s)")
    p.add_argument("--end-hour", type=float, default=18.0,
                   help="last poll at most, simulated hour (default %(default)s)")
    p.add_argument("--records", action=argparse.BooleanOptionalAction, default=True,
                   help="then load the day's session records (default: yes)")
    _common(p)


def _simulate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="serve a local stand-in for the Desk API",
                       description="Serve get_session_state on loopback for a simulated day; "
                       "credentials come from the same dlt config as a pipeline's.",
                       epilog=SIMULATE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=PORT, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless "
                   "--allow-remote)")
    p.add_argument("--allow-remote", action="store_true")
    p.add_argument("--rate-limit", type=AT_LEAST_0, default=0.0,
                   help="calls per sliding second before 60007 (0: none)")
    p.add_argument("--latency-ms", type=AT_LEAST_0, default=0.0, help="answer delay")
    p.add_argument("--seed-out", type=Path, help="write a CSV seed of the known keys here")
    p.add_argument("--seed", type=SEED, default=7, help="random seed of the simulated day")
    p.add_argument("--sessions", type=COUNT, default=3000)
    p.add_argument("--speed", type=AT_LEAST_0, default=1.0,
                   help="simulated seconds per real second (0: the clock stands still)")
    p.add_argument("--start-hour", type=float, default=9.0, help="where the simulated "
                   "clock starts, in hours of the simulated day (default %(default)s; 25: "
                   "the whole day is over and has its records)")
    p.add_argument("--today", action="store_true", help="simulate today (UTC) in real time "
                   "instead of a fixed day, so that incremental record loads find records")
    p.add_argument("--agent-groups", type=COUNT, default=1,
                   help="agent groups, each with its own agents and queue (default 1, at "
                   "most 8: one agent each)")
    p.add_argument("--callback-url", help="also POST the day's session events to this "
                   "receiver, as Desk would (desk-sessions listen)")
    p.add_argument("--app", help="stand in for this app of [sources.tencent_desk.apps.<name>] "
                   "(its sdkappid, identifier, secret_key); one simulator per app, each on "
                   "its own --port and --rate-limit")
    for knob in ("lost", "repeated", "reordered", "delayed"):
        p.add_argument(f"--callback-{knob}", type=SHARE, default=0.0, metavar="SHARE",
                       help=f"share of callbacks {knob}")
    for kind in ("internal_error", "http_502", "http_503", "truncated", "non_json", "slow",
                 "drop", "throttle", "chaos"):
        p.add_argument(f"--{kind.replace('_', '-')}", type=SHARE, default=0.0,
                       metavar="SHARE", help=f"share of calls answered with fault {kind} "
                       "(all of them together: at most 1)")
    _common(p)
    _history_parser(p.add_subparsers(dest="simulate_command", metavar="history"))


def _history_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history", help="weeks of simulated history, through the real intake path",
        description="Simulate weeks of a desk (three agent groups, weekly seasonality, "
        "day-to-day variation, a staffing schedule) and load them the way production does: "
        "each day's session event callbacks POSTed to the real receiver, then a records run "
        "loading the spool and the day's session records from the simulator; on the last "
        "--poll-days days the job polls too. A virtual clock: 10 weeks take minutes. The "
        "truth goes beside it in schema desk_simulator (expected_rates, customers, schedule, "
        "agent_groups, truth).")
    p.add_argument("--database", type=DATABASE, required=True,
                   help="the DuckDB file to create (replaced if it exists)")
    span = p.add_mutually_exclusive_group()
    span.add_argument("--weeks", type=int, default=10, help="weeks of history (default "
                      "%(default)s)")
    span.add_argument("--days", type=int, help="days of history instead of weeks")
    p.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help="the first day (default: the history ends at today's midnight UTC)")
    p.add_argument("--seed", dest="history_seed", type=SEED, default=0,
                   help="random seed of the weeks (default %(default)s)")
    p.add_argument("--poll-days", type=int, default=0, metavar="N",
                   help="on the last N days the job also polls (default %(default)s)")
    p.add_argument("--poll-every", type=float, default=15.0, metavar="MINUTES",
                   help="simulated minutes between polls on those days (default %(default)g)")
    _common(p)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal only)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="desk-sessions", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TOP_EPILOG)
    sub = p.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _records_parser(sub)
    _publish_parser(sub)
    _demo_parser(sub)
    _simulate_parser(sub)
    _listen_parser(sub)
    from tencent_desk.planning.cli_plan import add_parser as plan_parser

    _common(plan_parser(sub))
    _report_parser(sub)
    return p


def setup_logging(level: str) -> None:
    logs.install(level)  # one line per record, whichever library logs it (not at DEBUG)
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":  # per-request lines from the HTTP stack are noise at INFO
        for name in ("httpx", "httpcore", "aiohttp", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    # A command imports some 1,500 modules that live as long as the process: the garbage
    # collector's full passes over them took 0.1-0.2 s of a report's 1.5-2 s of CPU
    # (benchmarks/gc_collections.py). One full pass per 100 younger ones instead of 10:
    # cyclic garbage still goes, a little later.
    gc.set_threshold(700, 10, 100)
    # dlt reports anonymous usage to its vendor by default; a scheduled job behind a
    # firewall should not try. RUNTIME__DLTHUB_TELEMETRY=true turns it back on.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    args = parser().parse_args(argv)
    setup_logging(args.log_level)
    from tencent_desk.core.errors import JobError

    try:
        if args.command in ("run", "records"):
            return _run(args)
        if args.command == "publish":
            return _publish(args)
        if args.command == "demo":
            from tencent_desk.demo import run_demo

            return run_demo(args)
        if args.command == "plan":
            from tencent_desk.planning.cli_plan import plan

            return plan(args)
        if args.command == "report":
            from tencent_desk.report.command import report

            return report(args)
        if args.command == "listen":
            from tencent_desk.intake.listen import listen

            return listen(args)
        if getattr(args, "simulate_command", None) == "history":
            from tencent_desk.history import run_history

            return run_history(args)
        from tencent_desk.simulator.cli import simulate

        return simulate(args)
    except JobError as exc:
        print(f"desk-sessions: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("desk-sessions: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader left (| head): what it wanted, it has
        # Python's flush at exit would fail again and print a warning: write nowhere instead
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as the shell says of a command that SIGPIPE stopped
    except Exception as exc:  # a bug of ours: one line too; the traceback at DEBUG
        if args.log_level == "DEBUG":
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"desk-sessions: error: unexpected error: {type(exc).__name__}: "
              f"{redact.redact(first)} (rerun with --log-level "
              "DEBUG for details)", file=sys.stderr)
        return 1


def _publish(args: argparse.Namespace) -> int:
    from tencent_desk.core.errors import JobError
    from tencent_desk.core.files import existing
    from tencent_desk.run.options import RunOptions

    if args.destination == DESTINATIONS[0]:
        if args.database is None:
            raise JobError("--database is required: the job's DuckDB file")
        existing(args.database)  # a path to fix is said before publish's imports (dlt)
        from tencent_desk.models import snapshot
        from tencent_desk.run.publish import publish

        rows = publish(args.database, args.dataset, args.rebuild, args.lock_wait)
        print(f"published {rows} rows for readers: {snapshot.paths(args.database)[1]}")
        return 0
    from tencent_desk.run.publish import publish_on_server

    n = publish_on_server(RunOptions(
        seed=None, database=None, dataset=args.dataset, pipelines_dir=args.pipelines_dir,
        destination=args.destination, state_dir=args.state_dir))
    print(f"session_timeline: {n} sessions brought up to date; no snapshot on "
          f"{args.destination}: readers read the server itself")
    return 0


def _run(args: argparse.Namespace) -> int:
    from tencent_desk.core.errors import JobError
    from tencent_desk.run.options import RunOptions
    from tencent_desk.run.preflight import checked

    records = args.command == "records"
    if records:  # the source's own check, said before the lock is taken, naming the options
        try:
            parse_span(args.since, args.until, ("--since", "--until"))
        except ConfigError as exc:
            raise JobError(str(exc), exit_code=2) from None
    overrides = {k: v for k, v in {
        "max_qps": args.max_qps, "max_concurrency": args.max_concurrency,
        "region": args.region, "api_url": args.api_url, "transport": args.transport,
        "records": True if records else args.records,
        "records_from": getattr(args, "since", None),
        "records_until": getattr(args, "until", None),
        "max_error_share": getattr(args, "max_error_share", None)}.items() if v is not None}
    options = RunOptions(seed=None if records else args.seed,
                         seed_table=getattr(args, "seed_table", None), database=args.database,
                         dataset=args.dataset, repoll_ended=getattr(args, "repoll_ended", False),
                         pipelines_dir=args.pipelines_dir, overrides=overrides,
                         progress=args.progress, lock_wait_s=args.lock_wait, poll=not records,
                         destination=args.destination, state_dir=args.state_dir,
                         apps=args.app,
                         max_session_age_s=getattr(args, "max_session_age",
                                                   settings.DEFAULT_MAX_SESSION_AGE_H) * 3600.0)
    database = checked(options)  # what to fix is said before the job's heavy imports
    from tencent_desk.run.pipeline import location
    from tencent_desk.run.runner import run_checked
    from tencent_desk.run.summary import summary

    try:
        rows = run_checked(options, database)
    except JobError as exc:
        for row in exc.rows:  # loaded all the same: what it did, then the error line
            print(summary(row, args.database, args.dataset, location(options)))
        raise
    for row in rows:
        print(summary(row, args.database, args.dataset, location(options)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
