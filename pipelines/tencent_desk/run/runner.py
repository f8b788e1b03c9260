"""``desk-sessions run``: one run of the job, in three phases (:func:`prepare`, then
:func:`extract_and_load`, then :func:`finish`), under a lock, with progress, and one clear
line for every fatal problem (:mod:`.exits`)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.extract import DltSource
from tencent_desk import tencent_desk, tencent_desk_apps
from tencent_desk.core import apps, redact
from tencent_desk.core.clock import Clock, SystemClock, utc
from tencent_desk.core.errors import ConfigError, JobError
from tencent_desk.intake.spool import spool_dir
from tencent_desk.job import destination, upgrade
from tencent_desk.job.context import RunContext, bound
from tencent_desk.job.event_load import EventsLoaded, load_events, write_open_sessions
from tencent_desk.job.source import SourceConfig
from tencent_desk.run.database import Held
from tencent_desk.run.exits import alert_of, apps_alert, explain
from tencent_desk.run.lock import RunLock
from tencent_desk.run.options import RunOptions
from tencent_desk.run.pipeline import pipeline_for
from tencent_desk.run.post_load import after_load, snapshot_retention
from tencent_desk.run.preflight import checked
from tencent_desk.run.progress import Progress

log = logging.getLogger("desk_sessions")


def _lean_arrow_pool() -> None:
    # Arrow's default pool (mimalloc) keeps some 50 MB of freed batches for itself over a
    # long poll; jemalloc (or malloc) gives them back.
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a build without jemalloc
        pa.set_memory_pool(pa.system_memory_pool())


@dataclass
class Run:
    """One run as its phases share it: where it loads, its lock, what the source is handed
    (:class:`RunContext`) and what comes back (the ``runs`` rows, each failed app's code)."""

    options: RunOptions
    database: Path  # the DuckDB file, or with a server the state folder's anchor
    lock: RunLock
    pipeline: dlt.Pipeline
    cleanup: contextlib.ExitStack
    context: RunContext = field(init=False)
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # app -> the code that stopped it
    received: EventsLoaded = field(default_factory=EventsLoaded)
    work: Path | None = None  # a scratch folder: the sessions known from events, per app
    _rows_lock: threading.Lock = field(default_factory=threading.Lock)

    def fetched(self, row: dict[str, Any]) -> None:
        """A ``runs`` row, once its app's keys are answered (from dlt's threads)."""
        row.update(events_loaded=self.received.records, events_unknown=self.received.unknown)
        with self._rows_lock:
            self.rows.append(row)
            self.lock.write(run_id=self.context.run_id, phase="loading")

    def failed(self, app: str, exc: BaseException) -> str:
        """The line to record for one app of several that could not run."""
        message, self.failures[app] = explain(exc, self.database)
        return message

    def stopped(self, exc: BaseException) -> JobError:
        """The one-line error for what stopped the run; a run stopped before it had
        anything to load is recorded by the next one (``RunLock.interrupted``)."""
        if isinstance(exc, JobError):
            return exc
        message, code = explain(exc, self.database, self.pipeline)
        last = self.lock.read()
        if last.get("phase") == "fetching":
            self.lock.write(**{**last, "phase": "failed", "error": message})
        return JobError(message, code)


def run(options: RunOptions, *, clock: Clock | None = None) -> dict[str, Any]:
    """Run the pipeline once; returns the ``runs`` row (the last app's, with several: see
    :func:`run_all`). Raises :class:`JobError`."""
    return run_all(options, clock=clock)[-1]


def run_all(options: RunOptions, *, clock: Clock | None = None,
            pace_clocks: dict[str, Clock] | None = None) -> list[dict[str, Any]]:
    """Run the pipeline once for every configured app; returns their ``runs`` rows (one in
    the single-app form). Raises :class:`JobError` (with the rows when they were loaded).
    ``pace_clocks``: app name -> the clock pacing its calls (virtual ones in tests)."""
    return run_checked(options, checked(options), clock=clock, pace_clocks=pace_clocks)


def run_checked(options: RunOptions, database: Path, *, clock: Clock | None = None,
                pace_clocks: dict[str, Clock] | None = None) -> list[dict[str, Any]]:
    """:func:`run_all` once ``options`` passed :func:`checked`, which gave ``database``."""
    redact.install()
    _lean_arrow_pool()
    with RunLock(database) as lock, contextlib.ExitStack() as cleanup:
        asking: Any = contextlib.nullcontext
        if options.destination == destination.DUCKDB:
            held = Held(database, options.lock_wait_s)
            cleanup.callback(held.close)
            asking = held.released
            snapshot_retention()  # a bad setting stops the run before anything is asked
        progress = Progress(options.progress)
        cleanup.callback(progress.close)
        run = Run(options, database, lock, pipeline_for(
            database, options.dataset, options.pipelines_dir, options.destination), cleanup)
        run.context = RunContext(clock=clock or SystemClock(), on_batch=progress,
                                 on_run=run.fetched, on_failed=run.failed,
                                 pace_clocks=pace_clocks or {}, asking=asking)
        try:
            source = prepare(run)
            extract_and_load(run, source)
            return finish(run)
        except BaseException as exc:
            raise run.stopped(exc) from None


def prepare(run: Run) -> DltSource:
    """Everything before the API is asked: the server checked and locked, an older
    database upgraded, what an interrupted run left loaded, the received events loaded,
    and this run's source made."""
    options, pipeline = run.options, run.pipeline
    if options.destination != destination.DUCKDB:
        destination.check_server(pipeline)
        run.cleanup.enter_context(destination.server_lock(pipeline))
    configured = apps.resolve(options.overrides, options.apps)
    legacy = _legacy_app(options, configured)
    pending = pipeline.has_pending_data
    if pending:
        # A run that died while loading left its package: load it first (dlt's run()
        # would load it *instead of* this run's data).
        log.warning("loading what an interrupted run left behind first")
        pipeline.run()
    # After that package (made by an older version, its rows get the app too), before
    # anything reads the tables: the finish of a load needs the column on every table.
    upgrade.add_app_column(pipeline, legacy)
    if pending:
        after_load(pipeline)
    run.received = load_events(pipeline, spool_dir(run.database), run.context.run_id, legacy)
    run.context.interrupted = run.lock.interrupted()
    run.lock.write(run_id=run.context.run_id, phase="fetching",
                   started_at=utc(run.context.clock).isoformat(),
                   kind="poll" if options.poll else "records")
    return _source(run, configured)


def extract_and_load(run: Run, source: DltSource) -> None:
    """Ask the API (every app's resources) and load what it answered, in one dlt run."""
    run.pipeline.run(source)


def finish(run: Run) -> list[dict[str, Any]]:
    """After dlt's load: each run's status decided (:func:`after_load`), the models kept
    and published, the run recorded done; then a loaded run that must alert raises."""
    decided = after_load(run.pipeline)
    for row in run.rows:
        row["status"] = decided.get(row["run_id"], row["status"])
    run.lock.write(run_id=run.context.run_id, phase="done")
    rows = run.rows
    alert = alert_of(rows[-1]) if len(rows) == 1 and not rows[-1].get("app") else apps_alert(
        rows, run.failures)
    if alert is not None:
        raise JobError(*alert, row=rows[-1], rows=rows)
    return rows


def _source(run: Run, configured: list[apps.App]) -> DltSource:
    options = run.options
    if not configured:  # the single-app form, as it always was
        seed, extra = _seeds(run, options.seed, None, None)
        with bound(run.context):
            return tencent_desk(seed=seed, seed_table=options.seed_table, extra_seed=extra,
                                repoll_ended=options.repoll_ended, **options.overrides)
    per_app = []
    for app in _given_seed(options, configured):
        values = dict(app.values)
        seed, extra = _seeds(run, values.pop("seed", None), app.sdkappid, app.name)
        per_app.append((app.name, SourceConfig.of({
            **values, "seed": seed, "extra_seed": extra, "repoll_ended": options.repoll_ended})))
    with bound(run.context):
        return tencent_desk_apps(per_app)


def _seeds(run: Run, given: str | None, sdkappid: int | None, app: str | None
           ) -> tuple[str | None, str | None]:
    """(seed, extra seed): the sessions known from events added to a given seed."""
    if not run.options.poll:
        return None, None
    if run.work is None:
        run.work = Path(tempfile.mkdtemp(prefix="desk-events-"))
        run.cleanup.callback(shutil.rmtree, run.work, ignore_errors=True)
    from_events = run.work / f"sessions_from_events_{app or 'default'}.parquet"
    write_open_sessions(run.pipeline, from_events, now_s=run.context.clock.time(),
                        max_age_s=run.options.max_session_age_s, sdkappid=sdkappid)
    if given:
        return given, str(from_events)
    run.context.events_only.add(app)
    return str(from_events), None


def _legacy_app(options: RunOptions, configured: list[apps.App]) -> int | None:
    """The app the rows of a database made before several apps belong to."""
    given = options.overrides.get("sdkappid")
    return apps.sdkappid_of(given, "--sdkappid") if given else apps.legacy_sdkappid(configured)


def _given_seed(options: RunOptions, configured: list[apps.App]) -> list[apps.App]:
    """The apps, with ``--seed`` (and ``--seed-table``) given to the one app it can be for."""
    if options.seed is None:
        return configured
    if len(configured) > 1:
        raise ConfigError("--seed names no app: with several apps set seed under "
                          "[sources.tencent_desk.apps.<name>], or pick one app with --app")
    (app,) = configured
    values = {**app.values, "seed": options.seed, "seed_table": options.seed_table}
    return [apps.App(app.name, app.sdkappid, values)]


