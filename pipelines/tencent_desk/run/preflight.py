"""What a run checks before it takes the lock or loads the spool: the seed options, where
it writes, every setting. Light on imports, so that a command line to fix is told so in a
fraction of the second that importing the job (dlt, pyarrow, the client) costs."""

from __future__ import annotations

from pathlib import Path

from tencent_desk.core.errors import ConfigError, JobError
from tencent_desk.run.database import local_anchor
from tencent_desk.run.options import RunOptions


def checked(options: RunOptions) -> Path:
    """``options`` checked as the run would find them, the command line's first; returns
    where the run writes (:func:`local_anchor`). Raises :class:`JobError`, one line."""
    _check_seed(options)
    database = local_anchor(options.destination, options.database, options.state_dir)
    from tencent_desk.core import apps  # dlt's config: half a second, after the above

    try:
        apps.check_settings()
    except ConfigError as exc:
        raise JobError(str(exc)) from None
    return database


def _check_seed(options: RunOptions) -> None:
    """What the seed options say that the source would refuse, or ignore."""
    if options.seed_table and not options.seed:
        raise JobError(f"--seed-table {options.seed_table!r} names a table in the --seed "
                       "DuckDB database: give --seed too")
    if options.seed:
        from tencent_desk.job.seeds import SeedError, SeedSpec  # pyarrow: only for a seed

        try:
            SeedSpec(Path(options.seed), options.seed_table).format  # noqa: B018
        except SeedError as exc:
            raise JobError(str(exc)) from None
