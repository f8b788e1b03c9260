"""How a run ends for a scheduler: the exit code and one line for what stopped it
(:func:`explain`), and for a loaded run that must alert (:func:`alert_of`, :func:`apps_alert`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.exceptions import DltException
from dlt.pipeline.exceptions import PipelineStepFailed
from tencent_desk.api.client import FatalError, first_error
from tencent_desk.api.outage import Outage
from tencent_desk.core import redact
from tencent_desk.core.errors import ConfigError
from tencent_desk.job import destination, space
from tencent_desk.job.runs import COMPLETE, FAILED, OUTAGE
from tencent_desk.job.seeds import SeedError
from tencent_desk.run.database import database_problem

# Exit codes of a run that was loaded but must alert: the API unreachable (the run cut
# short), or more keys in error than max_error_share.
EXIT_OUTAGE = 5
EXIT_TOO_MANY_ERRORS = 6
# Several apps, some of which did not complete (or must alert) while others did: those were
# loaded all the same. When every app has the same problem, its own code instead.
EXIT_SOME_APPS = 7


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


def explain(exc: BaseException, database: Path, pipeline: Any = None) -> tuple[str, int]:
    """The one line (and exit code) for an exception that stopped the run; ``pipeline``:
    to say how much a full disk must make room for."""
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
    if space.no_space(cause):
        return redact.redact(space.message(cause, database, pipeline)), 3
    if isinstance(cause, duckdb.Error | OSError):
        return redact.redact(database_problem(database, cause)), 3
    text = redact.redact(str(cause).strip().splitlines()[0] if str(cause).strip() else "")
    return f"unexpected error: {type(cause).__name__}: {text[:300]} (rerun with " \
           "--log-level DEBUG for details)", 1
