"""``desk-sessions simulate history``: weeks of simulated desk history, made through the
product's real intake path.

The weeks model (:mod:`tencent_desk.simulator.weeks`) simulates every day up front. Then,
day by day on a virtual clock (nothing sleeps): Desk's SessionEventNotify callbacks of the
day are POSTed to the real receiver (the ``desk-sessions listen`` app, on loopback), and once
the day is over one ``desk-sessions records`` run (``run`` with ``poll=False``) loads the
sealed spool into session_events and the day's session records from the simulator's
``describe_im_cdr_list`` into session_records. On the last ``--poll-days`` days the job also
polls, as cron would, every ``--poll-every`` simulated minutes. The truth is written beside
(schema ``desk_simulator``): truth, expected_rates, customers, schedule, agent_groups.
"""

from __future__ import annotations

import argparse
import logging
import math
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.errors import JobError
from tencent_desk.core.files import check_folder
from tencent_desk.core.settings import DEFAULT_RECORDS_SETTLE_S, TRUTH_SCHEMA
from tencent_desk.demo import DEMO_ADMIN, DEMO_SDKAPPID, deliver, fresh_database, write_truth
from tencent_desk.intake.receiver import Receiver, ReceiverConfig
from tencent_desk.intake.spool import spool_dir
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import SimulatorApp, SimulatorConfig, serve_in_thread
from tencent_desk.simulator.callbacks import Callback, Sender, StreamSender, plan
from tencent_desk.simulator.weeks import DAY_S, WeeksConfig, simulate, truth_tables

log = logging.getLogger("desk_sessions")

# A day's records are loaded this long after its midnight: past the settle lag.
_RECORDS_AFTER_S = DEFAULT_RECORDS_SETTLE_S + 300


@dataclass(frozen=True)
class HistoryOptions:
    database: Path
    days: int
    seed: int = 0
    start: date | None = None  # None: the history ends at today's midnight UTC
    poll_days: int = 0
    poll_every_s: float = 900.0


def start_of(options: HistoryOptions, today: float | None = None) -> float:
    """Midnight UTC of the first day."""
    if options.start is not None:
        return datetime(options.start.year, options.start.month, options.start.day,
                        tzinfo=UTC).timestamp()
    now = time.time() if today is None else today
    return (now // DAY_S - options.days) * DAY_S


def make_history(options: HistoryOptions) -> dict[str, Any]:
    """Simulate, deliver and load ``options.days`` days; returns what was done."""
    if options.days < 1 or not 0 <= options.poll_days <= options.days:
        raise JobError("--weeks/--days must be >= 1 and --poll-days between 0 and the days")
    if options.poll_every_s < 60:
        raise JobError("--poll-every must be at least 1 minute")
    database = options.database.expanduser().absolute()
    check_folder(database)
    fresh_database(database)
    cfg = WeeksConfig(seed=options.seed, start=start_of(options), days=options.days)
    t0 = time.monotonic()
    weeks = simulate(cfg)
    population = weeks.population
    log.info("simulated %d days from %s: %d sessions, %d asked for a human (%.0f s)",
             cfg.days, _day(cfg.start), len(population), len(weeks.customers),
             time.monotonic() - t0)
    clock = VirtualClock(cfg.start)
    key = secrets.token_hex(32)  # a throwaway key shared by the simulator and the job
    app = SimulatorApp(population, SimulatorConfig(DEMO_SDKAPPID, DEMO_ADMIN, key,
                                                   seed=options.seed), model_clock=clock)
    receiver = Receiver(ReceiverConfig(DEMO_SDKAPPID, spool_dir(database), seal_after_s=1.0))
    work = Path(tempfile.mkdtemp(prefix="desk-history-"))
    done: dict[str, Any] = {"days": cfg.days, "sessions": len(population),
                            "offered": len(weeks.customers), "callbacks": 0, "records": 0,
                            "polls": 0, "events": 0}
    try:
        with serve_in_thread(app) as url, serve_in_thread(receiver) as listener:
            sender = StreamSender(listener + "/desk/callback", DEMO_SDKAPPID, concurrency=64)
            overrides = {"api_url": url, "sdkappid": DEMO_SDKAPPID, "identifier": DEMO_ADMIN,
                         "secret_key": key, "max_qps": 1000, "max_concurrency": 32,
                         "records": True}
            pending: list[Callback] = []
            for day in range(cfg.days):
                begin, end = cfg.day_start(day), cfg.day_start(day + 1)
                # Day 0 also takes the sessions whose chatbot began before its midnight.
                keys = population.session_keys_between(begin if day else -math.inf, end)
                fresh = plan(population, keys=keys, label=f"d{day:04d}-")
                pending = sorted(pending + fresh, key=lambda c: c.send_at)
                done["callbacks"] += len(fresh)
                polled = day >= cfg.days - options.poll_days
                t = begin + options.poll_every_s if polled else end
                while polled and t < end:  # cron's polls through the day
                    pending = _load(sender, pending, clock, t, database, work, overrides,
                                    done, poll=True)
                    t += options.poll_every_s
                pending = _load(sender, pending, clock, end + _RECORDS_AFTER_S, database,
                                work, overrides, done, poll=polled,
                                since=cfg.start if day == 0 else None)
                log.info("%s: %d sessions; %d callbacks, %d records loaded so far",
                         _day(begin), len(keys), done["callbacks"], done["records"])
            # The last sessions' events and records, once the last of them has ended.
            last = max([population.last_end, *(c.send_at for c in pending[-1:])])
            if last + _RECORDS_AFTER_S > clock.time():
                _load(sender, pending, clock, last + _RECORDS_AFTER_S, database, work,
                      overrides, done, poll=False)
            done["receiver"] = dict(receiver.counts)
        write_truth(database, population, truth_tables(weeks))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done["seconds"] = round(time.monotonic() - t0, 1)
    return done


def _load(sender: Sender, pending: list[Callback], clock: VirtualClock, t: float,
          database: Path, work: Path, overrides: dict[str, Any], done: dict[str, Any], *,
          poll: bool, since: float | None = None) -> list[Callback]:
    """Deliver the callbacks due by ``t``, then one run of the job at ``t``."""
    clock.set(t)
    rest = deliver(sender, pending, t, database)
    more = dict(overrides)
    if since is not None:  # the first load reaches back to the first midnight
        more["records_since"] = int(t - since)
    row = run(RunOptions(seed=None, poll=poll, database=database,
                         pipelines_dir=str(work / "dlt"), overrides=more, progress=False),
              clock=clock)
    done["records"] += int(row.get("records") or 0)
    done["events"] += int(row.get("events_loaded") or 0)
    done["polls"] += int(poll)
    return rest


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def run_history(args: argparse.Namespace) -> int:
    days = args.days if args.days is not None else 7 * args.weeks
    done = make_history(HistoryOptions(
        database=args.database, days=days, seed=args.history_seed, start=args.start,
        poll_days=args.poll_days, poll_every_s=args.poll_every * 60.0))
    print(f"history: {done['days']} days, {done['sessions']} sessions ({done['offered']} asked "
          f"for a human), {done['callbacks']} callbacks through the receiver, "
          f"{done['records']} session records loaded, {done['polls']} polling runs, in "
          f"{done['seconds']:.0f} s\n"
          f"  data: {args.database} (truth in {TRUTH_SCHEMA}: truth, expected_rates, "
          f"customers, schedule, agent_groups)")
    return 0
