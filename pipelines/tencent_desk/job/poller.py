"""Runs the async client over a stream of keys on its own event-loop thread and hands the
answers back in batches, so the (synchronous) dlt resource can turn each batch into rows
while the next calls are already in flight."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

from tencent_desk.api.client import Answer, DeskClient, Key
from tencent_desk.api.outage import Outage
from tencent_desk.api.records import Window, WindowRecords, read_windows

try:  # uvloop halves the event loop's CPU per call; optional on platforms without it
    import uvloop

    _run = uvloop.run
except ImportError:  # pragma: no cover
    _run = asyncio.run

_DONE = object()


class ConsumerGone(Exception):
    """The consumer stopped reading: the poller winds down."""


class Poller:
    """``for answers in Poller(make_client, key_batches): ...``

    ``make_client`` builds the :class:`DeskClient` inside the poller's thread (httpx
    clients belong to one event loop). An exception in the thread (a fatal answer, an
    outage: after the answers that came before it) is raised in the consumer; a consumer
    that stops early stops the thread.
    """

    def __init__(self, make_client: Callable[[], DeskClient], keys: Iterable[list[Key]],
                 batch_size: int = 2000, buffered_batches: int = 4) -> None:
        self._make_client = make_client
        self._keys = keys
        self._batch_size = batch_size
        self._out: queue.Queue[object] = queue.Queue(maxsize=buffered_batches)
        self._stop = threading.Event()
        self.client: DeskClient | None = None
        self._thread = threading.Thread(target=self._main, name="desk-poller", daemon=True)

    def __iter__(self) -> Iterator[list[Answer]]:
        self._thread.start()
        try:
            while True:
                item = self._out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self._stop.set()
            self._thread.join()

    def _main(self) -> None:
        try:
            _run(self._poll())
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)
        else:
            self._put(_DONE)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    async def _hand_over(self, item: object) -> None:
        """Give ``item`` to the consumer; while it is behind, wait without blocking the
        calls in flight."""
        while True:
            if self._stop.is_set():
                raise ConsumerGone
            try:
                self._out.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.02)

    async def _poll(self) -> None:
        client = self.client = self._make_client()
        keys = itertools.chain.from_iterable(self._keys)
        pending: list[Answer] = []

        async def flush() -> None:
            nonlocal pending
            batch, pending = pending, []
            await self._hand_over(batch)

        async def collect(answer: Answer) -> None:
            pending.append(answer)
            if len(pending) >= self._batch_size:
                await flush()

        async with client:
            try:
                await client.pump(keys, collect)
            except Outage:  # what was answered before the stop is kept, then it is raised
                if pending:
                    await flush()
                raise
            if pending:
                await flush()


class RecordsPager(Poller):
    """Reads windows on the poller's event-loop thread and hands each window's records to
    the (synchronous) dlt resource as soon as it is complete."""

    def __init__(self, make_client: Callable[[], DeskClient], windows: list[Window],
                 buffered_windows: int = 2) -> None:
        super().__init__(make_client, (), buffered_batches=buffered_windows)
        self._windows = windows

    async def _poll(self) -> None:
        client = self.client = self._make_client()
        async with client:
            async for result in read_windows(client, self._windows):
                await self._hand_over(result)

    def __iter__(self) -> Iterator[WindowRecords]:  # type: ignore[override]
        return super().__iter__()  # type: ignore[return-value]
