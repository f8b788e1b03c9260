"""An asyncio client for ``get_session_state``: signed, rate-limited, retried, classified.

Layers: :class:`Key` (what to ask) -> :class:`DeskClient` (one call with its retries) ->
:class:`Answer` (what came back, with attempts, latency and RequestId). Every answer is
classified by :mod:`.codes`; a fatal one raises :class:`FatalError` with what to fix.
Other calls of the API (``describe_im_cdr_list``, see :mod:`.records`) take the same path
with another :class:`Request`: their answer's JSON object is in ``Answer.payload``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import quote, urlsplit

from tencent_desk.api import codes
from tencent_desk.api.codes import Action
from tencent_desk.api.outage import (
    OUTAGE_MIN_FAILURES,
    OUTAGE_QUIET_S,
    Outage,
    OutageBreaker,
    Verdict,
)
from tencent_desk.api.ratelimit import AdaptiveRateLimiter
from tencent_desk.api.transport import KINDS, Sender, SendError
from tencent_desk.api.transport_aiohttp import AiohttpSender
from tencent_desk.api.usersig import UserSigProvider
from tencent_desk.core import redact, settings
from tencent_desk.core.clock import Clock, SystemClock
from tencent_desk.core.errors import ConfigError, DeskError

log = logging.getLogger(__name__)


class FatalError(DeskError):
    """An answer that is wrong for every key (credentials, app, region): stop the run."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Request(Protocol):
    """What one call asks: the API path and the JSON body."""

    path: ClassVar[str]

    def body(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Key:
    """One question: by ``session_id``, else by the (user, customer-service account) pair."""

    path: ClassVar[str] = settings.API_PATH
    session_id: str | None = None
    client_user_id: str | None = None
    customer_service_id: str | None = None

    @property
    def by_session(self) -> bool:
        return bool(self.session_id)

    def body(self) -> bytes:
        if self.session_id:
            doc = {"SessionId": self.session_id}
        else:
            doc = {"ClientUserId": self.client_user_id,
                   "CustomerServiceId": self.customer_service_id}
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")


@dataclass(slots=True)
class Answer:
    """The final answer for one key after retries."""

    key: Key | Request
    code: int
    action: Action
    error_info: str = ""
    session_id: str | None = None
    raw_state: str | None = None
    agent_id: str | None = None
    request_id: str | None = None
    attempts: int = 0
    throttled: int = 0
    latency_ms: float = 0.0
    answered_at: float = 0.0
    sig: str | None = field(default=None, repr=False)  # which UserSig was sent: never stored
    payload: dict[str, Any] | None = field(default=None, repr=False)  # a non-Key call's answer


@dataclass
class ClientConfig:
    sdkappid: int
    identifier: str
    base_urls: tuple[str, ...]
    max_qps: float = settings.DEFAULT_MAX_QPS
    max_concurrency: int | None = None  # None: auto_concurrency(max_qps)
    timeout: float = settings.DEFAULT_TIMEOUT_S
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS
    max_throttled_attempts: int = settings.DEFAULT_MAX_THROTTLED_ATTEMPTS
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    transport: str = settings.DEFAULT_TRANSPORT  # or "httpx", "httpx-aiohttp": transport.py
    outage_quiet_s: float = OUTAGE_QUIET_S  # see outage.py
    outage_min_failures: int = OUTAGE_MIN_FAILURES

    @property
    def concurrency(self) -> int:
        return self.max_concurrency or auto_concurrency(self.max_qps)


def auto_concurrency(max_qps: float) -> int:
    """Calls in flight to sustain ``max_qps`` with answers of up to
    AUTO_CONCURRENCY_ANSWER_S (Little's law), within AUTO_CONCURRENCY_BOUNDS."""
    low, high = settings.AUTO_CONCURRENCY_BOUNDS
    return max(low, min(high, math.ceil(max_qps * settings.AUTO_CONCURRENCY_ANSWER_S)))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_urls(region: str | None = None, api_url: str | None = None,
              backup_url: str | None = None) -> tuple[str, ...]:
    """The main and backup roots for a region name or an explicit URL.

    Plain HTTP is allowed only to loopback (the simulator): a real domain is spoken to
    over HTTPS with certificate verification.
    """
    if api_url:
        urls = tuple(u.rstrip("/") for u in (api_url, backup_url) if u)
    else:
        name = (region or settings.DEFAULT_REGION).strip().lower().replace(" ", "_")
        if name not in settings.REGIONS:
            raise ConfigError(f"unknown region {region!r}: use one of "
                              f"{', '.join(settings.REGIONS)} or set api_url")
        urls = tuple(f"https://{d}" for d in settings.REGIONS[name])
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"api_url {redact.redact(url)!r} is not an http(s) URL")
        if parts.query or parts.username or parts.password:
            raise ConfigError("api_url must be a bare root URL, without query or credentials")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ConfigError(f"api_url {url!r} uses plain HTTP: only loopback may; use https")
    return urls


@dataclass
class Stats:
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    renewed_sigs: int = 0
    fallbacks: int = 0
    abandoned: int = 0  # calls in flight when an outage stopped the run: given up
    first_call: float | None = None
    last_answer: float | None = None
    codes: Counter[int] = field(default_factory=Counter)

    def calls_per_second(self) -> float:
        if self.first_call is None or self.last_answer is None:
            return 0.0
        span = self.last_answer - self.first_call
        return self.calls / span if span > 0 else float(self.calls)


class DeskClient:
    """``async with DeskClient(config, sigs) as client: await client.get_session_state(key)``."""

    def __init__(self, config: ClientConfig, sigs: UserSigProvider, *,
                 clock: Clock | None = None, pace_clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        if config.concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        if config.max_qps <= 0:
            raise ConfigError("max_qps must be positive")
        self.config = config
        self._sigs = sigs
        redact.register(*sigs.secrets())
        redact.install()
        # ``clock`` stamps answers (the simulator's in a demo); ``pace_clock`` paces calls.
        self._clock = clock or SystemClock()
        self._pace = pace_clock or SystemClock()
        self._rng = rng or random.Random()
        self.limiter = AdaptiveRateLimiter(config.max_qps, clock=self._pace)
        self._in_flight = asyncio.Semaphore(config.concurrency)
        # Which domain to use, and whether any answers: every call of every endpoint
        # reports to it (in _attempt), so the whole family stops alike in an outage.
        self.breaker = OutageBreaker(config.base_urls, quiet_s=config.outage_quiet_s,
                                     min_failures=config.outage_min_failures)
        self._stopped = asyncio.Event()  # set when the breaker trips: ends backoff sleeps
        self._posting: set[asyncio.Task[Any]] = set()  # calls awaiting an answer
        self._prefix: dict[str, tuple[str, str, Callable[[int], Any]]] = {}  # per API path
        self._http: Sender | None = None
        self.stats = Stats()
        self.send_times: list[float] | None = None  # filled when a caller wants to audit pacing

    def __repr__(self) -> str:
        return (f"DeskClient(sdkappid={self.config.sdkappid}, base={self.base_url!r}, "
                f"max_qps={self.config.max_qps}, sigs=<redacted>)")

    @property
    def base_url(self) -> str:
        return self.config.base_urls[self.breaker.host]

    async def __aenter__(self) -> DeskClient:
        self._prefix = {}
        self._http = make_sender(self.config.transport, self.config.concurrency,
                                 self.config.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _url(self, path: str) -> tuple[Any, str]:
        sig = self._sigs.current()
        cached = self._prefix.get(path)
        if cached is None or cached[:2] != (sig, self.base_url):
            redact.register(sig)
            prefix = (f"{self.base_url}/{path}?sdkappid={self.config.sdkappid}"
                      f"&identifier={quote(self.config.identifier, safe='@')}"
                      f"&usersig={quote(sig, safe='*-_')}&contenttype=json&random=")
            assert self._http is not None, "use DeskClient as an async context manager"
            cached = self._prefix[path] = (sig, self.base_url, self._http.urls(prefix))
        return cached[2](self._rng.getrandbits(32)), sig

    async def call(self, request: Request) -> Answer:
        """Any call of the API, on the same path as :meth:`get_session_state` (UserSig
        renewal, the shared limiter, classification, backup domain, retries)."""
        return await self.get_session_state(request)

    async def get_session_state(self, key: Key | Request) -> Answer:
        """Ask once for ``key``, retrying as the answer's class says; never raises except
        :class:`FatalError`, :class:`Outage` when the API is found unreachable before any
        answer for ``key`` (after one, that answer is returned), and cancellation.

        Not tenacity: each class has its own budget (transient, throttled, one renewal), a
        throttled retry is paced by the shared limiter rather than a sleep, and the backoff
        draws from the client's seeded generator on its clock (a virtual one in tests).
        """
        cfg = self.config
        stats = self.stats
        attempts = throttled = failures = 0
        renewed = False
        answer: Answer | None = None
        while True:
            try:
                answer = await self._attempt(key)
            except Outage as exc:
                if answer is None:
                    raise
                if exc.abandoned:  # a call was made all the same
                    attempts += 1
                    stats.retries += 1
                break  # no more calls: the last answer is this key's
            attempts += 1
            if attempts > 1:
                stats.retries += 1
            action = answer.action
            if action is Action.THROTTLED:
                throttled += 1
                stats.throttled += 1
                retry = throttled < cfg.max_throttled_attempts
                delay = 0.0  # the limiter, now slower, paces the retry
            elif action is Action.TRANSIENT:
                failures += 1
                retry = failures < cfg.max_attempts
                delay = self._backoff(failures)
            elif action is Action.RENEW_SIG and not renewed and self._sigs.renew(answer.sig):
                renewed = True
                stats.renewed_sigs = self._sigs.renewals
                log.info("UserSig refused (%s): renewed it, retrying", answer.code)
                retry, delay = True, 0.0
            elif action is Action.RENEW_SIG:
                fix = ("the ready-made usersig has expired: generate a new one or configure "
                       "secret_key" if not self._sigs.can_renew else
                       "a freshly signed UserSig was refused: check the server's clock and "
                       "the secret_key")
                raise FatalError(answer.code, f"{codes.describe(answer.code)} "
                                              f"(ErrorCode {answer.code}): {fix}")
            elif action is Action.FATAL:
                raise FatalError(answer.code, f"{codes.describe(answer.code)} (ErrorCode "
                                              f"{answer.code}): {codes.remedy(answer.code)}")
            else:
                retry = False
            if not retry:
                break
            if delay:
                await self._sleep(delay)
        answer.attempts, answer.throttled = attempts, throttled
        stats.codes[answer.code] += 1
        return answer

    async def _sleep(self, delay: float) -> None:
        """A backoff that ends early when the breaker trips (it may last 20 s)."""
        if self._stopped.is_set():
            return
        tasks = {asyncio.ensure_future(self._pace.sleep(delay)),
                 asyncio.ensure_future(self._stopped.wait())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with full jitter (AWS architecture blog's variant)."""
        cfg = self.config
        cap = min(cfg.backoff_max, cfg.backoff_base * 2 ** (failures - 1))
        return self._rng.uniform(cap / 2, cap)

    async def _attempt(self, key: Key | Request) -> Answer:
        assert self._http is not None, "use DeskClient as an async context manager"
        breaker = self.breaker
        if breaker.tripped:
            raise Outage(breaker.message())
        async with self._in_flight:
            sent = await self.limiter.acquire()
            if breaker.tripped:  # tripped while this call waited for its turn
                raise Outage(breaker.message())
            host = breaker.sending(sent)
            if self.send_times is not None:
                self.send_times.append(sent)
            stats = self.stats
            stats.calls += 1
            if stats.first_call is None:
                stats.first_call = sent
            url, sig = self._url(key.path)
            task = asyncio.current_task()
            assert task is not None
            self._posting.add(task)
            try:
                async with asyncio.timeout(self.config.timeout):
                    status, content = await self._http.post(url, key.body())
            except asyncio.CancelledError:
                if not self._stopped.is_set() or task.uncancel():
                    raise
                # abandoned by the breaker: no answer, as if not sent (the call only reads)
                stats.abandoned += 1
                raise Outage(breaker.message(), abandoned=True) from None
            except SendError as exc:  # no HTTP answer: a classified answer all the same
                status, content, code, info = 0, b"", exc.code, exc.text
                unreachable = exc.unreachable
            except TimeoutError:
                status, content = 0, b""
                code, info = codes.TIMEOUT, f"timed out after {self.config.timeout:g}s"
                unreachable = False
            else:
                code, info, unreachable = 0, "", False
            finally:
                self._posting.discard(task)
            done = self._pace.monotonic()
            stats.last_answer = done
        latency_ms = (done - sent) * 1000.0
        if status:
            answer = parse(key, status, content)
        else:
            answer = Answer(key, code, codes.classify(code), info)
        answer.latency_ms = latency_ms
        answer.answered_at = self._clock.time()
        answer.sig = sig
        self.limiter.answered(answer.action is Action.THROTTLED)
        if codes.reached_api(answer.code):
            breaker.reached(done)
        else:
            self._failed(host, answer.error_info, done, unreachable)
        return answer

    def _failed(self, host: int, reason: str, now: float, unreachable: bool) -> None:
        """A call the API did not answer: the breaker may move on to the backup domain for
        the rest of the run, or stop the run."""
        verdict = self.breaker.failed_call(host, reason, now, unreachable=unreachable)
        if verdict is Verdict.SWITCHED:
            self.stats.fallbacks += 1
            log.warning("cannot reach %s (%s): switching to the backup domain %s",
                        self.breaker.hosts[host], reason, self.breaker.hosts[self.breaker.host])
        elif verdict is Verdict.TRIPPED:
            self._stopped.set()
            for task in self._posting:  # calls still in flight: no answer is coming
                task.cancel()
            log.error("stopping: %s", self.breaker.message())

    async def pump(self, keys: Iterable[Key],
                   sink: Callable[[Answer], Awaitable[None]]) -> None:
        """Ask for every key, ``config.concurrency`` calls in flight, handing each answer to
        ``sink`` as it completes. A fatal answer cancels the rest and raises; an outage
        stops taking keys, lets every key already asked conclude, then raises
        :class:`Outage` (the keys not handed to ``sink`` were not asked)."""
        it = iter(keys)

        async def worker() -> None:
            for key in it:
                try:
                    answer = await self.get_session_state(key)
                except Outage:
                    return
                await sink(answer)

        try:
            # Twice the in-flight cap: workers sleeping in a backoff hold no connection.
            async with asyncio.TaskGroup() as tg:
                for _ in range(self.config.concurrency * 2):
                    tg.create_task(worker())
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        if self.breaker.finish():
            raise Outage(self.breaker.message())

    async def get_many(self, keys: Iterable[Key]) -> list[Answer]:
        """Answers for ``keys``, in completion order."""
        out: list[Answer] = []

        async def keep(answer: Answer) -> None:
            out.append(answer)

        await self.pump(keys, keep)
        return out


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = next((e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)),
                   exc.exceptions[0])
    return exc


def parse(key: Key | Request, status: int, content: bytes) -> Answer:
    """Classify one HTTP answer (pure: no I/O)."""
    if status != 200:
        code, action = codes.classify_http(status)
        return Answer(key, code, action, f"HTTP {status}")
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested past the parser's stack
        return Answer(key, codes.BAD_BODY, Action.TRANSIENT,
                      f"body is not JSON ({len(content)} bytes)")
    if not isinstance(doc, dict):
        return Answer(key, codes.BAD_BODY, Action.TRANSIENT, "body is not a JSON object")
    request_id = _text(doc.get("RequestId"))
    raw_code = doc.get("ErrorCode")
    if isinstance(raw_code, bool) or not isinstance(raw_code, int | str):
        return Answer(key, codes.BAD_ANSWER, Action.REJECTED,
                      "answer has no integer ErrorCode", request_id=request_id)
    try:
        code = int(raw_code)
    except ValueError:
        return Answer(key, codes.BAD_ANSWER, Action.REJECTED,
                      "answer has no integer ErrorCode", request_id=request_id)
    answer = Answer(key, code, codes.classify(code), _text(doc.get("ErrorInfo")) or "",
                    request_id=request_id)
    if code == 0 and not isinstance(key, Key):
        answer.payload = doc
    elif code == 0:
        answer.session_id = _text(doc.get("SessionId"))
        state = doc.get("CurrentState")
        # A state of the wrong type is kept as its JSON text; it normalizes to unknown.
        answer.raw_state = _text(state if isinstance(state, str) else json.dumps(state))
        answer.agent_id = _text(doc.get("AgentId"))
    elif code == codes.SESSION_ENDED and isinstance(key, Key):
        answer.session_id = key.session_id
    return answer


def _text(value: object, limit: int = 512) -> str | None:
    """A string field of an answer; anything else (or an over-long string) is dropped."""
    if isinstance(value, str):
        return value[:limit]
    return None


def make_sender(kind: str, max_connections: int, timeout: float) -> Sender:
    if kind == "aiohttp":
        return AiohttpSender(max_connections, timeout)
    if kind in ("httpx-aiohttp", "httpx"):
        # imported on demand: ~0.2 s of start-up
        from tencent_desk.api.transport_httpx import HttpxSender

        return HttpxSender(max_connections, timeout, over_aiohttp=kind == "httpx-aiohttp")
    raise ValueError(f"transport must be one of {', '.join(KINDS)}, not {kind!r}")
