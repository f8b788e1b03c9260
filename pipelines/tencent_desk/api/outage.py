"""Is the Desk API reachable at all? The one place that decides to move to the backup
domain and to stop a run because nothing answers (an outage).

The client tells it, for every call, whether the Desk API answered (any answer, even an
error code) or not (no connection, a reset, a timeout, a gateway's HTTP 5xx: see
``codes.reached_api``). When, on the domain in use, no call has been answered for
``quiet_s`` seconds and at least ``min_failures`` calls failed, that domain is down: the
next one is used, and past the last one the breaker trips and the run stops. A domain that
cannot even be connected to is left at its first failure (the backup may help at once).

Written here rather than taken from pybreaker, aiobreaker or purgatory: those wrap one
callable, keep time on the wall clock and reopen after a cool-down (half-open), which suits
a long-lived service; a batch job needs one verdict over all its domains, on the client's
clock (a virtual one in tests), that ends the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from urllib.parse import urlsplit

# A blip shorter than this is ridden out by the retries (a key's six attempts span 8-15 s);
# a longer silence stops the run: the next scheduled run asks again.
OUTAGE_QUIET_S = 5.0
# ... and never on fewer failed calls than this: a handful of calls is no evidence (at one
# call in flight, ten failures take 6-8 s of backoffs).
OUTAGE_MIN_FAILURES = 10
_ERROR_TEXT = 160


class Outage(Exception):
    """The Desk API cannot be reached on any configured domain: the run stops asking.
    ``abandoned``: raised for a call that was in flight, and given up."""

    def __init__(self, message: str, *, abandoned: bool = False) -> None:
        super().__init__(message)
        self.abandoned = abandoned


class Verdict(StrEnum):
    NONE = "none"
    SWITCHED = "switched"  # the next domain is in use from now on
    TRIPPED = "tripped"    # no domain left: stop asking


class OutageBreaker:
    """``host`` is the index of the domain to use; ``tripped`` once none answers."""

    def __init__(self, urls: Sequence[str], *, quiet_s: float = OUTAGE_QUIET_S,
                 min_failures: int = OUTAGE_MIN_FAILURES) -> None:
        if not urls:
            raise ValueError("at least one API root is needed")
        self.hosts = [urlsplit(u).netloc or u for u in urls]
        self.quiet_s = quiet_s
        self.min_failures = min_failures
        self.host = 0
        self.tripped = False
        self.answered = 0  # calls the API answered, the whole run
        self.failed = 0    # calls it did not
        self._quiet_since: float | None = None  # last answer, switch, or first call
        self._failures = 0  # failed calls to the domain in use since then
        self._last_error: dict[int, str] = {}

    def sending(self, now: float) -> int:
        """A call goes out now: the domain to send it to."""
        if self._quiet_since is None:
            self._quiet_since = now
        return self.host

    def reached(self, now: float) -> None:
        """The API answered a call (on any domain): it is reachable."""
        self.answered += 1
        self._failures = 0
        self._quiet_since = now

    def failed_call(self, host: int, error: str, now: float, *, unreachable: bool = False
                    ) -> Verdict:
        """A call sent to domain ``host`` got no answer from the API; ``unreachable``: not
        even a connection. Failures of a domain already left behind count for nothing."""
        self.failed += 1
        self._last_error[host] = error[:_ERROR_TEXT]
        if host != self.host or self.tripped:
            return Verdict.NONE
        self._failures += 1
        since = now if self._quiet_since is None else self._quiet_since
        down = self._failures >= self.min_failures and now - since >= self.quiet_s
        if unreachable and self.host + 1 < len(self.hosts):
            down = True
        if not down:
            return Verdict.NONE
        if self.host + 1 < len(self.hosts):
            self.host += 1
            self._failures = 0
            self._quiet_since = now
            return Verdict.SWITCHED
        self.tripped = True
        return Verdict.TRIPPED

    def finish(self) -> bool:
        """At the end of a run: tripped, or every call failed (too few to trip early)."""
        if not self.answered and self.failed:
            self.tripped = True
        return self.tripped

    def message(self) -> str:
        """One line: what failed, on which domains, what to check."""
        tried = [f"{h} ({self._last_error[i]})" if i in self._last_error else h
                 for i, h in enumerate(self.hosts[:self.host + 1])]
        gateway = all(e.startswith("HTTP ") for e in self._last_error.values())
        check = ("a gateway answers instead of the Desk API: check any proxy on the way and "
                 "Tencent Cloud's service status" if gateway else
                 "check DNS, firewall and proxy settings, and the region (or api_url)")
        return (f"the Desk API cannot be reached: {self.failed} calls failed, none answered "
                f"for the last {self.quiet_s:g}+ s, on {' and '.join(tried)}: {check}"
                if self.answered else
                f"the Desk API cannot be reached: all {self.failed} calls failed, on "
                f"{' and '.join(tried)}: {check}")
