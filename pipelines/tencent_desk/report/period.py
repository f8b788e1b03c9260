"""The period a report covers, from --day, --week, --month or --from/--to (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tencent_desk.core.clock import day_start

DAY = timedelta(days=1)
FORMS = {"day": "an ISO date like 2026-11-30", "week": "an ISO week like 2026-W48",
         "month": "a month like 2026-11", "from": "an ISO date like 2026-11-01",
         "to": "an ISO date like 2026-11-30 (included)"}


class PeriodError(ValueError):
    """A period that cannot be read or reported on; the message is the one line to show."""


@dataclass(frozen=True)
class Period:
    """``[since, until)`` in UTC, whole days; ``kind``: day, week, month or range."""

    since: datetime
    until: datetime
    kind: str

    @property
    def days(self) -> int:
        return (self.until - self.since) // DAY

    @property
    def previous(self) -> Period:
        """What it is compared with: the day, ISO week or calendar month before, or for a
        range the same number of days just before it."""
        if self.kind == "month":
            end = self.since.date()
            start = (end - DAY).replace(day=1)
            return Period(day_start(start), self.since, "month")
        return Period(self.since - (self.until - self.since), self.since, self.kind)

    @property
    def interval(self) -> str:
        """The step of its charts: hours within a week, days beyond."""
        return "1h" if self.days <= 7 else "1D"

    @property
    def label(self) -> str:
        first, last = self.since.date(), (self.until - DAY).date()
        if self.kind == "day":
            return f"{first:%A %d %B %Y}"
        if self.kind == "week":
            year, week, _ = first.isocalendar()
            return f"week {year}-W{week:02d} ({first} to {last})"
        if self.kind == "month":
            return f"{first:%B %Y}"
        return f"{first} to {last}"

    def __str__(self) -> str:
        return self.label


def _date(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"--{option} {text!r} is not a date: give {FORMS[option]}") from None


def parse(day: str | None = None, week: str | None = None, month: str | None = None,
          since: str | None = None, until: str | None = None,
          today: date | None = None) -> Period:
    """The period asked for (default: yesterday, UTC); a period starting after ``today``
    is refused: there is nothing to report yet."""
    today = today or datetime.now(UTC).date()
    # given empty (a cron line's variable left unset) is given: refused below, not yesterday
    given = [name for name, v in (("day", day), ("week", week), ("month", month))
             if v is not None]
    if since is not None or until is not None:
        given.append("from/--to")
    if len(given) > 1:
        raise PeriodError(f"give one period, not --{' and --'.join(given)}")
    if week is not None:
        try:
            first = datetime.strptime(week.strip() + "-1", "%G-W%V-%u").date()
        except ValueError:
            raise PeriodError(f"--week {week!r} is not a week: give {FORMS['week']}") from None
        found = Period(day_start(first), day_start(first + 7 * DAY), "week")
    elif month is not None:
        try:
            first = datetime.strptime(month.strip(), "%Y-%m").date()
        except ValueError:
            raise PeriodError(f"--month {month!r} is not a month: give {FORMS['month']}"
                              ) from None
        found = Period(day_start(first), day_start((first + 32 * DAY).replace(day=1)), "month")
    elif since is not None or until is not None:
        if since is None or until is None:
            raise PeriodError("give both --from and --to (dates, both included)")
        first, last = _date("from", since), _date("to", until)
        if last < first:
            raise PeriodError(f"--to {last} is before --from {first}")
        found = Period(day_start(first), day_start(last + DAY), "range")
    else:
        first = _date("day", day) if day is not None else today - DAY
        found = Period(day_start(first), day_start(first + DAY), "day")
    if found.since.date() > today:
        raise PeriodError(f"{found} is in the future (today is {today} UTC): nothing to "
                          "report yet")
    return found
