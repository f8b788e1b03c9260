"""The rate limiter on a virtual clock: its guarantees hold whatever the timing."""

from __future__ import annotations

import asyncio
from collections import deque

from pipelines.tencent_desk.clock import VirtualClock
from pipelines.tencent_desk.ratelimit import AdaptiveRateLimiter


def _max_in_window(times: list[float], span: float = 1.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _run(limiter: AdaptiveRateLimiter, calls: int, tasks: int = 50,
         server_limit: int | None = None, clock: VirtualClock | None = None) -> tuple[list, int]:
    """``tasks`` callers share the limiter; a server with a sliding one-second window of
    ``server_limit`` answers each call at once on the same clock."""
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
                while window and t - window[0] >= 1.0:
                    window.popleft()
                throttled = len(window) >= server_limit
                if not throttled:
                    window.append(t)
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
