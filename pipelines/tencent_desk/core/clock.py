"""Clocks: the wall clock in production, a virtual one the caller drives in tests and demos."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Protocol

from tencent_desk.core.errors import ConfigError


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch: what timestamps rows."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: what paces calls."""

    async def sleep(self, seconds: float) -> None: ...


def utc(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.time(), UTC)


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        import asyncio  # here: the command line imports this module, and asyncio costs 30 ms

        await asyncio.sleep(seconds)


class VirtualClock:
    """Time moves only when told: ``advance()``, or ``sleep()`` which advances at once.

    With ``speed`` > 0 it also runs that many times faster than real time between calls.
    """

    def __init__(self, start: float = 1_767_225_600.0, speed: float = 0.0) -> None:
        self._offset = start
        self._speed = speed
        self._real0 = time.monotonic()

    def time(self) -> float:
        if self._speed:
            return self._offset + (time.monotonic() - self._real0) * self._speed
        return self._offset

    def monotonic(self) -> float:
        return self.time()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._offset += seconds

    def set(self, t: float) -> None:
        self.advance(max(0.0, t - self.time()))

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        import asyncio  # as in SystemClock.sleep

        await asyncio.sleep(0)


def day_start(day: date) -> datetime:
    """A UTC day's first instant."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def parse_instant(text: str) -> tuple[datetime, bool]:
    """An ISO 8601 date or date-time (UTC unless it names a zone) as a UTC instant, and
    whether it was a date alone; ValueError for anything else (no "today", no 10/03/2026,
    whose order is a guess)."""
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        return (moment.replace(tzinfo=UTC) if moment.tzinfo is None
                else moment.astimezone(UTC)), False
    return day_start(day), True


def parse_time(value: str | None, name: str) -> int | None:
    """An ISO 8601 time (UTC unless it says otherwise) as Unix seconds."""
    if value in (None, ""):
        return None
    try:
        moment, _ = parse_instant(str(value))
    except ValueError:
        raise ConfigError(f"{name} must be an ISO 8601 time such as 2026-01-05T09:00:00Z, "
                          f"got {str(value)[:40]!r}") from None
    return int(moment.timestamp())


def parse_span(since: str | None, until: str | None, names: tuple[str, str]
               ) -> tuple[int | None, int | None]:
    """A backfill's ``[since, until]`` as Unix seconds; ``names``: how the user gave them
    (options or config keys), for the message. One that ends before it starts is refused:
    it would load nothing and say nothing."""
    start, end = parse_time(since, names[0]), parse_time(until, names[1])
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"{names[0]} {since} is not before {names[1]} {until}: nothing to "
                          "load")
    return start, end
