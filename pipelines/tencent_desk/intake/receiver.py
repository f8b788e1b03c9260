"""``desk-sessions listen``: receives Desk's ``SessionEventNotify`` callbacks into the spool.

A raw ASGI app (the simulator's server stack, no framework: thousands of callbacks a second
on one core). A callback is acknowledged only once its event is on disk (group commit).
A sender's mistake gets a 4xx with the reason, is stored nowhere, and is logged in one line
(never the query string: it may carry the webhook signature). The database is never opened
here: ``desk-sessions run`` loads the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tencent_desk.api import callback
from tencent_desk.core.settings import SEAL_AFTER_S
from tencent_desk.intake import events
from tencent_desk.intake.spool import SpoolWriter, read_records, sealed_segments

log = logging.getLogger("desk_sessions.receiver")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

RECENT_IDS = 200_000  # RequestIDs remembered for dropping repeats (the job dedups the rest)
_JSON = b"application/json"


@dataclass
class ReceiverConfig:
    sdkappid: int
    spool: Path
    token: str | None = field(default=None, repr=False)
    keep_message_content: bool = False
    seal_after_s: float = SEAL_AFTER_S
    report_every_s: float = 60.0
    # More apps (sdkappid -> webhook token or None) whose callbacks come to this URL too:
    # each callback's SdkAppid says whose it is.
    more_apps: dict[int, str | None] = field(default_factory=dict, repr=False)
    max_body: int = callback.MAX_BODY  # bytes of a body at most (413 beyond)


class _Rejected(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason = status, reason


class Receiver:
    """The ASGI callable; one event loop serves it."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self.spool = SpoolWriter(config.spool, seal_after_s=config.seal_after_s)
        self.counts: Counter[str] = Counter()  # accepted, repeats, rejected:<reason>
        # A set and a ring of the same ids: half the memory of an OrderedDict.
        self._recent: set[str] = set()
        self._order: deque[str] = deque()
        self._writing: dict[str, asyncio.Future[None]] = {}
        self._tokens = {str(app): token for app, token in
                        {config.sdkappid: config.token, **config.more_apps}.items()}
        self._reporter: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def startup(self) -> None:
        await self.spool.start()
        for path in sealed_segments(self.config.spool)[-8:]:  # repeats of recent events
            with contextlib.suppress(FileNotFoundError):  # retired by the job meanwhile
                for record in read_records(path):
                    self._remember(f"{record.get('sdkappid')}:{record.get('request_id')}")
        self._reporter = asyncio.create_task(self._report_loop())
        log.info("receiving SessionEventNotify for SDKAppID %s into %s (token check %s, "
                 "message content %s)", ", ".join(self._tokens), self.config.spool,
                 ", ".join("on" if t else "off" for t in self._tokens.values()),
                 "kept" if self.config.keep_message_content else "not stored")

    async def shutdown(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
        await self.spool.close()
        self.report()

    def report(self) -> None:
        c = self.counts
        rejected = sorted((k.split(":", 1)[1], v) for k, v in c.items()
                          if k.startswith("rejected:"))
        log.info("callbacks: %d accepted, %d repeats, %d rejected%s%s", c["accepted"],
                 c["repeats"], sum(v for _, v in rejected),
                 " (" + ", ".join(f"{k} {v}" for k, v in rejected) + ")" if rejected else "",
                 f", {c['failed']} not stored (disk; answered 503)" if c["failed"] else "")

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.report_every_s)
            self.report()

    # -- requests ----------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            ok = scope["method"] in ("GET", "HEAD")
            await _respond(send, 200 if ok else 405,
                           b'{"status":"ok"}' if ok else callback.failure("method"))
            return
        try:
            status, body = 200, await self._handle(scope, receive)
        except _Rejected as exc:
            self.counts[f"rejected:{exc.reason}"] += 1
            client = (scope.get("client") or ("?",))[0]
            log.warning("rejected a callback from %s: %s: %s", client, exc.reason, exc)
            status, body = exc.status, callback.failure(f"{exc.reason}: {exc}")
        except OSError:  # our disk, not the sender: Desk retries what is not acknowledged
            self.counts["failed"] += 1
            status, body = 503, callback.failure("not stored, retry later")
        await _respond(send, status, body)

    async def _handle(self, scope: Scope, receive: Receive) -> bytes:
        if scope["method"] != "POST":
            raise _Rejected(405, "method", "callbacks are POST")
        params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        if params.get("CallbackCommand") != events.CALLBACK_COMMAND:
            raise _Rejected(400, "command", f"CallbackCommand is not {events.CALLBACK_COMMAND}")
        app = params.get("SdkAppid", "")
        if app not in self._tokens:
            raise _Rejected(403, "app", "SdkAppid is not an app of this receiver")
        token = self._tokens[app]
        if token and not callback.sign_ok(token, params.get("RequestTime"), params.get("Sign")):
            raise _Rejected(401, "token", "Sign does not match the webhook token")
        headers = dict(scope["headers"])
        if not callback.content_type_ok(headers.get(b"content-type")):
            raise _Rejected(415, "content_type", "Content-Type must be application/json")
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and (len(length) > 18 or int(length) > self.config.max_body):
            raise _Rejected(413, "too_large", f"the body is over {self.config.max_body} bytes")
        raw = await _read_body(receive, self.config.max_body)
        try:
            doc = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _Rejected(400, "utf8", "the body is not UTF-8") from None
        except (ValueError, RecursionError):  # a number of over 4300 digits too
            raise _Rejected(400, "json", "the body is not JSON (or not readable JSON: "
                            "nested too deeply, a number of thousands of digits)") from None
        rid = callback.request_id(params, raw)
        try:
            record = events.to_record(doc, rid, int(time.time() * 1000),
                                      keep_content=self.config.keep_message_content,
                                      sdkappid=int(app))
        except events.BadEvent as exc:
            raise _Rejected(400, exc.reason, str(exc)) from None
        rid = f"{app}:{rid}"  # a repeat is the same RequestID of the same app
        if rid in self._recent:
            self.counts["repeats"] += 1
            return callback.ACK
        # A repeat arriving while its first copy is being written waits for that write:
        # acknowledged only once durable, stored once.
        writing = self._writing.get(rid)
        first = writing is None
        if writing is None:
            try:
                line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
            except UnicodeEncodeError:  # a lone surrogate (\ud800) is no text to store
                raise _Rejected(400, "utf8", "the body has invalid Unicode escapes") from None
            writing = self._writing[rid] = asyncio.ensure_future(
                self.spool.append(line + b"\n"))
            writing.add_done_callback(lambda done: self._written(rid, done))
        await asyncio.shield(writing)
        self.counts["accepted" if first else "repeats"] += 1
        return callback.ACK

    def _written(self, rid: str, done: asyncio.Future[None]) -> None:
        del self._writing[rid]
        if not done.cancelled() and done.exception() is None:
            self._remember(rid)

    def _remember(self, rid: str) -> None:
        if rid in self._recent:
            return
        self._recent.add(rid)
        self._order.append(rid)
        if len(self._order) > RECENT_IDS:
            self._recent.discard(self._order.popleft())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except OSError as exc:
                    await send({"type": "lifespan.startup.failed",
                                "message": f"cannot use spool {self.config.spool}: "
                                           f"{exc.strerror}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            else:
                with contextlib.suppress(Exception):
                    await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Rejected(400, "disconnect", "the sender went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Rejected(413, "too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", _JSON),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
