"""A raw ASGI app answering ``v4/desk_http_svc/get_session_state`` and
``describe_im_cdr_list`` (session records) like Tencent Cloud Desk.

No web framework: the app must serve thousands of calls per second on one core.
Checks run in this order, each answering its documented code:
path (60009), method (60002), sdkappid missing (60012) or not ours (60006, before the UserSig:
a server that does not know the app has no key to check it with), identifier (60010),
UserSig (70001/70002/70003/70009/70013/70014), random (60002), contenttype (60002, also when
missing), body a JSON object (60003), the frequency window (60007), injected faults, then
the answer (141004 bad body fields, 141005 unknown or ended session; for records, 141004
for a missing or inverted window, a Limit above 100 or a negative Offset).
"""

from __future__ import annotations

import asyncio
import json
import random
from array import array
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any
from urllib.parse import unquote_plus

from tencent_desk.api import states, usersig
from tencent_desk.core.clock import Clock, SystemClock, VirtualClock
from tencent_desk.core.settings import API_PATH, RECORDS_API_PATH, RECORDS_PAGE_LIMIT
from tencent_desk.simulator.model import Population, Segment

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# What to send: HTTP status, body, content type, the injected fault (None: a faithful answer).
Answer = tuple[int, bytes, bytes, str | None]

# Where the model clock starts by default: 09:00 on the simulated day, traffic picking up.
DEFAULT_START_OFFSET_S = 9 * 3600.0
MAX_BODY = 64 * 1024
MAX_RANDOM = 4_294_967_295
_SIG_CACHE_SIZE = 4096

FAULT_KINDS = ("internal_error", "http_502", "http_503", "truncated", "non_json", "slow",
               "drop", "throttle", "chaos")
CHAOS_SHAPES = ("wrong_types", "missing_fields", "huge", "deep_nesting", "invalid_utf8",
                "not_object", "empty", "unknown_state", "unknown_code", "nan", "duplicate_keys")
FAULT_HEADER = b"x-simulator-fault"  # names the injected fault, for tests and debugging

_CANONICAL = {states.CHATBOT: "Chatbot", states.WAITING_FOR_AGENT: "WaitingForAgentAnswering",
              states.AGENT: "Agent"}
SPELLINGS = {
    "english": {**_CANONICAL, states.QUEUING: "Queuing", states.NOT_IN_SESSION: "Not in session"},
    "chinese": {**_CANONICAL, states.QUEUING: "Queueing", states.NOT_IN_SESSION: "NotInSession"},
}

_GATEWAY_PAGE = ("<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1>"
                 "</center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n")
_JSON = b"application/json"
_HTML = b"text/html"


@dataclass
class SimulatorConfig:
    sdkappid: int
    identifier: str
    secret_key: str = field(repr=False)
    rate_limit: float | None = None  # admitted calls per sliding second; None/0: no limit
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0    # added uniformly in [0, jitter)
    internal_error: float = 0.0
    http_502: float = 0.0
    http_503: float = 0.0
    truncated: float = 0.0
    non_json: float = 0.0
    slow: float = 0.0
    drop: float = 0.0
    throttle: float = 0.0
    chaos: float = 0.0
    slow_s: float = 30.0
    spelling: str = "mixed"          # "english", "chinese", or per answer at random
    seed: int = 0

    def __post_init__(self) -> None:
        shares = [getattr(self, k) for k in FAULT_KINDS]
        if any(not 0 <= s <= 1 for s in shares) or sum(shares) > 1 + 1e-9:
            raise ValueError("fault shares must be in [0, 1] and add up to at most 1")
        if self.spelling not in (*SPELLINGS, "mixed"):
            raise ValueError(f"spelling must be english, chinese or mixed, not {self.spelling!r}")
        if min(self.latency_s, self.latency_jitter_s, self.slow_s, self.rate_limit or 0) < 0:
            raise ValueError("latency, slow_s and rate_limit must be >= 0")


@dataclass
class Stats:
    """What the app answered. ``codes`` counts whole envelopes by ErrorCode (those of the
    internal_error, throttle and slow faults too); ``faults`` every injected fault by kind."""

    codes: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    chaos: Counter[str] = field(default_factory=Counter)
    admitted: array = field(default_factory=lambda: array("d"), repr=False)  # limit-clock times

    def max_in_window(self, seconds: float = 1.0) -> int:
        """Most admitted calls in any window ``[t, t + seconds)``: the rate a client kept to."""
        times, best, lo = self.admitted, 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= seconds:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


class SimulatorApp:
    """The ASGI callable. Not thread-safe: one event loop serves it."""

    def __init__(self, population: Population, config: SimulatorConfig, *,
                 model_clock: Clock | None = None, auth_clock: Clock | None = None,
                 limit_clock: Clock | None = None) -> None:
        self.population = population
        self.config = config
        self.model_clock = model_clock or VirtualClock(
            population.config.day_start + DEFAULT_START_OFFSET_S)
        self.auth_clock = auth_clock or SystemClock()
        self.limit_clock = limit_clock or SystemClock()
        self.stats = Stats()
        self._rng = random.Random(config.seed)
        # the faults from a stream of their own: the n-th call meets the same fault however
        # the jitter's and the ids' draws interleave with it under concurrency
        self._fault_rng = random.Random(f"{config.seed}-faults")
        self._seq = count(1)
        self._window: deque[float] = deque()
        self._sig_cache: dict[str, int] = {}  # verified UserSig -> expires at (auth clock)
        self._paths = ("/" + API_PATH, "/" + RECORDS_API_PATH)
        self._sdkappid = str(config.sdkappid)
        shares = [(getattr(config, k), k) for k in FAULT_KINDS]
        self._faults = [(sum(s for s, _ in shares[:i + 1]), k)
                        for i, (s, k) in enumerate(shares) if s > 0]

    def reset_stats(self) -> None:
        self.stats = Stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        answer = await self._handle(scope, receive)
        if answer is None:
            return
        if self.config.latency_s or self.config.latency_jitter_s:
            await asyncio.sleep(self.config.latency_s
                                + self._rng.random() * self.config.latency_jitter_s)
        await _respond(send, *answer)

    async def _handle(self, scope: Scope, receive: Receive) -> Answer | None:
        """What to send, or None when nothing is to be sent."""
        path = scope["path"]
        if path not in self._paths:
            return self._fail(60009, "invalid request URI")
        if scope["method"] != "POST":
            return self._fail(60002, "HTTP method must be POST")
        params = _query(scope["query_string"])
        sdkappid = params.get("sdkappid")
        if not sdkappid:
            return self._fail(60012, "sdkappid is missing")
        if sdkappid != self._sdkappid:
            return self._fail(60006, "invalid sdkappid")
        if params.get("identifier") != self.config.identifier:
            return self._fail(60010, "identifier is not an app administrator")
        failed = self._check_usersig(params.get("usersig"))
        if failed is not None:
            return failed
        rnd = params.get("random", "")
        if not (rnd.isascii() and rnd.isdigit() and len(rnd) <= 10 and int(rnd) <= MAX_RANDOM):
            return self._fail(60002, "random must be an unsigned 32-bit integer")
        if params.get("contenttype") != "json":
            return self._fail(60002, "contenttype must be json")
        raw = await _read_body(receive)
        if raw is None:
            return None  # the client went away
        if len(raw) > MAX_BODY:
            return self._fail(60003, "request body too large")
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            return self._fail(60003, "request body is not a JSON object")
        now = self.limit_clock.monotonic()
        if self.config.rate_limit:
            window = self._window
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.config.rate_limit:
                return self._fail(60007, "API call frequency over limit")
            window.append(now)
        self.stats.admitted.append(now)
        fault = self._draw_fault()
        if path != self._paths[0]:
            doc = _RecordsQuery(doc)  # which call: carried with the body from here on
        if fault is None:
            return self._answer(doc)
        self.stats.faults[fault] += 1
        return await self._inject(fault, doc, receive)

    def _check_usersig(self, sig: str | None) -> Answer | None:
        now = self.auth_clock.time()
        expires = self._sig_cache.get(sig) if sig else None
        if expires is not None and now <= expires:
            return None
        cfg = self.config
        verdict = usersig.verify(sig, cfg.sdkappid, cfg.identifier, cfg.secret_key, now=now)
        if not verdict.ok:
            if sig:
                self._sig_cache.pop(sig, None)
            return self._fail(verdict.code, verdict.reason)
        assert sig is not None and verdict.expires_at is not None
        if len(self._sig_cache) >= _SIG_CACHE_SIZE:
            self._sig_cache.clear()  # only valid sigs get here: a crude bound is enough
        self._sig_cache[sig] = verdict.expires_at
        return None

    def _draw_fault(self) -> str | None:
        if not self._faults:
            return None
        u = self._fault_rng.random()
        for upto, kind in self._faults:
            if u < upto:
                return kind
        return None

    async def _inject(self, fault: str, doc: dict, receive: Receive) -> Answer | None:
        if fault == "internal_error":
            return self._fail(141002, "internal error", fault)
        if fault == "throttle":
            return self._fail(60007, "API call frequency over limit", fault)
        if fault in ("http_502", "http_503"):
            status = 502 if fault == "http_502" else 503
            title = "502 Bad Gateway" if status == 502 else "503 Service Temporarily Unavailable"
            return status, _GATEWAY_PAGE.format(title).encode(), _HTML, fault
        if fault == "non_json":
            return 200, _GATEWAY_PAGE.format("upstream error").encode(), _HTML, fault
        if fault == "truncated":
            body = _dumps(self._reply(doc)[1])
            return 200, body[: len(body) // 2], _JSON, fault
        if fault == "slow":
            try:
                await asyncio.wait_for(_until_disconnect(receive), self.config.slow_s)
            except TimeoutError:
                return (*self._answer(doc)[:3], fault)
            return None  # the client gave up first
        if fault == "drop":
            # ASGI cannot close a connection unanswered; uvicorn's receive() is a method of
            # the request cycle, which holds the transport. Wait for it to see the loss.
            receive.__self__.transport.close()  # type: ignore[attr-defined]
            await _until_disconnect(receive)
            return None
        shape = self._rng.choice(CHAOS_SHAPES)
        self.stats.chaos[shape] += 1
        return 200, self._chaos(shape, doc), _JSON, f"chaos:{shape}"

    def _answer(self, doc: dict) -> Answer:
        code, body = self._reply(doc)
        self.stats.codes[code] += 1
        return 200, _dumps(body), _JSON, None

    def _reply(self, doc: dict) -> tuple[int, dict[str, Any]]:
        """The ErrorCode and envelope answering a well-formed request, at model-clock time."""
        t = self.model_clock.time()
        if isinstance(doc, _RecordsQuery):
            return self._records(doc, t)
        if "SessionId" in doc:  # it wins over the pair form
            sid = doc["SessionId"]
            if not isinstance(sid, str) or not sid:
                return 141004, self._fail_body(141004, "SessionId must be a non-empty string")
            seg = self.population.state_at(sid, t)
            if seg is None:
                return 141005, self._fail_body(141005, "session does not exist or has ended")
            return 0, self._envelope(seg)
        user, cs = doc.get("ClientUserId"), doc.get("CustomerServiceId")
        if not (isinstance(user, str) and user and isinstance(cs, str) and cs):
            return 141004, self._fail_body(
                141004, "need SessionId, or ClientUserId with CustomerServiceId")
        return 0, self._envelope(self.population.current_session(user, cs, t))

    def _records(self, doc: dict, t: float) -> tuple[int, dict[str, Any]]:
        """One page of session records: those ended by ``t`` with a Timestamp in the window."""
        start, end = doc.get("StartTimestamp"), doc.get("EndTimestamp")
        limit, offset = doc.get("Limit", 20), doc.get("Offset", 0)
        user = doc.get("ClientUserId")
        numbers = (start, end, limit, offset)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
            return 141004, self._fail_body(
                141004, "StartTimestamp and EndTimestamp are required integers; Limit and "
                        "Offset integers")
        if start > end or start < 0:
            return 141004, self._fail_body(141004, "invalid time window")
        if not 0 < limit <= RECORDS_PAGE_LIMIT or offset < 0:
            return 141004, self._fail_body(141004, "Limit must be 1..100, Offset >= 0")
        if user is not None and not isinstance(user, str):
            return 141004, self._fail_body(141004, "ClientUserId must be a string")
        pop = self.population
        found = pop.records_between(start, end, t)
        if user:
            found = [i for i in found if pop.record(i)["ClientUserId"] == user]
        return 0, {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "",
                   "RequestId": self._request_id(), "TotalCount": len(found),
                   "IMCdrList": [pop.record(i) for i in found[offset:offset + limit]]}

    def _envelope(self, seg: Segment | None) -> dict[str, Any]:
        spelling = self.config.spelling
        if spelling == "mixed":
            spelling = "english" if self._rng.getrandbits(1) else "chinese"
        names = SPELLINGS[spelling]
        return {"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0,
                "RequestId": self._request_id(),
                "SessionId": seg.session_id if seg else "",
                "CurrentState": names[seg.state if seg else states.NOT_IN_SESSION],
                "AgentId": (seg.agent_id or "") if seg else ""}

    def _fail(self, code: int, info: str, fault: str | None = None) -> Answer:
        self.stats.codes[code] += 1
        return 200, _dumps(self._fail_body(code, info)), _JSON, fault

    def _fail_body(self, code: int, info: str) -> dict[str, Any]:
        return {"ActionStatus": "FAIL", "ErrorInfo": info, "ErrorCode": code,
                "RequestId": self._request_id()}

    def _request_id(self) -> str:
        return f"Id-{self._rng.getrandbits(128):032x}-O-Seq-{next(self._seq)}"

    def _chaos(self, shape: str, doc: dict) -> bytes:
        """A 200 answer of the given broken or unexpected shape."""
        rng = self._rng
        if shape == "empty":
            return b""
        if shape == "not_object":
            return rng.choice((b"[]", b"null", b"42", b'"OK"', b"true", b'[{"ErrorCode":0}]'))
        if shape == "deep_nesting":  # deeper than a recursive parser's stack
            depth = 100_000
            return b'{"ActionStatus":"OK","ErrorCode":0,"CurrentState":' + b"[" * depth + \
                b"]" * depth + b"}"
        if shape == "invalid_utf8":
            return (b'{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"SessionId":"\xff\xfe",'
                    b'"CurrentState":"Agent\xc3","AgentId":"\xed\xa0\x80"}')
        if shape == "nan":
            return b'{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":NaN,"CurrentState":Infinity}'
        if shape == "duplicate_keys":
            return (b'{"ActionStatus":"OK","ErrorCode":0,"ErrorCode":141002,'
                    b'"CurrentState":"Agent","CurrentState":"Chatbot","AgentId":""}')
        body = self._reply(doc)[1]
        if isinstance(doc, _RecordsQuery) and shape in ("wrong_types", "missing_fields",
                                                        "unknown_state"):
            return json.dumps(_spoil_records(body, shape, rng)).encode()
        if shape == "wrong_types":
            key = rng.choice(("ActionStatus", "ErrorCode", "SessionId", "CurrentState", "AgentId"))
            body[key] = rng.choice(("0", None, 0.0, [], True) if key == "ErrorCode"
                                   else (None, 0, 1.5, [], {"x": 1}, True))
        elif shape == "missing_fields":
            for key in rng.sample(sorted(body), rng.randint(1, len(body))):
                del body[key]
        elif shape == "huge":
            body["Padding"] = "x" * (1 << 20)
        elif shape == "unknown_state":
            body["CurrentState"] = rng.choice(("Transferring", "Ended", "", "AGENT_BUSY"))
        else:  # unknown_code
            body.update(ActionStatus="FAIL", ErrorCode=rng.choice((141099, 99999, -1)),
                        ErrorInfo="unexpected")
        return json.dumps(body).encode()


class _RecordsQuery(dict):
    """The body of a ``describe_im_cdr_list`` request (a plain dict is a state request)."""


def _spoil_records(body: dict[str, Any], shape: str, rng: random.Random) -> dict[str, Any]:
    """A records answer with a missing or mistyped field (of the page or of a record)."""
    records = body.get("IMCdrList") or []
    target = rng.choice(records) if records and rng.random() < 0.7 else body
    keys = sorted(k for k in target if k not in ("ActionStatus", "ErrorInfo", "RequestId"))
    if shape == "missing_fields" and keys:
        del target[rng.choice(keys)]
    elif keys:  # wrong types; an unknown state has no meaning here: a mistyped field too
        target[rng.choice(keys)] = rng.choice((None, "12", 1.5, [], {"x": 1}, True))
    return body


def _query(raw: bytes) -> dict[str, str]:
    """Query parameters, the first of each name; parse_qsl costs a third of a call."""
    params: dict[str, str] = {}
    for part in raw.decode("latin-1").split("&"):
        key, _, value = part.partition("=")
        if "%" in part or "+" in part:
            key, value = unquote_plus(key), unquote_plus(value)
        params.setdefault(key, value)
    return params


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def _respond(send: Send, status: int, body: bytes, ctype: bytes,
                   fault: str | None) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    if fault is not None:
        headers.append((FAULT_HEADER, fault.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, read no further once past MAX_BODY; None on disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False) or size > MAX_BODY:
            return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return
