"""The batch job: one run of the pipeline into a DuckDB file, with a lock, progress, a
summary, and one clear line for every fatal problem."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pyarrow as pa
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.exceptions import DltException
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.pipeline.exceptions import PipelineStepFailed
from tencent_desk import tencent_desk, tencent_desk_apps
from tencent_desk.api import states
from tencent_desk.api.client import FatalError, first_error
from tencent_desk.api.outage import Outage
from tencent_desk.core import apps, redact, settings
from tencent_desk.core.clock import SystemClock, utc
from tencent_desk.core.errors import ConfigError, JobError
from tencent_desk.core.settings import TRUTH_SCHEMA
from tencent_desk.intake.spool import spool_dir
from tencent_desk.job import destination, upgrade
from tencent_desk.job.event_load import EventsLoaded, load_events, write_open_sessions
from tencent_desk.job.record_source import summary_line as records_summary
from tencent_desk.job.runs import COMPLETE, FAILED, OUTAGE, final_status, new_run_id
from tencent_desk.job.seeds import SeedError
from tencent_desk.models import intervals_remote, snapshot, timeline_remote
from tencent_desk.run.post_load import after_load, for_readers

log = logging.getLogger("desk_sessions")


# Exit codes of a run that was loaded but must alert: the API unreachable (the run cut
# short), or more keys in error than max_error_share.
EXIT_OUTAGE = 5
EXIT_TOO_MANY_ERRORS = 6
# Several apps, some of which did not complete (or must alert) while others did: those were
# loaded all the same. When every app has the same problem, its own code instead.
EXIT_SOME_APPS = 7



@dataclass
class RunOptions:
    seed: str | None  # None: only the sessions known from received events
    database: Path | None  # the DuckDB file (None with a server destination)
    dataset: str = settings.DEFAULT_DATASET
    seed_table: str | None = None
    pipelines_dir: str | None = None
    repoll_ended: bool = False
    # None: taken from dlt config (.dlt/config.toml, SOURCES__TENCENT_DESK__*) or default.
    # Not in repr: it may hold secret_key or usersig.
    overrides: dict[str, Any] = field(default_factory=dict, repr=False)
    progress: bool | None = None  # None: a bar on a terminal, log lines otherwise
    max_session_age_s: float = settings.DEFAULT_MAX_SESSION_AGE_H * 3600.0
    lock_wait_s: float = settings.DATABASE_LOCK_WAIT_S
    poll: bool = True  # False: load session records only (``desk-sessions records``)
    destination: str = destination.DUCKDB  # or postgres: credentials from dlt's config
    state_dir: Path | None = None  # with a server: the job's lock, journal and spool
    apps: list[str] | None = None  # named apps to run (None: every configured one)


@functools.cache
def pipeline_for(database: Path, dataset: str, pipelines_dir: str | None = None,
                 kind: str = destination.DUCKDB) -> dlt.Pipeline:
    """One dlt pipeline (working folder, state) per database file (or, with a server, per
    state folder's anchor) and dataset; kept for the process, as building one resolves
    much of dlt's configuration."""
    if kind != destination.DUCKDB:
        tag = hashlib.sha1(f"{database.resolve()}|{dataset}|{kind}".encode()).hexdigest()[:8]
        return dlt.pipeline(pipeline_name=f"{settings.PIPELINE_NAME}_{tag}",
                            destination=destination.server(), dataset_name=dataset,
                            pipelines_dir=pipelines_dir)
    tag = hashlib.sha1(f"{database.resolve()}|{dataset}".encode()).hexdigest()[:8]
    # DuckDB's default memory_limit is 80% of RAM: loading one run's rows would otherwise
    # hold them all in memory at once (+170 MB at 1M rows; about +65 MB with this limit).
    # One thread, no insertion order: the merge of session_records deduplicates by a window
    # function, which overruns the limit with several threads (1M records: out of memory).
    credentials = DuckDbCredentials(str(database), global_config={
        "memory_limit": settings.DESTINATION_MEMORY_LIMIT, "threads": 1,
        "preserve_insertion_order": False})
    return dlt.pipeline(
        pipeline_name=f"{settings.PIPELINE_NAME}_{tag}",
        destination=dlt.destinations.duckdb(credentials), dataset_name=dataset,
        pipelines_dir=pipelines_dir)


class Journal:
    """A small file next to the database, held locked for the whole run: one job per
    database at a time (DuckDB allows one writer, but only while loading: this makes a
    second job fail before it polls anything), and a record of the run in progress.

    A run that dies while fetching left nothing to load: the next run records it in
    ``runs`` as ``interrupted``. One that dies while loading left a complete package,
    which dlt loads at the start of the next run.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd = -1

    def __enter__(self) -> Journal:
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JobError(f"cannot write next to the database ({self.path}): "
                           f"{exc.strerror}; choose a folder you can write to",
                           exit_code=3) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = self.read().get("pid", "?")
            os.close(self._fd)
            raise JobError(f"another desk-sessions run (pid {other}) is writing "
                           f"{self.path.with_suffix('')}: wait for it to finish",
                           exit_code=3) from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(self._fd, 4096, 0) or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, **entry: Any) -> None:
        data = json.dumps({**entry, "pid": os.getpid()}, default=str).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def interrupted(self) -> list[dict[str, Any]]:
        """The ``runs`` row of a previous run that stopped before it had anything to load:
        ``failed`` (with its error) or ``interrupted`` (killed)."""
        last = self.read()
        if last.get("phase") not in ("fetching", "failed") or not last.get("run_id"):
            return []
        return [{"run_id": last["run_id"],
                 "status": "interrupted" if last["phase"] == "fetching" else "failed",
                 "error": last.get("error"),
                 "started_at": datetime.fromisoformat(last["started_at"]),
                 "kind": last.get("kind", "poll")}]


def check_folder(database: Path, option: str = "--database path") -> None:
    folder = database.parent
    if not folder.is_dir():
        raise JobError(f"folder {folder} does not exist: create it or choose another "
                       f"{option}", exit_code=3)
    if not os.access(folder, os.W_OK):
        raise JobError(f"folder {folder} is not writable: choose another {option}",
                       exit_code=3)


def local_anchor(options: RunOptions) -> Path:
    """The DuckDB file, or with a server ``--state-dir``'s anchor (see :mod:`destination`),
    its folder checked."""
    try:
        anchor = destination.anchor(options.destination, options.database, options.state_dir)
    except ValueError as exc:
        raise JobError(str(exc), exit_code=2) from None
    on_server = options.destination != destination.DUCKDB
    check_folder(anchor, "--state-dir" if on_server else "--database path")
    return anchor


def check_database(database: Path, wait_s: float = settings.DATABASE_LOCK_WAIT_S,
                   sleep: Any = time.sleep) -> None:
    """Fail early, in one line, when the destination cannot be opened for writing; a lock
    held by another process is waited for a while (a moment's query against the job's own
    file by some other tool), then explained."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            duckdb.connect(str(database)).close()
            return
        except duckdb.Error as exc:
            if not _locked(exc) or time.monotonic() >= deadline:
                raise JobError(database_problem(database, exc), exit_code=3) from None
            sleep(0.5)


def _locked(exc: BaseException) -> bool:
    # DuckDB's own lock messages only: "could not allocate block" is no lock
    text = str(exc).lower()
    return "lock on file" in text or "conflicting lock" in text


def database_problem(database: Path, exc: BaseException) -> str:
    text = str(exc)
    if _locked(exc):
        pid = next((w for w in text.replace(")", " ").split() if w.isdigit()), None)
        who = f"process {pid}" if pid else "another process"
        return (f"database {database} is held open by {who} (DuckDB: no writer while "
                "another process has it open, even read-only): close it there; readers "
                f"should open {snapshot.paths(database)[1].name}, published by each run")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot use database {database}: {first[:200]}"


class Progress:
    """A bar on a terminal; a plain log line every ``every`` seconds otherwise (cron)."""

    def __init__(self, enabled: bool | None, every: float = 10.0) -> None:
        self._tty = sys.stderr.isatty() if enabled is None else enabled
        self._every = every
        self._bar: Any = None
        self._done = 0
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}
        self._t0 = self._last = time.monotonic()

    def __call__(self, rows: int, total: int) -> None:
        self._done += rows
        if self._tty:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit="key", desc="polling", file=sys.stderr)
            self._bar.total = total  # several apps: their keys add up as each starts
            self._bar.update(rows)
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            rate = self._done / max(now - self._t0, 1e-9)
            log.info("polled %d/%d keys (%.0f%%), %.0f keys/s", self._done, total,
                     100.0 * self._done / max(total, 1), rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def of(self, app: str) -> Callable[[int, int], None]:
        """The progress of one app of several (their batches come from dlt's threads)."""
        def batch(rows: int, total: int) -> None:
            with self._lock:
                self._totals[app] = total
                self(rows, sum(self._totals.values()))
        return batch


def _lean_arrow_pool() -> None:
    # Arrow's default pool (mimalloc) keeps some 50 MB of freed batches for itself over a
    # long poll; jemalloc (or malloc) gives them back.
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a build without jemalloc
        pa.set_memory_pool(pa.system_memory_pool())


def run(options: RunOptions, *, clock: Any = None) -> dict[str, Any]:
    """Run the pipeline once; returns the ``runs`` row (the last app's, with several: see
    :func:`run_all`). Raises :class:`JobError`."""
    return run_all(options, clock=clock)[-1]


def run_all(options: RunOptions, *, clock: Any = None,
            pace_clocks: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the pipeline once for every configured app; returns their ``runs`` rows (one in
    the single-app form). Raises :class:`JobError` (with the rows when they were loaded).
    ``pace_clocks``: app name -> the clock pacing its calls (virtual ones in tests)."""
    redact.install()
    _lean_arrow_pool()
    database = local_anchor(options)
    on_server = options.destination != destination.DUCKDB
    with Journal(database) as journal, contextlib.ExitStack() as cleanup:
        if not on_server:
            check_database(database, options.lock_wait_s)
        pipeline = pipeline_for(database, options.dataset, options.pipelines_dir,
                                options.destination)
        progress = Progress(options.progress)
        runs: list[dict[str, Any]] = []
        clock = clock or SystemClock()
        run_id = new_run_id(clock)

        received = EventsLoaded()
        failures: dict[str, int] = {}  # app -> exit code of what stopped it
        fetched_lock = threading.Lock()  # several apps' rows come from dlt's threads
        events_only: set[str | None] = set()  # apps asking only about sessions from events

        def fetched(row: dict[str, Any]) -> None:
            row.update(events_loaded=received.records, events_unknown=received.unknown)
            if row.get("app") in events_only and row.get("status") != FAILED:
                row["seed"] = "sessions from events"
            with fetched_lock:
                runs.append(row)
                journal.write(run_id=run_id, phase="loading")

        try:
            if on_server:
                destination.check_server(pipeline)
                cleanup.enter_context(destination.server_lock(pipeline))
            if pipeline.has_pending_data:
                # A run that died while loading left its package: load it first (dlt's
                # run() would load it *instead of* this run's data).
                log.warning("loading what an interrupted run left behind first")
                pipeline.run()
                after_load(pipeline)
            configured = apps.resolve(options.overrides, options.apps)
            legacy = _legacy_app(options, configured)
            upgrade.add_app_column(pipeline, legacy)
            received = load_events(pipeline, spool_dir(database), run_id, legacy)
            interrupted = journal.interrupted()
            journal.write(run_id=run_id, phase="fetching", started_at=utc(clock).isoformat(),
                          kind="poll" if options.poll else "records")
            work = Path(tempfile.mkdtemp(prefix="desk-events-"))
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)

            def seeds(given: str | None, sdkappid: int | None, app: str | None
                      ) -> tuple[str | None, str | None]:
                """(seed, extra seed): the sessions known from events added to a given seed."""
                if not options.poll:
                    return None, None
                from_events = work / f"sessions_from_events_{app or 'default'}.parquet"
                write_open_sessions(pipeline, from_events, now_s=clock.time(),
                                    max_age_s=options.max_session_age_s, sdkappid=sdkappid)
                if given:
                    return given, str(from_events)
                events_only.add(app)
                return str(from_events), None

            if not configured:  # the single-app form, as it always was
                seed, extra = seeds(options.seed, None, None)
                source = tencent_desk(seed=seed, seed_table=options.seed_table,
                                      extra_seed=extra, repoll_ended=options.repoll_ended,
                                      clock=clock, on_batch=progress, on_run=fetched,
                                      run_id=run_id, interrupted=interrupted,
                                      **options.overrides)
            else:
                per_app = []
                for n, app in enumerate(_given_seed(options, configured)):
                    values = dict(app.values)
                    seed, extra = seeds(values.pop("seed", None), app.sdkappid, app.name)

                    def failed(exc: BaseException, name: str = app.name) -> str:
                        message, failures[name] = explain(exc, database)
                        return message

                    per_app.append({
                        **values, "seed": seed, "extra_seed": extra, "app": app.name,
                        "repoll_ended": options.repoll_ended, "clock": clock,
                        "on_batch": progress.of(app.name), "on_run": fetched,
                        "run_id": f"{run_id}-{app.name}", "on_failed": failed,
                        "interrupted": interrupted if n == 0 else (),
                        "pace_clock": (pace_clocks or {}).get(app.name)})
                source = tencent_desk_apps(per_app)
            pipeline.run(source)
            after_load(pipeline)
            for row in runs:
                row["status"] = final_status(row)
            journal.write(run_id=run_id, phase="done")
        except BaseException as exc:
            message, code = explain(exc, database)
            last = journal.read()
            if last.get("phase") == "fetching":  # nothing to load: the next run records it
                journal.write(**{**last, "phase": "failed", "error": message})
            raise JobError(message, code) from None
        finally:
            progress.close()
    alert = alert_of(runs[-1]) if len(runs) == 1 and not runs[-1].get("app") else apps_alert(
        runs, failures)
    if alert is not None:
        raise JobError(*alert, row=runs[-1], rows=runs)
    return runs


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
                          "[sources.tencent_desk.core.apps.<name>], or pick one app with --app")
    (app,) = configured
    values = {**app.values, "seed": options.seed, "seed_table": options.seed_table}
    return [apps.App(app.name, app.sdkappid, values)]


def apps_alert(rows: list[dict[str, Any]], failures: dict[str, int]) -> tuple[str, int] | None:
    """The one line (and exit code) for a run of several apps where some did not complete
    or must alert: each such app with its reason. Every app with the same problem: that
    problem's own code; otherwise :data:`EXIT_SOME_APPS`."""
    problems: list[tuple[str, int]] = []
    for row in rows:
        name = row.get("app") or row["run_id"]
        if row.get("status") == FAILED:
            problems.append((f"app {name}: {row['error']}", failures.get(str(name), 1)))
        elif (alert := alert_of(row)) is not None:
            problems.append((f"app {name}: {alert[0]}", alert[1]))
    if not problems:
        return None
    codes = {code for _, code in problems}
    code = codes.pop() if len(problems) == len(rows) and len(codes) == 1 else EXIT_SOME_APPS
    done = [str(r.get("app")) for r in rows if r.get("status") == COMPLETE
            and alert_of(r) is None]
    tail = f" (loaded and complete: {', '.join(done)})" if done else ""
    return "; ".join(message for message, _ in problems) + tail, code


def alert_of(row: dict[str, Any]) -> tuple[str, int] | None:
    """The one line (and exit code) for a loaded run a scheduler must be told about."""
    if row["status"] == OUTAGE:
        return (f"{row['error']}; {row['not_asked']} of {row['keys']} keys not asked "
                f"(run {row['run_id']} loaded with status {OUTAGE})", EXIT_OUTAGE)
    limit = row.get("max_error_share")
    if limit is not None and row["rows"] and row["errors"] > limit * row["rows"]:
        return (f"{row['errors']} of {row['rows']} keys ended in error "
                f"({row['errors'] / row['rows']:.1%}, more than max_error_share {limit:g}): "
                f"see error_code and error_info in session_states for run {row['run_id']}",
                EXIT_TOO_MANY_ERRORS)
    return None


def publish(database: Path, dataset: str = settings.DEFAULT_DATASET, rebuild: bool = False,
            lock_wait_s: float = settings.DATABASE_LOCK_WAIT_S) -> int:
    """Publish the snapshot readers read without a run (``rebuild``: from scratch, e.g.
    after deleting it or upgrading from a version that did not publish); returns rows."""
    database = database.expanduser().absolute()
    if not database.exists():
        raise JobError(f"database {database} not found: check --database", exit_code=2)
    with Journal(database):
        check_database(database, lock_wait_s)
        if rebuild:
            folder, catalog = snapshot.paths(database)
            shutil.rmtree(folder, ignore_errors=True)
            catalog.unlink(missing_ok=True)
        try:
            with duckdb.connect(str(database)) as con:
                others = con.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables WHERE "
                    "table_schema = ? AND table_type = 'BASE TABLE'", [TRUTH_SCHEMA]).fetchall()
                return for_readers(con, database, dataset, others)
        except (duckdb.Error, OSError) as exc:
            raise JobError(redact.redact(database_problem(database, exc)), 3) from None


def explain(exc: BaseException, database: Path) -> tuple[str, int]:
    """The one line (and exit code) for an exception that stopped the run."""
    cause = exc
    while isinstance(cause, PipelineStepFailed | DltException | BaseExceptionGroup) and (
            cause.__cause__ or cause.__context__ or isinstance(cause, BaseExceptionGroup)):
        cause = first_error(cause) if isinstance(cause, BaseExceptionGroup) else (
            cause.__cause__ or cause.__context__)  # type: ignore[assignment]
        if isinstance(cause, ConfigFieldMissingException):
            break
    if isinstance(cause, KeyboardInterrupt):
        return "interrupted: nothing of this run was loaded", 130
    if isinstance(cause, ConfigFieldMissingException) and "Postgres" in str(cause.spec_name):
        return f"missing PostgreSQL credentials: set {destination.CREDENTIALS}", 2
    if isinstance(cause, ConfigFieldMissingException):
        missing = ", ".join(cause.fields)
        env = ", ".join(f"SOURCES__TENCENT_DESK__{f.upper()}" for f in cause.fields)
        return (f"missing configuration: {missing}: set it in .dlt/config.toml (secrets in "
                f".dlt/secrets.toml) under [sources.tencent_desk], or as {env}", 2)
    if isinstance(cause, FatalError):
        return f"the Desk API refused the run: {cause}", 4
    if isinstance(cause, Outage):
        return redact.redact(str(cause)), EXIT_OUTAGE
    if isinstance(cause, ConfigError | SeedError):
        return redact.redact(str(cause)), 2
    if (server := destination.problem(cause)) is not None:
        return server
    if isinstance(cause, duckdb.Error | OSError):
        return redact.redact(database_problem(database, cause)), 3
    text = redact.redact(str(cause).strip().splitlines()[0] if str(cause).strip() else "")
    return f"unexpected error: {type(cause).__name__}: {text[:300]} (rerun with " \
           "--log-level DEBUG for details)", 1


def location(options: RunOptions) -> str | None:
    """Where a server destination is (never its password); None for a DuckDB file."""
    if options.destination == destination.DUCKDB:
        return None
    pipeline = pipeline_for(local_anchor(options), options.dataset, options.pipelines_dir,
                            options.destination)
    c = pipeline.sql_client().credentials  # resolved, not connected
    return f"PostgreSQL {c.username}@{c.host}:{c.port}/{c.database}"


def publish_on_server(options: RunOptions) -> int:
    """``publish`` with a server destination: no snapshot (readers read the server), the
    timeline and the interval tables brought up to date as a run does; returns the sessions
    rewritten."""
    anchor = local_anchor(options)
    with Journal(anchor):
        pipeline = pipeline_for(anchor, options.dataset, options.pipelines_dir,
                                options.destination)
        try:
            destination.check_server(pipeline)
            with destination.server_lock(pipeline):
                rewritten = timeline_remote.upkeep(pipeline)
                intervals_remote.upkeep(pipeline)
                return rewritten
        except Exception as exc:
            raise JobError(*explain(exc, anchor)) from None


def summary(row: dict[str, Any], database: Path, dataset: str,
            where: str | None = None) -> str:
    """The closing lines of a run, for people. ``where``: a server destination."""
    counts = ", ".join(f"{s} {row.get(f'n_{s}', 0)}" for s in states.ALL
                       if row.get(f"n_{s}"))
    took = (row["finished_at"] - row["started_at"]).total_seconds()
    read_from = (f"  read it from: {snapshot.paths(database)[1]} (or DESK_DUCKDB={database} "
                 "for the notebooks); never open the job's file itself") if where is None \
        else "  no snapshot published: readers read the server itself"
    data = where or str(database)
    if row.get("status") == FAILED:  # one app of several that could not run
        return (f"run {row['run_id']} (app {row.get('app')}, sdkappid {row.get('sdkappid')}): "
                f"failed after {took:.1f} s, {row['rows']} rows loaded: {row['error']}")
    if row.get("seed") == "-":  # records only
        return "\n".join([
            f"run {row['run_id']}{_app(row)}: {row['records']} session records in "
            f"{took:.1f} s",
            records_summary(row),
            f"  calls: {row['calls']} ({row['retries']} retries, {row['throttled']} "
            f"throttled), {row['calls_per_second']:.1f} calls/s at max_qps {row['max_qps']:g}",
            f"  data: {data} dataset {dataset} (tables session_records, record_runs)",
            read_from])
    return "\n".join(filter(None, [
        f"run {row['run_id']}{_app(row)}: {row['rows']} rows from {row['keys']} keys in "
        f"{took:.1f} s",
        f"  states: {counts or 'none'}",
        f"  seed: {row['seed_rows']} rows, {row['rejects']} rejected (table seed_rejects), "
        f"{row['duplicates']} repeated, {row['skipped_ended']} skipped as ended",
        f"  errors: {row['errors']} keys ended in error, {row['not_asked']} not asked "
        f"(status {row['status']})",
        f"  calls: {row['calls']} ({row['retries']} retries, {row['throttled']} throttled), "
        f"{row['calls_per_second']:.1f} calls/s at max_qps {row['max_qps']:g}",
        records_summary(row),
        f"  data: {data} dataset {dataset} (tables session_states, "
        "session_state_latest, runs, seed_rejects, session_events, session_timeline)",
        *([f"  events: {row['events_loaded']} received events loaded into session_events, "
           f"{row.get('events_unknown', 0)} with unknown names"]
          if row.get("events_loaded") else []),
        read_from,
    ]))


def _app(row: dict[str, Any]) -> str:
    return f" (app {row['app']}, sdkappid {row['sdkappid']})" if row.get("app") else ""
