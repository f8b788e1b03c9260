"""The service target over a day rather than in every interval, as workforce-management
suites apply it: a group's service level for the day is its intervals' levels weighted by
their expected arrivals, and that must reach the target.

Staffing every interval to the target separately overshoots on a small desk: the fewest
whole agents reaching 80% in a quiet interval often give 90% or more. Starting from that
per-interval requirement, :func:`trim_to_day` takes agents away one agent-interval at a
time, always where the day loses the least weighted service level (expected arrivals x the
interval's drop), while the day stays at the target, no interval goes above the maximum
occupancy and an interval with arrivals expected keeps at least one agent.

Each removal costs one agent-interval, so taking the smallest losses first removes the most
agent-intervals for the service level the day can give up, exactly so where each interval's
service level is concave in its agents (each agent adds less than the one before).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

# (interval index, agents) -> (service level, occupancy) of that interval with that many
Level = Callable[[int, int], tuple[float, float]]


def day_service_level(agents: Sequence[int], arrivals: Sequence[float], level: Level) -> float:
    """The day's service level: each interval's, weighted by its expected arrivals (1 for
    a day expecting none)."""
    total = sum(w for w in arrivals if w > 0)
    if total <= 0:
        return 1.0
    return sum(w * level(i, n)[0] for i, (n, w) in enumerate(zip(agents, arrivals,
                                                                   strict=True)) if w > 0
               ) / total


def trim_to_day(agents: Sequence[int], arrivals: Sequence[float], level: Level,
                target_sl: float, max_occupancy: float = 1.0) -> list[int]:
    """Fewer agents than ``agents`` (each interval's own requirement) for the same day
    target: agents taken away where the arrivals-weighted loss of service level is the
    smallest, while the day's weighted level stays >= ``target_sl``, each interval's
    occupancy <= ``max_occupancy`` (an interval already above it keeps its agents) and
    an interval with ``arrivals`` > 0 keeps at least one agent. Intervals without arrivals
    expected (0 or NaN) are left as they are."""
    out = list(agents)
    if len(out) != len(arrivals):
        raise ValueError("agents and arrivals must have one value per interval")
    weights = [w if w > 0 else 0.0 for w in arrivals]  # NaN > 0 is False
    total = sum(weights)
    if total <= 0:
        return out
    memo: dict[tuple[int, int], tuple[float, float]] = {}

    def at(i: int, n: int) -> tuple[float, float]:
        if (i, n) not in memo:
            memo[(i, n)] = level(i, n)
        return memo[(i, n)]

    # slack: weighted service level above the target the day can still give up
    slack = sum(w * at(i, n)[0] for i, (n, w) in enumerate(zip(out, weights, strict=True))
                if w > 0) - target_sl * total
    heap: list[tuple[float, int]] = []

    def offer(i: int) -> None:
        """Queue interval i's next agent to take away, if it may go."""
        n = out[i]
        if weights[i] <= 0 or n <= 1:
            return
        sl, occ = at(i, n - 1)
        if occ > max_occupancy + 1e-12 or math.isnan(sl):
            return
        heapq.heappush(heap, (weights[i] * (at(i, n)[0] - sl), i))

    for i in range(len(out)):
        offer(i)
    while heap:
        loss, i = heapq.heappop(heap)
        if loss > slack + 1e-12:
            break  # the smallest loss left does not fit: no other does
        slack -= loss
        out[i] -= 1
        offer(i)
    return out
