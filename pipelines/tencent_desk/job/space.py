"""A full disk under the job, said in one line: the path that could not be written, the
room it has, and about how much the rows waiting in dlt's package need there."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path
from typing import Any

# A load writes a package's rows to DuckDB's WAL, then checkpoints them into the file, and
# the run publishes them again as Parquet for readers: about three times the package
# (Parquet too); DuckDB's own blocks and the models kept after the load (the timeline, the
# interval tables and their sketch, rewritten a few days at a time) on top.
FACTOR = 3
MARGIN = 6 << 20

_FILE = re.compile(r'file "([^"]+)"')


def no_space(exc: BaseException) -> bool:
    """The exception, or one it came from, is a full disk."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if "no space left on device" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def written_path(exc: BaseException, default: Path) -> Path:
    """The file the full disk refused, as the error names it; else ``default``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.filename:
            return Path(str(seen.filename))
        if (found := _FILE.search(str(seen))) is not None:
            return Path(found.group(1))
        seen = seen.__cause__ or seen.__context__
    return default


def pending_bytes(pipeline: Any) -> int:
    """Bytes of the load packages dlt keeps for the next run to load."""
    folder = Path(pipeline.working_dir) / "load" / "normalized"
    if not folder.is_dir():
        return 0
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def needed(pending: int) -> int:
    return FACTOR * pending + MARGIN


def _free(path: Path) -> int:
    for folder in (path, *path.parents):
        if folder.is_dir():
            return shutil.disk_usage(folder).free
    return 0


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def message(exc: BaseException, database: Path, pipeline: Any = None) -> str:
    """The one line for a full disk (exit code 3)."""
    path = written_path(exc, database)
    pending = pending_bytes(pipeline) if pipeline is not None else 0
    kept = (f"this run's rows ({_mb(pending)}) wait in dlt's package and load with the next "
            "run" if pending else "nothing was loaded")
    return (f"no space left on device writing {path}: about {_mb(needed(pending))} needed "
            f"there, {_mb(_free(path.parent))} free; {kept}")
