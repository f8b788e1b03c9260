"""Spans of time given as two arrays, their starts and their ends: pure NumPy, shared by the
simulator's replay (agents busy per interval) and the timeline's roster figures."""

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
