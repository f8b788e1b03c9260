"""Which apps a dataset holds, asked alike of a snapshot's views and of a server."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from tencent_desk.core.sql import qualified
from tencent_desk.models import timeline

if TYPE_CHECKING:
    import duckdb


def apps_sql(columns: Mapping[str, Collection[str]], name: Callable[[str], str]) -> str | None:
    """The query of a dataset's (name, sdkappid) pairs, given its tables' ``columns`` and
    how to ``name`` a table: its runs' (no name: the single-app form's app, or runs from
    before apps had names), and the sdkappids of its sessions that no run names (a dataset
    loaded by callbacks and records alone has no runs). None: no table says."""
    runs, sessions = columns.get("runs", ()), columns.get(timeline.TABLE, ())
    parts = []
    if "sdkappid" in runs:
        parts.append(f"SELECT DISTINCT {'app' if 'app' in runs else 'NULL'} AS app, sdkappid "
                     f"FROM {name('runs')} WHERE sdkappid IS NOT NULL")
    if "sdkappid" in sessions:
        unnamed = (f" AND sdkappid NOT IN (SELECT sdkappid FROM {name('runs')} WHERE "
                   "sdkappid IS NOT NULL)" if parts else "")
        parts.append(f"SELECT DISTINCT NULL AS app, sdkappid FROM {name(timeline.TABLE)} "
                     f"WHERE sdkappid IS NOT NULL{unnamed}")
    return f"{' UNION '.join(parts)} ORDER BY 1, 2" if parts else None


def apps_in(con: duckdb.DuckDBPyConnection, dataset: str) -> list[tuple[str | None, int]]:
    """The (name, sdkappid) pairs of a dataset in a snapshot's views (:func:`apps_sql`)."""
    columns: dict[str, set[str]] = {}
    for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE "
            "table_schema = ?", [dataset]).fetchall():
        columns.setdefault(table, set()).add(column)
    sql = apps_sql(columns, lambda table: qualified(dataset, table))
    return [(app, int(sdkappid)) for app, sdkappid in con.execute(sql).fetchall()] if sql \
        else []


def pick(known: list[tuple[str | None, int]], dataset: str, app: str, option: str) -> int:
    """The sdkappid of ``app`` (a name or an sdkappid) among the (name, sdkappid) pairs a
    dataset holds; ValueError, one line naming them, for none or several. ``option``: how
    the user gave it, for the message."""
    given = f"{option} {app!r}" if option.startswith("-") else f"{option}={app!r}"
    ids = {int(sdkappid) for name, sdkappid in known
           if name == app or (app.isdigit() and sdkappid == int(app))}
    if not ids:
        listed = ", ".join(f"{name} ({sdkappid})" if name else f"{sdkappid} (no name)"
                           for name, sdkappid in known) or "none yet"
        raise ValueError(f"{given} is unknown: the apps of {dataset} are {listed}; give "
                         "a name or an sdkappid of those")
    if len(ids) > 1:  # the name was given to another app's credentials at some point
        raise ValueError(f"{given} has named several apps ("
                         f"{', '.join(map(str, sorted(ids)))}): give the sdkappid")
    return ids.pop()
