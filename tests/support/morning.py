"""One morning of the job on both destinations: callbacks (10% lost) through the spool,
polls of the sessions known from them, and session records, in three runs, into a DuckDB
file and into PostgreSQL. Built once per test run (``same_morning`` in ``fixtures.py``) for
the tests that compare what the two destinations keep; read only after."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tencent_desk.core.clock import VirtualClock
from tencent_desk.intake.receiver import Receiver, ReceiverConfig
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)
from tencent_desk.simulator.callbacks import Knobs, Sender, plan

from .harness import ADMIN, SDKAPPID, SECRET_KEY
from .targets import Target

HOURS = (9.0, 10.0, 11.5)
RUNS = "runs.json"  # each target's runs rows, as run() returned them


@dataclass(frozen=True)
class Morning:
    pop: Population
    duck: Target
    pg: Target
    loaded: list[list[dict]]  # the runs rows of each target, in the order above


def population() -> Population:
    return Population(PopulationConfig(seed=3, sessions_per_day=1500, agents=5))


def _day(target: Target, pop: Population) -> list[dict]:
    """The morning into ``target``, one run at each of ``HOURS``: the runs rows."""
    day = pop.config.day_start
    clock = VirtualClock(day + HOURS[0] * 3600)
    app = SimulatorApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY), model_clock=clock)
    receiver = Receiver(ReceiverConfig(SDKAPPID, target.spool, seal_after_s=0.05))
    pending = plan(pop, Knobs(lost=0.1, seed=4))
    rows = []
    with serve_in_thread(app) as api, serve_in_thread(receiver) as listener:
        sender = Sender(listener + "/cb", SDKAPPID)
        for hour in HOURS:
            t = day + hour * 3600
            clock.set(t)
            asyncio.run(sender.send([c for c in pending if c.send_at <= t]))
            pending = [c for c in pending if c.send_at > t]
            while any(target.spool.glob("active-*")):
                time.sleep(0.02)
            rows.append(run(RunOptions(
                seed=None, **target.options(), pipelines_dir=str(target.folder / "dlt"),
                overrides={"api_url": api, "sdkappid": SDKAPPID, "identifier": ADMIN,
                           "secret_key": SECRET_KEY, "max_qps": 5000, "max_concurrency": 16,
                           "records": True, "records_since": 4 * 3600},
                progress=False), clock=clock))
    return rows


def build(folder: Path, url: str) -> None:
    """The morning into ``folder/duck`` and into the database at ``url`` (its local files
    in ``folder/pg``); the runs rows in ``folder/runs.json``."""
    pop, loaded = population(), []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
        for target in targets(folder, url):
            target.folder.mkdir()
            loaded.append(_day(target, pop))
    (folder / RUNS).write_text(json.dumps(loaded, default=str))


def targets(folder: Path, url: str) -> tuple[Target, Target]:
    return Target("duckdb", folder / "duck"), Target("postgres", folder / "pg", url)


def read(folder: Path, url: str) -> Morning:
    return Morning(population(), *targets(folder, url),
                   json.loads((folder / RUNS).read_text()))
