"""Sessions without an agent group, beside sessions with one: spread over the groups.

A session's group comes from its record ("the agent group that served", Desk's docs say),
so a session without one has no group: one that left the queue, if records list only the
sessions served (the docs leave it open), and each of today's until the records run loads
it. Planned as a group of their own, they would take the abandonments (and with them
patience), or today's arrivals, from the groups they belong to.

The one assumption, in this module only: a session without a group belongs to the groups as
the grouped sessions of its time do. For the queue, the grouped sessions asking in the same
15-minute interval; where none did, those of the same time of day over the weeks read; else
all of them. Patience's waits and handling go by the same rule at their own grain (day,
interval of the day). Where no session has a group (polls alone) nothing moves: the
sessions are planned as ``(none)``.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from tencent_desk.core.settings import NO_GROUP
from tencent_desk.planning.summary import Summary

# A level of the rule: the columns a session is matched on (none: the whole window), and
# the grouped sessions' weight per those columns and group.
Level = tuple[list[str], pd.DataFrame]


def spread(summed: Summary) -> Summary:
    """``summed`` with the sums of ``(none)`` moved to the groups, shared as the module
    says; counts become fractions."""
    q = summed.queue
    if not (q.group == NO_GROUP).any() or (q.group != NO_GROUP).sum() == 0:
        return summed
    asked = q[q.group != NO_GROUP].assign(w=lambda d: d.queued.astype(float))
    asked = asked.assign(day=asked.interval_start.dt.normalize(),
                         tod=asked.interval_start - asked.interval_start.dt.normalize())
    h = summed.handling
    chats = h[h.group != NO_GROUP].assign(w=lambda d: d.chats.astype(float))
    queue = _moved(q.assign(tod=q.interval_start - q.interval_start.dt.normalize()),
                   ["interval_start"], [(["interval_start"], asked), (["tod"], asked),
                                        ([], asked)])
    waits = _moved(summed.waits, ["day"], [(["day"], asked), ([], asked)])
    handling = _moved(h, ["day", "slot"], [(["day", "slot"], chats), (["slot"], chats),
                                           ([], chats)])
    held = _moved(summed.held, ["day", "held"], [(["day"], chats), ([], chats)])
    return replace(summed, queue=queue, waits=waits, handling=handling, held=held)


def _moved(table: pd.DataFrame, keys: list[str], levels: list[Level]) -> pd.DataFrame:
    """``table`` (group, ``keys``, sums) with its ``(none)`` rows shared among the groups by
    the first of ``levels`` that weighs them."""
    none = table.group == NO_GROUP
    if not none.any():
        return table
    values = [c for c in table.columns if c not in ("group", *keys, "tod")]
    left = table[none].drop(columns="group").reset_index(drop=True)
    left["row"] = range(len(left))
    parts = []
    for cols, weights in levels:
        w = weights[weights.w > 0].groupby([*cols, "group"], as_index=False).w.sum()
        matched = left.merge(w, on=cols) if cols else left.merge(w, how="cross")
        if matched.empty:
            continue
        share = matched.w / matched.groupby("row").w.transform("sum")
        matched[values] = matched[values].astype(float).mul(share, axis=0)
        parts.append(matched.drop(columns=["row", "w"]))
        left = left[~left.row.isin(matched.row)]
    # what nothing weighs (grouped sessions, but none answered) stays without a group
    parts.append(left.drop(columns="row").assign(group=NO_GROUP))
    out = pd.concat([table[~none].astype(dict.fromkeys(values, float)), *parts],
                    ignore_index=True)
    return out.groupby(["group", *keys], as_index=False)[values].sum()
