"""Session records: ``describe_im_cdr_list`` paged through time windows.

A span of time is cut into windows (:func:`cut_windows`); each window is paged by
``Offset`` with ``Limit`` 100 through :meth:`DeskClient.call` (the same signed,
rate-limited, retried path as ``get_session_state``). The docs do not say whether a
window's records can change while it is paged, so every page's ``TotalCount`` is compared
with the first one: a window whose count changed is paged again from the start, and one
holding more than ``RECORDS_MAX_PER_WINDOW`` records is cut into smaller parts first, so
that paging by offset stays short. A page that comes back short, empty before the count is
reached, or malformed is asked again, and after a few tries the run stops with an error
that names the window: never a silently short load.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from tencent_desk.api import codes
from tencent_desk.api.client import DeskClient, first_error
from tencent_desk.api.codes import Action
from tencent_desk.api.record_fields import BadRecord, check_page
from tencent_desk.core import settings
from tencent_desk.core.errors import DeskError

log = logging.getLogger(__name__)


class RecordsError(DeskError):
    """Records of a window could not be read in full; the message says which."""


@dataclass(frozen=True, slots=True)
class Window:
    """Records with a Timestamp in ``[start, end]`` (Unix seconds, both included)."""

    start: int
    end: int

    def parts(self, n: int) -> list[Window]:
        """The window cut into ``n`` (at most one per second) consecutive windows."""
        n = max(1, min(n, self.end - self.start + 1))
        span = self.end - self.start + 1
        edges = [self.start + span * k // n for k in range(n + 1)]
        return [Window(a, b - 1) for a, b in itertools.pairwise(edges)]

    def __str__(self) -> str:
        return f"{_iso(self.start)}..{_iso(self.end)}"


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class RecordsPage:
    """One page request of ``describe_im_cdr_list`` (a :class:`client.Request`)."""

    path: ClassVar[str] = settings.RECORDS_API_PATH
    window: Window
    offset: int = 0
    limit: int = settings.RECORDS_PAGE_LIMIT

    def body(self) -> bytes:
        return json.dumps({"StartTimestamp": self.window.start,
                           "EndTimestamp": self.window.end,
                           "Limit": self.limit, "Offset": self.offset}).encode()


def cut_windows(start: int, end: int, size: int = settings.RECORDS_WINDOW_S) -> list[Window]:
    """``[start, end]`` cut into consecutive windows of ``size`` seconds, aligned on
    multiples of ``size`` (so overlapping runs ask the same windows)."""
    if size < 1:
        raise ValueError("window size must be at least one second")
    out: list[Window] = []
    t = start
    while t <= end:
        stop = min(end, (t // size + 1) * size - 1)
        out.append(Window(t, stop))
        t = stop + 1
    return out


def plan(*, now: float, next_start: int | None, since: int | None, until: int | None,
         settle_s: int, first_back_s: int) -> tuple[int, int] | None:
    """The span ``[start, end]`` to load: a backfill's (``since``, ``until`` or now minus the
    settle lag), else from where the last load ended (or ``first_back_s`` ago) to now minus
    the settle lag. None when there is nothing to load yet."""
    settled = int(now) - settle_s
    if since is not None:
        start, end = since, (until if until is not None else settled)
    else:
        start = next_start if next_start is not None else int(now) - first_back_s
        end = settled if until is None else min(until, settled)
    return (start, end) if start <= end else None


@dataclass
class WindowRecords:
    """A window read in full: its records (one per SessionId) and how it went."""

    window: Window
    records: list[dict[str, Any]]
    pages: int = 0
    repaged: int = 0


async def read_window(client: DeskClient, window: Window) -> WindowRecords | int:
    """Every record of ``window``; or, when it holds more than RECORDS_MAX_PER_WINDOW and
    can be cut, its TotalCount (the caller reads it in smaller parts instead). The pages
    after the first are asked at once: the client's limiter and in-flight cap pace them."""
    seen_counts: list[int] = []
    for repaged in range(settings.RECORDS_MAX_REPAGES + 1):
        total, first = await _page(client, window, 0)
        if total > settings.RECORDS_MAX_PER_WINDOW and window.end > window.start:
            return total
        seen_counts.append(total)
        _expect(window, 0, first, total)
        offsets = range(len(first), total, settings.RECORDS_PAGE_LIMIT)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(_page(client, window, o)) for o in offsets]
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        pages = [t.result() for t in tasks]
        changed = [count for count, _ in pages if count != total]
        if not changed:
            by_id = {r["SessionId"]: r for r in first}
            for offset, (_, found) in zip(offsets, pages, strict=True):
                _expect(window, offset, found, total)
                by_id.update((r["SessionId"], r) for r in found)
            return WindowRecords(window, list(by_id.values()), 1 + len(pages), repaged)
        seen_counts.append(changed[0])
        log.info("records %s: TotalCount went %d -> %d while paged: paging it again",
                 window, total, changed[0])
    raise RecordsError(f"records {window}: TotalCount kept changing while paged "
                       f"({' -> '.join(map(str, seen_counts))}): nothing of this window or "
                       "later was loaded; rerun later")


def _expect(window: Window, offset: int, found: list, total: int) -> None:
    want = min(settings.RECORDS_PAGE_LIMIT, total - offset)
    if len(found) != want:
        raise _ShortPage(f"records {window}: the page at offset {offset} held {len(found)} "
                         f"records, {want} expected (TotalCount {total})")


class _ShortPage(RecordsError):
    """A page with fewer (or more) records than TotalCount implies."""


async def _page(client: DeskClient, window: Window, offset: int
                ) -> tuple[int, list[dict[str, Any]]]:
    """One page, checked: asked again while malformed, up to RECORDS_MAX_BAD_PAGES times."""
    problem = ""
    for _ in range(settings.RECORDS_MAX_BAD_PAGES):
        answer = await client.call(RecordsPage(window, offset))
        if answer.action is not Action.OK:
            raise RecordsError(
                f"records {window}: the page at offset {offset} failed after "
                f"{answer.attempts} attempts: {codes.describe(answer.code)} (ErrorCode "
                f"{answer.code}{', ' + answer.error_info if answer.error_info else ''}): "
                "nothing of this window or later was loaded")
        try:
            return check_page(answer.payload)
        except BadRecord as exc:
            problem = str(exc)
            log.warning("records %s, offset %d: %s: asking again", window, offset, problem)
    raise RecordsError(f"records {window}: the page at offset {offset} was malformed "
                       f"{settings.RECORDS_MAX_BAD_PAGES} times ({problem}): nothing of this "
                       "window or later was loaded")


async def read_windows(client: DeskClient, windows: Iterable[Window]
                       ) -> AsyncIterator[WindowRecords]:
    """Each window's records in time order; a crowded window is read in parts. The next
    RECORDS_WINDOWS_AHEAD windows are read meanwhile, so the calls never wait for one
    window's first page. A page short of what TotalCount implies gets the window read
    again, within the repage budget."""
    todo = list(reversed(list(windows)))
    ahead: list[tuple[Window, asyncio.Task]] = []  # in time order
    short = 0
    try:
        while todo or ahead:
            while todo and len(ahead) < settings.RECORDS_WINDOWS_AHEAD:
                window = todo.pop()
                ahead.append((window, asyncio.create_task(read_window(client, window))))
            window, task = ahead.pop(0)
            try:
                result = await task
            except _ShortPage as exc:
                short += 1
                if short > settings.RECORDS_MAX_REPAGES:
                    raise RecordsError(f"{exc}: {short} times; nothing of this window or "
                                       "later was loaded") from None
                log.warning("%s: reading the window again", exc)
                ahead.insert(0, (window, asyncio.create_task(read_window(client, window))))
                continue
            if isinstance(result, int):  # parts of half the maximum: room to grow
                parts = window.parts(math.ceil(2 * result / settings.RECORDS_MAX_PER_WINDOW))
                ahead[:0] = [(w, asyncio.create_task(read_window(client, w))) for w in parts]
                continue
            short = 0
            yield result
    finally:
        for _, task in ahead:
            task.cancel()
        await asyncio.gather(*(t for _, t in ahead), return_exceptions=True)
