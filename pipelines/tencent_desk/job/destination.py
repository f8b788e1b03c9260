"""Where a run loads: a DuckDB file (the default) or a PostgreSQL server, and what is
particular to a server: the job's local folder, the check before a run, its errors.

The job keeps local files beside its data: a lock and journal (one run at a time) and the
receiver's spool. On DuckDB they sit next to the file (``desk.duckdb.lock``,
``desk.duckdb.spool/``); with a server they sit in ``--state-dir`` (``DIR/desk.lock``,
``DIR/desk.spool/``). Credentials come from dlt's config and secrets, as for any dlt
pipeline: ``[destination.postgres.credentials]`` or ``DESTINATION__POSTGRES__CREDENTIALS``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tencent_desk.core import redact, settings
from tencent_desk.core.errors import JobError

DUCKDB, POSTGRES = "duckdb", "postgres"
DESTINATIONS = (DUCKDB, POSTGRES)
ANCHOR = settings.ANCHOR
CREDENTIALS = ("[destination.postgres.credentials] in .dlt/secrets.toml or "
               "DESTINATION__POSTGRES__CREDENTIALS")

# libpq's words for a server that is not there, or does not answer (no SQLSTATE then).
_UNREACHABLE = ("connection refused", "could not connect", "timeout expired",
                "could not translate host name", "no route to host", "server closed the "
                "connection", "network is unreachable", "connection timed out")


def anchor(destination: str, database: Path | None, state_dir: Path | None) -> Path:
    """The path the job's local files are named after; ``ValueError`` says what to set."""
    if destination == DUCKDB:
        if database is None:
            raise ValueError("--database is required: the DuckDB file to load")
        return database.expanduser().absolute()
    if state_dir is None:
        raise ValueError(f"--state-dir is required with --destination {destination}: the "
                         "local folder for the job's lock and the receiver's spool")
    return state_dir.expanduser().absolute() / ANCHOR


def server() -> Any:
    """dlt's PostgreSQL destination, credentials from dlt's config (see :func:`credentials`).
    Without UNIQUE constraints: dlt loads at least once (a load job committed just before a
    crash is run again), and a constraint on ``_dlt_id`` would turn the second copy of a
    state row into a failed run; the job drops copies of its own rows itself
    (``run.post_load``)."""
    import dlt

    return dlt.destinations.postgres(credentials=credentials(), create_indexes=False)


def credentials() -> Any:
    """``[destination.postgres.credentials]`` resolved here rather than by dlt, whose spec
    demands a password: trust, peer and certificate authentication and ``~/.pgpass`` need
    none (libpq finds it). The connect timeout defaults to 10 s (dlt's is 15 s; see
    :mod:`server_credentials`); ``connect_timeout`` in the URL's query or the credentials
    sets it."""
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigFieldMissingException
    from dlt.common.exceptions import DltException
    from tencent_desk.job.server_credentials import ServerCredentials

    try:
        found = resolve_configuration(ServerCredentials(),
                                      sections=("destination", "postgres", "credentials"))
    except ConfigFieldMissingException as exc:
        raise JobError(f"missing PostgreSQL credentials ({', '.join(exc.fields)}): set "
                       f"{CREDENTIALS}, e.g. postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE "
                       "(no password with trust, peer or certificate authentication, or "
                       "one in ~/.pgpass)", 2) from None
    except DltException as exc:  # e.g. not a URL
        raise JobError(f"PostgreSQL credentials unusable: {redact.redact(str(exc))[:200]}: "
                       f"check {CREDENTIALS}", 2) from None
    redact.register(str(found.password or ""))
    return found


def check_server(pipeline: Any) -> None:
    """Connect once before asking the API anything, so that a server down, a wrong password
    or no permission stops the run at once (explained by :func:`problem`)."""
    with pipeline.sql_client() as client:
        redact.register(str(client.credentials.password or ""))
        client.execute_sql("SELECT 1")
        if not client.has_dataset():
            client.create_dataset()  # fails now, not after polling, without CREATE rights


class Busy(Exception):
    """Another run holds the dataset on the server (exit code 3)."""


# One run per dataset on a server, whatever the --state-dir of each: a session-level
# advisory lock, held by one connection for the run and released when it closes (with the
# process, even on kill -9).
LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext(%s))"


@contextlib.contextmanager
def server_lock(pipeline: Any) -> Iterator[None]:
    with pipeline.sql_client() as client:
        ((got,),) = client.execute_sql(LOCK_SQL, lock_key(pipeline.dataset_name))
        if not got:
            raise Busy(f"another desk-sessions run is writing dataset "
                       f"{pipeline.dataset_name} on this PostgreSQL server (from another "
                       "--state-dir or host): wait for it to finish")
        yield


def lock_key(dataset: str) -> str:
    return f"desk-sessions|{dataset}"


def problem(exc: BaseException) -> tuple[str, int] | None:
    """The one line (and exit code) for a PostgreSQL error, or None for any other."""
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - the postgres extra is a dependency
        return None
    if isinstance(exc, Busy):
        return str(exc), 3
    if not isinstance(exc, psycopg2.Error):
        return None
    text = redact.redact(str(exc).strip())
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    first = first.removeprefix("FATAL:").strip()[:200]
    code = getattr(exc, "pgcode", None) or ""
    lower = text.lower()
    if code == "28P01" or "password authentication failed" in lower or code.startswith("28"):
        return (f"PostgreSQL refused the credentials ({first}): check the user and password "
                f"in {CREDENTIALS}", 2)
    if code == "3D000" or ("database" in lower and "does not exist" in lower):
        return f"PostgreSQL: {first}: create it, or fix the database in {CREDENTIALS}", 2
    if code == "42501":
        return (f"no permission on PostgreSQL ({first}): grant the user CREATE on the "
                "database (or the schema of --dataset) and on its tables", 3)
    if any(word in lower for word in _UNREACHABLE):
        return (f"the PostgreSQL server cannot be reached ({first}): is it running? check "
                f"host and port in {CREDENTIALS}", 3)
    return f"cannot use the PostgreSQL destination: {first}", 3
