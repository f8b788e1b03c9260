"""The simulated day's truth as Desk's ``SessionEventNotify`` callbacks, and a sender that
POSTs them as Desk would (URL parameters and body as documented, retrying what is not
acknowledged), with knobs for lost, repeated, reordered and delayed callbacks.

Event names beyond the three our sources name come from ``events.EVENT_NAMES`` (the
entries marked ``documented=False``: our assumption).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import aiohttp
from tencent_desk.api import states
from tencent_desk.api.callback import CALLBACK_COMMAND
from tencent_desk.simulator.model import Population, SessionKey


@dataclass(frozen=True, slots=True)
class Callback:
    """One callback: when Desk sends it (simulated seconds), its RequestID and body."""

    send_at: float
    request_id: str
    body: bytes


@dataclass(frozen=True)
class Knobs:
    lost: float = 0.0        # never sent
    repeated: float = 0.0    # sent twice, same RequestID
    reordered: float = 0.0   # sent after the next callback
    delayed: float = 0.0     # sent late, by up to delay_s
    delay_s: float = 120.0
    seed: int = 0


def session_events(population: Population, keys: Iterable[SessionKey] | None = None
                   ) -> Iterable[tuple[float, dict[str, object]]]:
    """(time, body) of every event of the day (or of the sessions ``keys``), session by
    session, times in seconds."""
    for key in population.session_keys() if keys is None else keys:
        segs = population.segments(key.session_id)
        end = population.ended_at(key.session_id)
        base = {"CallbackCommand": CALLBACK_COMMAND, "SessionId": key.session_id,
                "ChannelType": "SDK", "ClientUserId": key.client_user_id,
                "CustomerServiceId": key.customer_service_id, "IsContactUser": False}
        begin = segs[0].start
        bot_end = segs[0].end
        out = [(begin, "SessionBegin", None),
               (begin + (bot_end - begin) / 3, "ChatBot.UserSendMsg", None),
               (begin + 2 * (bot_end - begin) / 3, "ChatBot.RobotSendMsg", None)]
        agent = None
        for n, seg in enumerate(segs[1:]):
            if n == 0:  # the bot hands over, whether or not a queue forms
                out.append((seg.start, "TransferToAgent.Start", None))
            if seg.state == states.AGENT:
                agent = seg.agent_id
                out.append((seg.start, "TransferToAgent.Success", agent))
                out.append((seg.start + (end - seg.start) / 2, "Agent.UserSendMsg", agent))
        closing = "UserTimeout" if segs[-1].state == states.QUEUING else "SessionEnd"
        out.append((end, closing, agent))
        for t, name, agent_id in out:
            body = {**base, "Event": name, "EventTime": int(t * 1000)}
            if agent_id:
                body["AgentId"] = agent_id
            if name.endswith("SendMsg"):
                body["MsgKey"] = f"{key.session_id[:8]}_{int(t * 1000)}"
                body["MsgBody"] = [{"MsgType": "TIMTextElem",
                                    "MsgContent": {"Text": f"message at {int(t)}"}}]
            yield t, body


def plan(population: Population, knobs: Knobs = Knobs(), *,
         keys: Iterable[SessionKey] | None = None, label: str = "") -> list[Callback]:
    """Every callback of the day (or of the sessions ``keys``) in the order Desk sends it,
    the knobs applied; ``label`` keeps RequestIDs apart between calls."""
    rng = random.Random(knobs.seed)
    timeline = sorted(session_events(population, keys), key=lambda e: e[0])
    out: list[Callback] = []
    for n, (t, body) in enumerate(timeline):
        draw = rng.random()
        if draw < knobs.lost:
            continue
        send_at = t + (rng.random() * knobs.delay_s if draw > 1 - knobs.delayed else 0.0)
        cb = Callback(send_at, f"sim-{knobs.seed}-{label}{n:08d}", json.dumps(body).encode())
        out.append(cb)
        if rng.random() < knobs.repeated:
            out.append(Callback(send_at + rng.random() * 30, cb.request_id, cb.body))
    out.sort(key=lambda c: c.send_at)
    for i in range(len(out) - 1):
        if rng.random() < knobs.reordered:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


class Sender:
    """POSTs callbacks to a receiver URL as Desk does; a callback not acknowledged (no
    answer, a 5xx) is retried, up to ``attempts`` times. Counts answers by status."""

    def __init__(self, url: str, sdkappid: int, *, concurrency: int = 16,
                 attempts: int = 50, retry_s: float = 0.2,
                 sign: Callable[[], dict[str, str]] | None = None) -> None:
        self.url, self.sdkappid = url, sdkappid
        self.concurrency, self.attempts, self.retry_s = concurrency, attempts, retry_s
        self.sign = sign
        self.statuses: Counter[int] = Counter()
        self.acknowledged: list[str] = []  # RequestIDs answered 200

    def params(self, request_id: str) -> dict[str, str]:
        params = {"SdkAppid": str(self.sdkappid), "CallbackCommand": CALLBACK_COMMAND,
                  "contenttype": "json", "ClientIP": "127.0.0.1", "OptPlatform": "Web",
                  "RequestID": request_id}
        return {**params, **(self.sign() if self.sign else {})}

    async def send(self, callbacks: Sequence[Callback]) -> None:
        queue: asyncio.Queue[Callback] = asyncio.Queue()
        for cb in callbacks:
            queue.put_nowait(cb)
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=self.concurrency)  # aiohttp's default is 100
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            await asyncio.gather(*(self._worker(http, queue)
                                   for _ in range(self.concurrency)))

    async def _worker(self, http: aiohttp.ClientSession, queue: asyncio.Queue[Callback]
                      ) -> None:
        while not queue.empty():
            cb = queue.get_nowait()
            await self._deliver(cb, lambda cb=cb: self._post(http, cb))

    async def _deliver(self, cb: Callback, post: Callable[[], Awaitable[int | None]]) -> None:
        """POST until acknowledged or refused (a 4xx), at most ``attempts`` times."""
        for attempt in range(1, self.attempts + 1):
            status = await post()
            if status is not None:
                self.statuses[status] += 1
            if status is not None and status < 500:
                if status == 200:
                    self.acknowledged.append(cb.request_id)
                return
            if attempt < self.attempts:
                await asyncio.sleep(self.retry_s)

    async def _post(self, http: aiohttp.ClientSession, cb: Callback) -> int | None:
        try:
            async with http.post(self.url, params=self.params(cb.request_id), data=cb.body,
                                 headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return None


def send_due(sender: Sender, callbacks: list[Callback], until: float) -> list[Callback]:
    """POST the callbacks due by ``until`` (simulated seconds); returns those not yet due."""
    k = next((i for i, cb in enumerate(callbacks) if cb.send_at > until), len(callbacks))
    if k:
        asyncio.run(sender.send(callbacks[:k]))
    return callbacks[k:]


class StreamSender(Sender):
    """The same sender on raw HTTP/1.1 keep-alive connections (asyncio streams): a fraction
    of aiohttp's CPU per callback, for weeks of callbacks. Same retries and counts."""

    async def send(self, callbacks: Sequence[Callback]) -> None:
        url = urlsplit(self.url)
        queue: asyncio.Queue[Callback] = asyncio.Queue()
        for cb in callbacks:
            queue.put_nowait(cb)
        await asyncio.gather(*(self._connection(url.hostname or "127.0.0.1", url.port or 80,
                                                url.path, queue)
                               for _ in range(self.concurrency)))

    async def _connection(self, host: str, port: int, path: str,
                          queue: asyncio.Queue[Callback]) -> None:
        streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

        async def post(cb: Callback) -> int | None:
            head = (f"POST {path}?{urlencode(self.params(cb.request_id))} HTTP/1.1\r\n"
                    f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(cb.body)}\r\n\r\n").encode()
            try:
                if not streams:
                    streams.append(await asyncio.open_connection(host, port))
                return await asyncio.wait_for(_exchange(*streams[0], head + cb.body), 10)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
                if streams:
                    streams.pop()[1].close()  # a connection in doubt is not reused
                return None

        while not queue.empty():
            cb = queue.get_nowait()
            await self._deliver(cb, lambda cb=cb: post(cb))
        if streams:
            streams[0][1].close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int:
    """One request on a keep-alive connection; the answer's status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    found = _LENGTH.search(head)
    if found is None:
        raise ValueError("an answer without Content-Length")
    await reader.readexactly(int(found.group(1)))
    return status


_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
