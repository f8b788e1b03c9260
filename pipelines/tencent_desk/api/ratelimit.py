"""A sliding-window rate limiter that also paces calls and adapts to throttling.

Written here because none of the small libraries fits: aiolimiter is a leaky bucket whose
capacity lets a full second's burst out at once (a server counting a sliding one-second
window then sees up to twice the rate), and it cannot lower its rate when the server
throttles.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from tencent_desk.core.clock import Clock, SystemClock


class AdaptiveRateLimiter:
    """At most ``rate`` calls in any window of ``window`` seconds, evenly paced.

    * Hard cap: the send times of the last ``rate`` calls are kept; a call waits until the
      oldest leaves the window. ``margin`` widens the window a little so that network
      jitter does not push two windows' calls into one of the server's.
    * Pacing: a token bucket at ``rate`` per ``window * (1 + margin)`` with a small burst
      and none at the start, so calls go out as an even stream: the hard cap is only a
      safety net, and never releases a burst when the first calls of a window expire.
    * Adaptation: refusals while below the rate, or above ``tolerance`` of the calls of the
      last ``horizon`` windows while at it, lower the rate to what the server admitted (at
      most halving it), at most once per ``cooldown``; it then climbs back to just under
      that level, and probes above it only after ``forget_after`` seconds without a
      refusal. Fewer refusals at the limit are calls bunched on the way (a stall on either
      side), not a lower limit: slowing down for them would cost more than their retries.
    """

    def __init__(self, max_rate: float, *, window: float = 1.0, margin: float = 0.02,
                 burst_share: float = 0.01, tolerance: float = 0.005, horizon: int = 3,
                 cooldown: float = 1.0, min_rate: float = 1.0, forget_after: float = 30.0,
                 clock: Clock | None = None) -> None:
        if max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.max_rate = float(max_rate)
        self.rate = self.max_rate
        self.min_rate = min(min_rate, self.max_rate)
        self._span = window * (1.0 + margin)
        self._burst_share = burst_share
        self._tolerance = tolerance
        self._horizon = horizon * self._span
        self._cooldown = cooldown
        self._forget_after = forget_after
        self._clock = clock or SystemClock()
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        now = self._clock.monotonic()
        self._tokens = 1.0
        self._filled_at = now
        self._last_cut = -math.inf
        self._last_change = now
        self._ceiling = self.max_rate
        self._answers: deque[tuple[float, bool]] = deque()
        self._refused = 0  # throttled answers in _answers
        self.cuts = 0

    def _burst(self) -> float:
        return max(1.0, self.rate * self._burst_share)

    async def acquire(self) -> float:
        """Wait for a send slot; returns the monotonic time the call may go out."""
        async with self._lock:
            clock = self._clock
            while True:
                now = clock.monotonic()
                self._recover(now)
                sent = self._sent_within(now)
                pace = self.rate / self._span
                self._tokens = min(self._burst(), self._tokens + (now - self._filled_at) * pace)
                self._filled_at = now
                cap = max(1, int(self.rate))
                wait = 0.0
                if len(sent) >= cap:
                    wait = sent[len(sent) - cap] + self._span - now
                if self._tokens < 1.0:
                    wait = max(wait, (1.0 - self._tokens) / pace)
                if wait <= 0:
                    self._tokens -= 1.0
                    sent.append(now)
                    return now
                await clock.sleep(max(wait, 1e-6))  # a float-rounding wait must still advance

    def answered(self, throttled: bool) -> None:
        """Record an answer; throttled ones past the tolerance lower the rate."""
        now = self._clock.monotonic()
        answers = self._answers
        answers.append((now, throttled))
        self._refused += throttled
        while answers and now - answers[0][0] > self._horizon:
            self._refused -= answers.popleft()[1]
        if not throttled or now - self._last_cut < self._cooldown:
            return
        refused = self._refused
        # Below the limit, a refusal means the server's limit is lower (or shared). At it, a
        # few refusals are calls bunched on the way: judged against a horizon's worth of calls.
        at_limit = len(self._sent_within(now)) >= 0.9 * self.rate
        if at_limit and refused <= self._tolerance * max(len(answers),
                                                         self.rate * self._horizon):
            return
        # At most halved by one cut (as AIMD does): a run's first answers are a handful, and
        # one refusal among them is no sign that the server admits nothing (it fell to
        # min_rate, a call a second, for the rest of a run)
        admitted_share = max(0.5, 1.0 - refused / len(answers))
        # What the server let through is the best guess of its limit: stay a little under it.
        self._ceiling = max(self.min_rate, min(self.rate * admitted_share, self.rate * 0.99))
        self.rate = max(self.min_rate, self._ceiling * 0.95)
        self._last_cut = self._last_change = now
        self.cuts += 1

    def _sent_within(self, now: float) -> deque[float]:
        sent = self._sent
        while sent and now - sent[0] >= self._span:
            sent.popleft()
        return sent

    def _recover(self, now: float) -> None:
        if self.rate >= self.max_rate or now - self._last_change < self._cooldown:
            return
        steps = int((now - self._last_change) / self._cooldown)
        # Climb back to just under the limit found; probe above it only after a long quiet
        # spell (the server's limit may have been raised, or the refusals were a blip).
        quiet = now - self._last_cut >= self._forget_after
        top = self.max_rate if quiet else 0.98 * self._ceiling
        step = self.max_rate * (0.01 if self.rate >= 0.9 * self._ceiling or quiet else 0.05)
        self.rate = max(self.rate, min(top, self.rate + steps * step))
        self._last_change += steps * self._cooldown
