"""A day of minute-by-minute runs on a compressed clock: the real ``desk-sessions run`` in a
child every simulated minute (its wall clock shifted to the simulated one by the crash-point
helper), against the simulator with faults on, its callbacks through the real
``desk-sessions listen``, records every simulated hour, and a reader (a notebook's, held all
along) polling the published snapshot the whole time. The snapshot's retention
(``snapshot_retention``) is set short enough for the compressed day to exercise it, and
checked after every run (:class:`Retention`). Used by ``make soak`` (benchmarks/soak.py)
and, short, by ``make test-slow`` (tests/test_soak.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from tencent_desk.core.clock import VirtualClock
from tencent_desk.models import snapshot
from tencent_desk.readers.snapshot import Reader
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)
from tencent_desk.simulator.callbacks import Knobs, Sender, plan

from .support import cli
from .support.harness import ADMIN, SDKAPPID, SECRET_KEY

CRASHPOINT = str(Path(__file__).resolve().parent / "support" / "crashpoint")
FAULTS = {"internal_error": 0.02, "http_503": 0.02, "truncated": 0.01, "throttle": 0.02}


@dataclass
class Retention:
    """What the snapshot's retention did, checked after every run against the one before:
    the files on disk are the manifest's current ones and its retired ones, none of
    these retired as long as the retention before the publish; nothing a manifest listed
    as current, and nothing retired less than the retention before, ever removed; the
    publish timed by the soak's clock (the job's, shifted). ``errors``: what broke it."""

    retain_s: float
    removed: int = 0  # files removed by retention over the soak
    errors: list[str] = field(default_factory=list)
    _retired: dict[str, float] = field(default_factory=dict)
    _disk: set[str] = field(default_factory=set)

    def observe(self, folder: Path, earliest: float, latest: float) -> tuple[int, int, int]:
        """After a run whose publishes happened within ``[earliest, latest]`` (soak clock):
        (files on disk, current, retired)."""
        manifest = snapshot.read_manifest(folder)
        current = {n for schema in manifest["schemas"].values()
                   for table in schema["tables"].values()
                   for names in table["days"].values() for n in names}
        retired = {n: float(at) for n, at in manifest.get("retired", [])}
        disk = {p.relative_to(folder).as_posix() for p in folder.glob("*/*/*/*.parquet")}
        published = datetime.fromisoformat(manifest["published_at"]).timestamp()
        if not earliest - 1 <= published <= latest + 1:
            self.errors.append(f"published at {published:.0f}, not by the soak's clock "
                               f"[{earliest:.0f}, {latest:.0f}]")
        if current - disk:
            self.errors.append(f"current files missing: {sorted(current - disk)[:3]}")
        if set(retired) - disk:
            self.errors.append(f"retired files gone early: {sorted(set(retired) - disk)[:3]}")
        if disk - current - set(retired):
            self.errors.append(f"files neither current nor retired kept: "
                               f"{sorted(disk - current - set(retired))[:3]}")
        # published_at keeps microseconds: a millisecond either side is the same instant
        old = [n for n, at in retired.items() if published - at >= self.retain_s + 1e-3]
        if old:
            self.errors.append(f"{len(old)} files retired a retention ago still kept")
        for name in self._disk - disk:
            at = self._retired.get(name)
            if at is None:
                self.errors.append(f"{name} removed while current")
            elif published - at < self.retain_s - 1e-3:
                self.errors.append(f"{name} removed {published - at:.0f} s after retired")
        self.removed += len(self._disk - disk)
        self._retired, self._disk = retired, disk
        return len(disk), len(current), len(retired)


@dataclass
class Figures:
    """Per run: wall seconds, the job's max RSS (KB), the receiver's RSS (KB) and open fds,
    the snapshot's files on disk, current and retired (kept for readers of older
    snapshots); what the reader saw, and what retention did."""

    retention: Retention
    seconds: list[float] = field(default_factory=list)
    job_kb: list[int] = field(default_factory=list)
    receiver_kb: list[int] = field(default_factory=list)
    receiver_fds: list[int] = field(default_factory=list)
    snapshot_files: list[int] = field(default_factory=list)
    current_files: list[int] = field(default_factory=list)
    retired_files: list[int] = field(default_factory=list)
    codes: Counter[int] = field(default_factory=Counter)
    reads: int = 0
    unpublished: int = 0  # reads before the first run with a session published the table
    read_errors: list[str] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)


def proc_figures(pid: int) -> tuple[int, int]:
    """(resident KB, open fds) of a process."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text(
        ).splitlines() if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def soak(folder: Path, runs: int, start_h: float = 8.0, sessions: int = 3000,
         every_s: float = 60.0, records_every: int = 60, retain_s: float = 3600.0,
         progress: Callable[[int, str], None] | None = None) -> Figures:
    """``runs`` runs, one every ``every_s`` simulated seconds from ``start_h`` (on, into the
    next day when the runs last past midnight); session
    records loaded after every ``records_every``-th run (an hour of minute runs); the
    snapshot's replaced files kept ``retain_s`` simulated seconds (an hour: 60 runs).
    ``progress(n, line)``: each run's figures, as they come."""
    # the population spans every simulated hour the runs reach, past midnight if need be
    hours = max(24.0, start_h + runs * every_s / 3600 + 1)
    pop = Population(PopulationConfig(seed=17, sessions_per_day=sessions, agents=8,
                                      hours=hours))
    day = pop.config.day_start
    clock = VirtualClock(day + start_h * 3600)
    app = SimulatorApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY, seed=3, **FAULTS),
                       model_clock=clock, auth_clock=clock)  # the job signs in model time
    pending = plan(pop, Knobs(repeated=0.02, reordered=0.02, seed=5))
    db = folder / "desk.duckdb"
    figures = Figures(Retention(retain_s))
    stop = threading.Event()

    def read() -> None:  # a notebook's kernel, open all day, polling the snapshot
        while not stop.wait(0.5) and not Reader.available(db):
            pass
        reader = Reader(db)
        try:
            while not stop.wait(0.5):
                try:
                    reader.connection().execute(
                        "SELECT count(*) FROM tencent_desk.session_states").fetchone()
                    figures.reads += 1
                except duckdb.CatalogException as exc:
                    # runs at night with nobody to poll load no state row, and the table
                    # is published with its first; once it is, it must stay readable
                    if figures.reads:
                        figures.read_errors.append(f"{type(exc).__name__}: {exc}")
                    else:
                        figures.unpublished += 1
                except Exception as exc:  # counted, reported, asserted on
                    figures.read_errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            reader.close()

    with open(folder / "listen.log", "a") as log:
        listener, port = cli.start_server(
            [cli.CLI, "listen", "--database", str(db), "--seal-after", "0.2"], log=log)
    reader = threading.Thread(target=read, daemon=True)
    try:
        with serve_in_thread(app) as api:
            sender = Sender(f"http://127.0.0.1:{port}/desk", SDKAPPID, concurrency=8)
            reader.start()
            for n in range(runs):
                clock.advance(every_s)
                now = clock.time()
                due = [c for c in pending if c.send_at <= now]
                pending = pending[len(due):] if due == pending[:len(due)] else [
                    c for c in pending if c.send_at > now]
                if due:
                    asyncio.run(sender.send(due))
                time.sleep(0.3)  # the receiver seals its segment for the job
                shift, began = now - time.time(), time.monotonic()
                argv = [cli.CLI, "run", "--database", str(db), "--api-url", api,
                        "--pipelines-dir", str(folder / "dlt"), "--no-progress",
                        "--max-qps", "2000", "--max-concurrency", "8"]
                code, took, kb, err = _timed_rusage(argv, folder, shift, retain_s)
                figures.codes[code] += 1
                if code not in (0, 6):
                    raise AssertionError(f"run {n}: exit {code}: {err[-2000:]}")
                if (n + 1) % records_every == 0:  # records every simulated hour
                    since = datetime.fromtimestamp(now - 3 * 3600, UTC).isoformat()
                    until = datetime.fromtimestamp(now - 300, UTC).isoformat()
                    rcode, _t, _k, rerr = _timed_rusage(
                        [cli.CLI, "records", "--database", str(db), "--api-url", api,
                         "--pipelines-dir", str(folder / "dlt"), "--no-progress", "--since",
                         since, "--until", until], folder, shift, retain_s)
                    if rcode not in (0, 6):
                        raise AssertionError(f"records after run {n}: {rerr[-2000:]}")
                figures.seconds.append(took)
                figures.job_kb.append(kb)
                rss, fds = proc_figures(listener.pid)
                figures.receiver_kb.append(rss)
                figures.receiver_fds.append(fds)
                files = figures.retention.observe(folder / "desk.read", now,
                                                  now + time.monotonic() - began)
                figures.snapshot_files.append(files[0])
                figures.current_files.append(files[1])
                figures.retired_files.append(files[2])
                if progress:
                    progress(n + 1, f"{took:.1f} s, job {kb / 1024:.0f} MB, receiver "
                             f"{rss / 1024:.0f} MB {fds} fds, snapshot {files[0]} files "
                             f"({files[1]} current, {files[2]} retired, "
                             f"{figures.retention.removed} removed so far)")
            figures.acknowledged = set(sender.acknowledged)
    finally:
        stop.set()
        cli.stop_server(listener)
    return figures


def _timed_rusage(argv: list[str], cwd: Path, shift: float, retain_s: float
                  ) -> tuple[int, float, int, str]:
    """A CLI child with its clock shifted and the snapshot's retention set: (exit code,
    seconds, max RSS KB, stderr tail)."""
    started = time.monotonic()
    err_path = cwd / "last-stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=cli.env(
            PYTHONPATH=CRASHPOINT, DESK_TEST_TIME_SHIFT_S=str(shift),
            SOURCES__TENCENT_DESK__SNAPSHOT_RETENTION=f"{retain_s:g}"),
            stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - started, usage.ru_maxrss, err_path.read_text()


def check(folder: Path, figures: Figures) -> dict[str, int]:
    """Nothing acknowledged lost or doubled, nothing answered doubled, the reader never
    failed, retention removed what it should and nothing else; returns the counts
    checked."""
    with duckdb.connect(str(folder / "desk.duckdb"), read_only=True) as con:
        loaded = Counter(r for (r,) in con.execute(
            "SELECT request_id FROM tencent_desk.session_events").fetchall())
        runs = con.execute("SELECT run_id, status, rows FROM tencent_desk.runs").fetchall()
        stored = dict(con.execute("SELECT run_id, count(*) FROM tencent_desk.session_states "
                                  "GROUP BY 1").fetchall())
    doubled = {r: n for r, n in loaded.items() if n > 1}
    assert not doubled, f"{len(doubled)} events loaded twice"
    lost = figures.acknowledged - set(loaded)
    assert not lost, f"{len(lost)} acknowledged events never loaded"
    wrong = [(r, n, stored.get(r, 0)) for r, _s, n in runs if stored.get(r, 0) != n]
    assert not wrong, f"runs whose rows differ from what was stored: {wrong[:5]}"
    assert {s for _r, s, _n in runs} <= {"complete", "outage"}, runs
    assert not figures.read_errors, figures.read_errors[:3]
    assert not figures.retention.errors, figures.retention.errors[:5]
    return {"events": len(loaded), "runs": len(runs), "states": sum(stored.values()),
            "reads": figures.reads, "removed": figures.retention.removed}
