"""One app of several, as a user names it (``--app``, ``DESK_APP``): its sdkappid. Light on
imports (no pandas; dlt only for a server), so that a command can refuse an app the data
does not hold before it loads what its figures need."""

from __future__ import annotations

from pathlib import Path

from tencent_desk.readers.apps import apps_in, pick
from tencent_desk.readers.snapshot import Reader


def apps_held(database: Path, dataset: str) -> list[tuple[str | None, int]]:
    """The (name, sdkappid) pairs of ``dataset`` in the snapshot published beside
    ``database``."""
    files = Reader(database)
    try:
        return apps_in(files.connection(), dataset)
    finally:
        files.close()


def app_id(where: Path | str, dataset: str, app: str, option: str = "DESK_APP") -> int:
    """An app as an sdkappid: a name as its runs record it, or an sdkappid, either one the
    dataset holds (looked up on a server without pulling anything). ``option``: how the
    user gave it, for the message."""
    if isinstance(where, Path):
        return pick(apps_held(where, dataset), dataset, app, option)
    from tencent_desk.readers import warehouse  # dlt: only for a server

    server = warehouse.Reader(warehouse.destination(where), dataset)
    try:
        return pick(server.apps(), dataset, app, option)
    finally:
        server.close()
