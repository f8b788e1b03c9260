"""The notebooks run while the scheduled job keeps loading into the same database: the
kernel reads the published snapshot, the job never waits for it, nothing fails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tencent_desk.core.clock import VirtualClock
from tencent_desk.demo import write_truth
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)

from .support import harness
from .support.notebooks import NAMES, execute, figures, install_kernel_spec


class Job:
    """The scheduled job of a simulated day, polling every 10 simulated minutes and loading
    the session records settled by then."""

    def __init__(self, db: Path, work: Path, pop: Population, clock: VirtualClock,
                 url: str) -> None:
        self.db, self.work, self.pop, self.clock, self.url = db, work, pop, clock, url
        self.runs = 0

    def poll(self) -> None:
        self.clock.advance(600)
        t = self.clock.time()
        begun = [k for k in self.pop.session_keys()
                 if self.pop.segments(k.session_id)[0].start <= t]
        seed = harness.write_seed(self.work / "seed.csv", [
            (k.session_id, k.client_user_id, k.customer_service_id) for k in begun])
        run(RunOptions(seed=str(seed), database=self.db, pipelines_dir=str(self.work / "dlt"),
                       overrides={"api_url": self.url, "sdkappid": harness.SDKAPPID,
                                  "identifier": harness.ADMIN,
                                  "secret_key": harness.SECRET_KEY, "max_qps": 5000,
                                  "max_concurrency": 16, "records": True}, progress=False),
            clock=self.clock)
        self.runs += 1


@pytest.mark.slow  # four kernels while a day of runs loads; whole runs only: test_readers
def test_notebooks_run_while_the_job_writes(tmp_path, monkeypatch):
    pop = Population(PopulationConfig(seed=7, sessions_per_day=1200, agents=4))
    clock = VirtualClock(pop.config.day_start + 9 * 3600)
    app = SimulatorApp(pop, SimulatorConfig(harness.SDKAPPID, harness.ADMIN,
                                            harness.SECRET_KEY, seed=7), model_clock=clock)
    db = tmp_path / "desk.duckdb"
    monkeypatch.setenv("JUPYTER_PATH", str(install_kernel_spec(tmp_path / "kernel")))
    monkeypatch.setenv("DESK_DUCKDB", str(db))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with serve_in_thread(app) as url:
        job = Job(db, tmp_path, pop, clock, url)
        for _ in range(12):  # the morning, 09:00-11:00
            job.poll()
        write_truth(db, pop)
        stop = threading.Event()
        failures: list[BaseException] = []

        def keep_polling() -> None:
            try:
                while not stop.is_set():
                    job.poll()
            except BaseException as exc:  # reported below
                failures.append(exc)

        writer = threading.Thread(target=keep_polling)
        writer.start()
        drawn = {}
        try:
            for name in NAMES:
                drawn[name] = figures(execute(name))
        finally:
            stop.set()
            writer.join()
    assert not failures, failures
    assert job.runs > 12  # the job kept loading while the kernel read
    # planning: a day of history is too little to forecast; it says so under its one figure
    assert all(n >= (1 if name == "planning" else 2) for name, n in drawn.items()), drawn
