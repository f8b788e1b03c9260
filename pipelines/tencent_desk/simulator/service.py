"""One agent group's queue under a staffing schedule: a discrete-event simulation, pure.

Customers queue in order of arrival and are answered first come, first served. A customer
takes a chat slot of a logged-in agent when one is free (the agent holding the fewest chats,
the lowest index on a tie), or leaves when the wait reaches its patience first. Agents
``0 .. n-1`` are logged in while the schedule says ``n``: an agent past ``n`` takes no new
chat and finishes the chats held. A chat holds its slot for the offer (ringing) time and then
the handling time; handling is the customer's own work times ``1 + slowdown * (k - 1)``, k
being the chats the agent holds once it takes this one (an agent with more chats answers
each more slowly).

Written by hand, not with simpy or ciw: the logout rule, per-agent slots and the
concurrency slowdown are a few lines here, and this loop runs 10 weeks in seconds.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Served:
    """Per customer, in the order given: when a slot was taken (NaN: left the queue), by which
    agent of the group (-1: none) and the handling time it got (NaN: none)."""

    start: np.ndarray
    agent: np.ndarray
    handle_s: np.ndarray


def serve_group(queued_at: np.ndarray, patience_s: np.ndarray, offer_s: np.ndarray,
                work_s: np.ndarray, staffing: np.ndarray, start: float, interval_s: float,
                slots: int, slowdown: float = 0.0) -> Served:
    """Run one group's queue; ``queued_at`` must be sorted. ``staffing[k]``: agents logged in
    over ``[start + k * interval_s, start + (k + 1) * interval_s)``."""
    n = len(queued_at)
    if n and np.any(np.diff(queued_at) < 0):
        raise ValueError("queued_at must be sorted")
    staff = [int(a) for a in staffing]
    held = [0] * (max(staff) if staff else 0)
    q, deadline = queued_at.tolist(), (queued_at + patience_s).tolist()
    offer, work = offer_s.tolist(), work_s.tolist()
    out_start, out_agent, out_handle = [math.nan] * n, [-1] * n, [math.nan] * n
    done: list[tuple[float, int, int]] = []  # (slot free at, sequence, agent)
    waiting: deque[int] = deque()
    logged = staff[0] if staff else 0
    free = logged * slots
    i, k, seq, inf = 0, 1, 0, math.inf
    while True:
        t_arrive = q[i] if i < n else inf
        t_done = done[0][0] if done else inf
        t_shift = start + k * interval_s if k < len(staff) else inf
        if t_done == t_arrive == t_shift == inf or (
                t_done == t_arrive == inf and not waiting):
            break
        if t_done <= t_arrive and t_done <= t_shift:  # a chat ends before anything else
            now, _, a = heapq.heappop(done)
            held[a] -= 1
            if a < logged:
                free += 1
        elif t_shift <= t_arrive:  # agents log in or out
            now, logged = t_shift, staff[k]
            k += 1
            free = sum(slots - h for h in held[:logged])
        else:
            now = t_arrive
            waiting.append(i)
            i += 1
        while free > 0 and waiting:
            j = waiting.popleft()
            if deadline[j] < now:
                continue  # left at its deadline: no slot was free before
            a = min(range(logged), key=held.__getitem__)
            held[a] += 1
            free -= 1
            handle = work[j] * (1.0 + slowdown * (held[a] - 1))
            out_start[j], out_agent[j], out_handle[j] = now, a, handle
            seq += 1
            heapq.heappush(done, (now + offer[j] + handle, seq, a))
    return Served(np.array(out_start, dtype=float), np.array(out_agent, dtype=np.int64),
                  np.array(out_handle, dtype=float))
