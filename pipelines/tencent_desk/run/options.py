"""What a run is asked to do: the command line's options (or a test's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tencent_desk.core import settings
from tencent_desk.job import destination


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
