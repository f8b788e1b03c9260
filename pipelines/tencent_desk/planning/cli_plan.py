"""``desk-sessions plan``: tomorrow's staffing (or any days'), from the history loaded."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from tencent_desk.core import settings
from tencent_desk.core.arguments import AT_LEAST_0, DATABASE, DATASET, OUT
from tencent_desk.core.clock import parse_instant
from tencent_desk.core.errors import JobError
from tencent_desk.job.destination import DESTINATIONS, DUCKDB
from tencent_desk.planning.choices import (
    INTERVALS,
    METHODS,
    PER,
    PlanError,
    TooLittleHistory,
    parse_target,
)

# The maths are imported where a plan is made: building the command line (for `listen` and
# `run` too) would otherwise load pandas and NumPy, 100 MB in a receiver that needs neither.
if TYPE_CHECKING:
    import pandas as pd
    from tencent_desk.planning.plan import Params, Update

DESCRIPTION = """\
Forecast each agent group's sessions asking for a human, interval by interval, with an 80%
prediction interval; estimate handling time, patience (from abandonment) and the chats an
agent really holds; and staff each interval (chat concurrency with abandonment) so that
each day meets --target per group, weighted by the arrivals forecast (--target-per
interval: every interval meets it), never above --max-occupancy, grossed up for
--shrinkage. Each plan is appended to the staffing_plan table and written to --out. With
several Desk apps in the database, --app plans one of them from its own sessions and polls
(without it, every app's are read together: a plan for none of them). See
docs/planning.md."""
EPILOG = """\
Exit codes: 0 planned (and saved, unless --no-save); 2 something to fix (too little
history, a target, group, app or date that cannot be used, the database or dataset); 3 --out
cannot be written, or a run held the database past --lock-wait (the CSV is written, the
plan not saved); 1 anything else."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("plan", help="forecast demand and plan the agents each interval needs",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--destination", choices=DESTINATIONS, default=DUCKDB,
                   help="where the history is and the plan goes (default %(default)s); "
                   "postgres: credentials as for desk-sessions run")
    p.add_argument("--database", type=DATABASE, help="the job's DuckDB file (history from the "
                   "snapshot it publishes)")
    p.add_argument("--dataset", type=DATASET, default=settings.DEFAULT_DATASET,
                   help="schema of the tables (default %(default)s)")
    p.add_argument("--app", help="one app of several: its name or sdkappid (default: every "
                   "app's sessions together, a plan for none of them)")
    p.add_argument("--date", help="first day to plan, ISO 8601 (2026-01-06), UTC (default: "
                   "tomorrow); with --intraday a date-time (2026-01-06T12:00): plan the rest "
                   "of that day from then")
    p.add_argument("--days", type=int, default=1, help="days to plan (default %(default)s)")
    p.add_argument("--interval", type=int, choices=INTERVALS, default=30,
                   help="minutes per interval (default %(default)s)")
    p.add_argument("--target", default="0.8:60", help="service level SHARE:SECONDS, the "
                   "share a fraction or a whole percentage: 0.8:60 or 80:60 (default "
                   "%(default)s: 80%% answered within 60 s, of those answered or "
                   "abandoned after 60 s)")
    p.add_argument("--target-per", choices=PER, default="day",
                   help="where --target applies (default %(default)s): day, over each day "
                   "per group, weighted by the forecast, some intervals below it; interval, "
                   "in every interval, which overshoots the day on a small desk")
    p.add_argument("--max-occupancy", type=float, default=0.85,
                   help="chats held / chat slots at most (default %(default)s)")
    p.add_argument("--shrinkage", type=float, default=0.0, help="share of scheduled time "
                   "not on the queue: breaks, training, absence (default %(default)s)")
    p.add_argument("--group", action="append", metavar="G",
                   help="only this agent group (repeat for more; default: every group)")
    p.add_argument("--method", choices=METHODS, default="profile",
                   help="forecast method (default %(default)s; naive: same interval a "
                   "week before)")
    p.add_argument("--out", type=OUT, help="also write the plan to this CSV file; - for "
                   "stdout (the summary lines then go to stderr, so a pipe gets the CSV alone)")
    p.add_argument("--backtest", action="store_true",
                   help="allow a date in the past: plan it from the data before it")
    p.add_argument("--intraday", action="store_true",
                   help="update the rest of today (or of --date's day) from its arrivals "
                   "so far")
    p.add_argument("--no-save", action="store_true",
                   help="do not append the plan to the staffing_plan table")
    p.add_argument("--lock-wait", type=AT_LEAST_0, default=settings.DATABASE_LOCK_WAIT_S,
                   metavar="SECONDS", help="how long to wait for a run holding the DuckDB "
                   "file before giving up with exit code 3 (default %(default)g)")
    return p


STDOUT = "-"  # --out -: the CSV to stdout
COUNTED = ("agents", "scheduled")  # on the queue, and grossed up for shrinkage


def _date(text: str | None, intraday: bool) -> datetime | None:
    """--date as a UTC instant: an ISO 8601 date, with --intraday a date-time too."""
    if text is None:
        return None
    try:
        at, whole_day = parse_instant(text)
    except ValueError:  # "" and "NaT" too: a cron line's variable left unset
        raise PlanError(f"--date {text!r} is not an ISO 8601 date: give 2026-01-06 (with "
                        "--intraday, a time: 2026-01-06T12:00), UTC unless it names a zone"
                        ) from None
    if not whole_day and not intraday:
        raise PlanError(f"--date {text} has a time of day, which only --intraday reads (the "
                        "rest of the day from then): give the day alone to plan it whole")
    return at


def _when(args: argparse.Namespace, given: datetime | None, now: datetime
          ) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """(first day to plan, the instant of an intraday update or None), from --date's
    ``given`` instant or, without one, ``now``."""
    import pandas as pd

    today = pd.Timestamp(now).tz_convert("UTC").normalize()
    if given is None:
        start = pd.Timestamp(now).tz_convert("UTC") if args.intraday else today + \
            pd.Timedelta(days=1)
    else:
        start = pd.Timestamp(given)
    day = start.normalize()
    if day < today and not args.backtest:
        raise PlanError(f"--date {day:%Y-%m-%d} is in the past (today is {today:%Y-%m-%d}, "
                        "UTC): add --backtest to plan it from the data before it")
    return day, (start if args.intraday else None)


def plan(args: argparse.Namespace, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    try:  # what the user must fix is said before the maths are loaded
        sl, seconds = parse_target(args.target)
        if args.destination == DUCKDB and args.database is None:
            raise PlanError("--database is required: the job's DuckDB file")
        if args.database is not None and not args.database.exists():
            raise PlanError(f"database {args.database} not found: check --database")
        if args.days < 1 or (args.intraday and args.days != 1):
            raise PlanError("--days must be at least 1 (and 1 with --intraday)")
        if not 0 <= args.shrinkage < 1:
            raise PlanError(f"--shrinkage must be in [0, 1), got {args.shrinkage:g}")
        if not 0 < args.max_occupancy <= 1:
            raise PlanError(f"--max-occupancy must be in (0, 1], got {args.max_occupancy:g}")
        given = _date(args.date, args.intraday)
        if args.destination == DUCKDB:  # a file, or its dataset, to fix: before pandas too
            from tencent_desk.readers.snapshot import missing_dataset, unreadable

            if why := unreadable(args.database) or missing_dataset(args.database, args.dataset):
                raise PlanError(why)
    except PlanError as exc:
        raise JobError(str(exc), exit_code=2) from None
    import pandas as pd
    from tencent_desk.planning import history, store
    from tencent_desk.planning.plan import Params, cut_short, intraday_plan, make_plan, origin_of
    from tencent_desk.readers.window import data_days, held

    holder = args.database if args.destination == DUCKDB else args.destination

    try:
        day, at = _when(args, given, now)
        sdkappid = None if args.app is None else history.app(
            args.database, args.destination, args.dataset, args.app)
        params = Params(args.interval, sl, seconds, args.max_occupancy, args.shrinkage,
                        args.method, target_per=args.target_per)
        since = day - pd.Timedelta(weeks=params.weeks, days=1)
        until = (at.ceil(params.freq) if at is not None else day).to_pydatetime()
        summed = history.read(args.database, args.destination, args.dataset,
                              since.to_pydatetime(), until, params.target_s, sdkappid)
        today = pd.Timestamp(now).tz_convert("UTC").normalize()
        if at is None:
            days = [day + pd.Timedelta(days=k) for k in range(args.days)]
            frame = make_plan(summed, days, params, args.group, history_until=today)
            updates: dict[str, Update] = {}
        else:
            frame, updates = intraday_plan(summed, at, params, args.group, history_until=today)
        short = cut_short(summed, origin_of(day, today), params.weeks)  # said, as left out
    except TooLittleHistory as exc:
        raise JobError(f"{exc}; the database holds {held(data_days(holder, args.dataset))}",
                       exit_code=2) from None
    except PlanError as exc:
        raise JobError(str(exc), exit_code=2) from None
    kind = "intraday" if at is not None else "backtest" if day < pd.Timestamp(now).tz_convert(
        "UTC").normalize() else "plan"
    stamped = store.stamp(frame, kind, _parameters(params, frame, day, args.days, at, updates,
                                                   short), now, store.app_of(summed.sdkappids))
    if len(summed.sdkappids) > 1:  # no --app: groups of the same name merged across apps
        print(f"desk-sessions: warning: the sessions read are of {len(summed.sdkappids)} apps "
              f"({', '.join(map(str, summed.sdkappids))}), planned together: a plan of "
              "several apps is for none of them (its sdkappid is NULL); give --app (a name "
              "or an sdkappid) for one app's plan", file=sys.stderr)
    to_stdout = str(args.out) == STDOUT
    csv = "the CSV on stdout" if to_stdout else str(args.out)
    if to_stdout:
        stamped.to_csv(sys.stdout, index=False)
        sys.stdout.flush()
    elif args.out:
        try:  # as the report does: a cron line may name a folder not made yet
            args.out.parent.mkdir(parents=True, exist_ok=True)
            stamped.to_csv(args.out, index=False)
        except OSError as exc:  # pandas' own OSErrors carry no strerror
            where = f" ({exc.filename})" if exc.filename not in (None, str(args.out)) else ""
            raise JobError(f"cannot write {args.out}: {exc.strerror or exc}{where}",
                           exit_code=3) from None
    if not args.no_save:
        try:
            store.save(stamped, args.destination, args.database, args.dataset, args.lock_wait)
        except JobError as exc:  # the CSV is written: say what is and what is not
            written = f"{csv} is written but " if args.out else ""
            raise JobError(f"{exc}; {written}the plan is not saved in {store.TABLE}",
                           exc.exit_code) from None
    said = sys.stderr if to_stdout else sys.stdout  # a pipe of the CSV gets the CSV alone
    _summary(stamped, day, args.days, at, updates, short, said)
    if args.out:
        print(f"  written to {'stdout' if to_stdout else args.out}", file=said)
    if not args.no_save and args.destination == DUCKDB:
        # the report reads the snapshot the job publishes (no notebook reads saved plans)
        print("  saved in staffing_plan; the report sees it after the job's next run or "
              "`desk-sessions publish`", file=said)
    said.flush()
    return 0


def _parameters(params: Params, plan: pd.DataFrame, day: pd.Timestamp, days: int,
                at: pd.Timestamp | None, updates: dict[str, Update],
                short: pd.Timestamp | None) -> dict[str, object]:
    """What the plan was made with, kept beside it: the model's parameters, the days and
    groups planned, a day the forecast left out (``short``: where the data ends in it), and
    an intraday update's time, arrivals counted (and where they were counted to: the
    data's end when before that time) and day multipliers."""
    return {**params.as_dict(), "date": f"{day:%Y-%m-%d}", "days": days,
            "groups": sorted(plan.group.unique()),
            "left_out": _left_out(short) if short is not None else None,
            "as_of": at.isoformat() if at is not None else None,
            "arrived": {g: u.arrived for g, u in updates.items()} if updates else None,
            "arrived_until": next(iter(updates.values())).until.isoformat() if updates
            else None,
            "multiplier": {g: round(u.multiplier, 4) for g, u in updates.items()}
            if updates else None}


def _left_out(short: pd.Timestamp) -> str:
    return f"{short:%Y-%m-%d} left out of the forecast: the data ends at {short:%H:%M} UTC"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _summary(plan: pd.DataFrame, day: pd.Timestamp, days: int, at: pd.Timestamp | None,
             updates: dict[str, Update], short: pd.Timestamp | None, out: TextIO) -> None:
    span = f"{day:%Y-%m-%d}" + (f" (+{_count(days - 1, 'day')})" if days > 1 else "")
    span += f" from {at:%H:%M} UTC" if at is not None else ""
    ids = plan.plan_id.iloc[0] if len(plan) else "-"
    gap = f" ({_left_out(short)})" if short is not None else ""
    print(f"plan {ids} for {span}: {_count(len(plan), 'interval')}{gap}", file=out)
    for group, g in plan.groupby("group"):
        staffed = g.dropna(subset=["agents"])
        # agent-hours and the most agents at once, on the queue and scheduled: apart with
        # shrinkage, by more than it on a small group (each interval rounded up)
        (queue_h, scheduled_h), (on_queue, scheduled) = (
            [float((staffed[c] * staffed.interval_min).sum()) / 60 for c in COUNTED],
            [int(staffed[c].max()) if len(staffed) else 0 for c in COUNTED])
        update = updates.get(str(group))
        so_far = (f"{update.arrived} arrived before {update.until:%H:%M}, the rest of the "
                  f"day scaled by {update.multiplier:.2f}; " if update else "")
        print(f"  {group}: {so_far}{_count(round(g.forecast.sum()), 'session')} forecast, "
              f"{queue_h:.1f} agent-hours on the queue, {scheduled_h:.1f} scheduled; at most "
              f"{_count(on_queue, 'agent')} on the queue at once, {scheduled} scheduled",
              file=out)
