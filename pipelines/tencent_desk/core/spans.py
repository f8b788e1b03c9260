"""Spans of time given as two arrays, their starts and their ends: pure NumPy, shared by the
simulator's replay (agents busy per interval), the timeline's roster figures and the chats
an agent holds at once (the planner's and the report's)."""

from __future__ import annotations

import numpy as np


def union(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint spans, in order, covering the union of the ``[start, end)`` spans."""
    if not len(start):
        return start[:0], end[:0]
    order = np.argsort(start, kind="stable")
    s, e = start[order], end[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(s)) - 1
    return s[first], reach[last]


def held_at_starts(owner: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each span, how many spans of its ``owner`` (an integer key) are open just after
    it starts: its owner's starts so far minus its ends so far, ties included (a span
    ending as another starts is over). Integer times; an end past every start (or none
    yet: any larger value) keeps its order to them."""
    if not len(start):
        return np.zeros(0, np.int64)
    start = start.astype(np.int64)
    base, top = int(start.min()), int(start.max()) - int(start.min())
    # one key per owner and time: its starts at 0 .. top, its ends at -1 .. top + 1,
    # owners apart; every earlier owner's starts and ends both count and cancel out
    span = top + 3
    owner = owner.astype(np.int64) * span
    keys = owner + (start - base)
    ends = np.sort(owner + np.clip(end.astype(np.int64) - base, -1, top + 1))
    return np.searchsorted(np.sort(keys), keys, "right") - np.searchsorted(ends, keys, "right")
