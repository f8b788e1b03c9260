"""The rate limiter on a virtual clock: its guarantees hold whatever the timing."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import pytest
from tencent_desk.api.ratelimit import AdaptiveRateLimiter
from tencent_desk.core.clock import VirtualClock

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick


def _max_in_window(times: list[float], span: float = 1.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _run(limiter: AdaptiveRateLimiter, calls: int, tasks: int = 50,
         server_limit: int | None = None, clock: VirtualClock | None = None,
         arrival: Callable[[float], float] = lambda t: t) -> tuple[list, int]:
    """``tasks`` callers share the limiter; a server with a sliding one-second window of
    ``server_limit`` answers each call at once on the same clock, counting it at
    ``arrival(sent)`` (non-decreasing: a stall delivers the calls it held together)."""
    sent: list[float] = []
    window: deque[float] = deque()
    refused = 0

    async def caller(n: int) -> None:
        nonlocal refused
        for _ in range(n):
            t = await limiter.acquire()
            sent.append(t)
            throttled = False
            if server_limit is not None:
                at = arrival(t)
                while window and at - window[0] >= 1.0:
                    window.popleft()
                throttled = len(window) >= server_limit
                if not throttled:
                    window.append(at)
            refused += throttled
            limiter.answered(throttled)

    async def main() -> None:
        await asyncio.gather(*(caller(calls // tasks) for _ in range(tasks)))

    asyncio.run(main())
    return sent, refused


def test_never_more_than_max_rate_in_any_sliding_second():
    clock = VirtualClock(0)
    sent, _ = _run(AdaptiveRateLimiter(100, clock=clock), 3000)
    assert _max_in_window(sent) <= 100
    # and the limit is used: 3000 calls at 100/s take about 30 s, not much more
    assert (sent[-1] - sent[0]) < 3000 / 100 * 1.05


def test_no_burst_of_a_whole_second_at_the_start():
    sent, _ = _run(AdaptiveRateLimiter(200, clock=VirtualClock(0)), 400)
    assert _max_in_window(sent, 0.1) <= 200 * 0.1 + 200 * 0.05 + 1  # paced, small burst


def test_a_lower_server_limit_is_found_without_a_storm():
    clock = VirtualClock(0)
    limiter = AdaptiveRateLimiter(500, clock=clock)
    sent, refused = _run(limiter, 12000, server_limit=120, clock=clock)
    assert limiter.cuts >= 1 and limiter.rate < 500
    achieved = (len(sent) - refused) / (sent[-1] - sent[0])
    assert achieved >= 0.8 * 120  # uses the real limit ...
    assert refused / len(sent) < 0.1  # ... without mostly hammering it


def test_calls_bunched_by_a_stall_do_not_slow_it_down():
    # Every 4 s the way to the server stalls for 30 ms and then delivers what it held at
    # once: a second later that bunch is still in the server's window, a few calls over.
    def arrival(t: float) -> float:
        into = t % 4.0
        return t - into + 0.03 if into < 0.03 else t

    clock = VirtualClock(0)
    limiter = AdaptiveRateLimiter(500, clock=clock)
    sent, refused = _run(limiter, 15000, server_limit=500, clock=clock, arrival=arrival)
    assert refused > 0  # the stalls did push calls over the limit ...
    assert limiter.cuts == 0  # ... but too few to mean the server's limit is lower
    assert refused / len(sent) < 0.005
    assert len(sent) / (sent[-1] - sent[0]) >= 0.97 * 500


def test_a_limit_just_below_max_rate_is_found():
    clock = VirtualClock(0)
    limiter = AdaptiveRateLimiter(500, clock=clock)
    sent, refused = _run(limiter, 15000, server_limit=475, clock=clock)
    assert limiter.cuts >= 1
    assert refused / len(sent) < 0.005
    assert (len(sent) - refused) / (sent[-1] - sent[0]) >= 0.9 * 475


def test_a_refusal_among_the_first_answers_at_most_halves_the_rate():
    limiter = AdaptiveRateLimiter(500, clock=VirtualClock(0))
    limiter.answered(True)  # the run's first answer: one refusal of one
    assert limiter.cuts == 1 and limiter.rate >= 0.5 * 500 * 0.95
