"""``desk-sessions records`` killed with SIGKILL while paging, and dying in dlt's load step,
against ``desk-sessions simulate --today`` in its own process: the next incremental run
loads every record once, nothing missing and nothing doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tencent_desk.api.record_fields import record_times
from tencent_desk.simulator import Population, PopulationConfig

from .support import cli
from .support.cli import CLI
from .support.harness import DATASET
from .test_crashes import CRASHPOINT, KILLED, Job

SESSIONS = 3000


def afternoon_shift(now: float) -> float:
    """Seconds to move the children's clocks by so that they read the afternoon of a UTC
    day or later: a day's records to page through at any hour (before noon: yesterday at
    15:00). The desk is quiet at night: at 03:20 only 41 sessions had ended."""
    into = now % 86400
    return 0.0 if into >= 12 * 3600 else -(into + 9 * 3600)


class TodayDesk:
    """The simulator serving today, in real time, so that incremental loads find records
    (its clock and the job's moved back to yesterday afternoon before noon)."""

    def __init__(self, folder: Path) -> None:
        self.log = (folder / "simulator.log").open("w")
        self.shift = afternoon_shift(time.time())
        self.day = (time.time() + self.shift) // 86400 * 86400
        self.proc, self.port = cli.start_server(
            [CLI, "simulate", "--today", "--sessions", str(SESSIONS), "--seed", "7",
             "--agent-groups", "3", "--log-level", "WARNING"], log=self.log,
            **self.clock_env())
        self.url = f"http://127.0.0.1:{self.port}"
        groups = ("Group 1", "Group 2", "Group 3")
        self.population = Population(PopulationConfig(
            seed=7, sessions_per_day=SESSIONS, day_start=self.day, agent_groups=groups))

    def clock_env(self) -> dict[str, str]:
        return {"PYTHONPATH": CRASHPOINT, "DESK_TEST_TIME_SHIFT_S": str(self.shift)}

    def truth(self, start: int, end: int) -> set[str]:
        out = set()
        for k in self.population.session_keys():
            t = self.population.session_truth(k.session_id)
            if start <= record_times(t.arrived_at, t.ended_at)[0] <= end:
                out.add(k.session_id)
        return out

    def stop(self) -> None:
        cli.stop_server(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def today(tmp_path_factory) -> TodayDesk:
    desk = TodayDesk(tmp_path_factory.mktemp("desk-today"))
    yield desk
    desk.stop()


class RecordsJob(Job):
    """A folder and ``desk-sessions records`` runs (incremental) against today's desk."""

    desk: TodayDesk  # type: ignore[assignment]

    def start(self, max_qps: int = 2000, **env: str) -> subprocess.Popen:
        return super().start(max_qps, DESK_TEST_TIME_SHIFT_S=str(self.desk.shift), **env)

    def argv(self, max_qps: int) -> list[str]:
        return [CLI, "records", *self.target.argv(), "--api-url", self.desk.url,
                "--pipelines-dir", str(self.pipelines), "--max-qps", str(max_qps),
                "--no-progress"]

    def check_complete(self) -> None:
        """One row per session, and exactly the sessions of the span the runs covered."""
        ((first, last),) = self.query(
            f"SELECT min(records_from), max(records_until) FROM {DATASET}.record_runs "
            "WHERE status = 'complete'")
        got = self.query(f"SELECT session_id, count(*) FROM {DATASET}.session_records "
                         "GROUP BY 1")
        assert all(n == 1 for _, n in got)
        truth = self.desk.truth(int(first.timestamp()), int(last.timestamp()))
        assert {s for s, _ in got} == truth and len(truth) > 500


def test_killed_while_paging_then_the_next_run_loads_everything_once(target, today):
    job = RecordsJob(target, today)  # type: ignore[arg-type]
    proc = job.start(max_qps=4)  # some 40 pages at 4/s: ten seconds of paging
    deadline = time.monotonic() + 120
    paged = 0
    assert proc.stderr is not None
    for line in proc.stderr:  # a window read in full: paging is under way
        if "sessions" in line and "records 20" in line:
            paged += 1
            if paged == 8:
                break
        assert time.monotonic() < deadline and proc.poll() is None, "paging never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode in KILLED
    assert "session_records" not in job.tables()

    nxt = job.run(max_qps=500)
    assert nxt.returncode == 0, nxt.stderr
    assert "Traceback" not in nxt.stderr and "session records" in nxt.stdout
    job.check_complete()
    statuses = sorted(r[0] for r in job.query(f"SELECT status FROM {DATASET}.record_runs"))
    assert statuses == ["complete", "interrupted"]


@pytest.mark.slow
def test_a_crash_while_loading_records_then_the_next_run_completes(target, today):
    job = RecordsJob(target, today)  # type: ignore[arg-type]
    crashed = job.run(DESK_TEST_CRASH="after:session_records")
    assert crashed.returncode in KILLED, crashed.stderr
    assert job.note.read_text().split() == ["after:session_records"]
    nxt = job.run()
    assert nxt.returncode == 0, nxt.stderr
    job.check_complete()
    statuses = sorted(r[0] for r in job.query(f"SELECT status FROM {DATASET}.record_runs"))
    assert statuses == ["complete", "complete"]
