"""Which apps a dataset holds, asked alike of a snapshot's views and of a server."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from tencent_desk.models import timeline


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
