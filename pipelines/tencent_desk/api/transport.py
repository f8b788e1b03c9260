"""HTTP senders for the client: one POST, answered with (status, body) or a SendError.

``aiohttp`` (the default) speaks aiohttp directly: about 0.5 ms of CPU per call on these
machines. ``httpx-aiohttp`` keeps httpx's API over aiohttp's pool (about 0.95 ms: httpx's
request and response models). ``httpx`` is httpx's own pool, whose per-request scan of
every connection costs ~12 ms per call at 100 in flight (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import yarl
from tencent_desk.api import codes
from tencent_desk.core import redact

log = logging.getLogger(__name__)

KINDS = ("aiohttp", "httpx-aiohttp", "httpx")
_HEADERS = {"Content-Type": "application/json"}


class SendError(Exception):
    """No HTTP answer: ``code`` is codes.TIMEOUT or codes.CONNECTION; ``unreachable`` when
    no connection could be made at all (the backup domain may help)."""

    def __init__(self, code: int, text: str, unreachable: bool) -> None:
        super().__init__(text)
        self.code, self.text, self.unreachable = code, text, unreachable


class Sender(Protocol):
    def urls(self, prefix: str) -> Callable[[int], Any]:
        """URLs ``prefix + random`` for one signed prefix, prepared once."""

    async def post(self, url: Any, body: bytes) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


def _text(exc: BaseException) -> str:
    return redact.redact(f"{type(exc).__name__}: {exc}")[:300]


class AiohttpSender:
    def __init__(self, max_connections: int, timeout: float) -> None:
        # Connecting gives up before the whole call does, so that a domain that swallows
        # connections is told from a slow answer (and the backup domain takes over).
        self._connect_timeout = min(timeout * 0.8, 5.0)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout))

    def urls(self, prefix: str) -> Callable[[int], yarl.URL]:
        # The prefix is quoted already: yarl need not parse it again.
        return lambda r: yarl.URL(prefix + str(r), encoded=True)

    async def post(self, url: yarl.URL, body: bytes) -> tuple[int, bytes]:
        try:
            async with self._session.post(url, data=body, headers=_HEADERS) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise SendError(codes.TIMEOUT, _text(exc), unreachable=True) from None
        except aiohttp.ClientConnectorError as exc:  # refused, no route, no name, TLS
            raise SendError(codes.CONNECTION, _text(exc), unreachable=True) from None
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise SendError(codes.TIMEOUT, _text(exc), unreachable=False) from None
        except (aiohttp.ClientError, OSError) as exc:  # dropped, reset, bad framing
            raise SendError(codes.CONNECTION, _text(exc), unreachable=False) from None

    async def aclose(self) -> None:
        await self._session.close()


def make_sender(kind: str, max_connections: int, timeout: float) -> Sender:
    if kind == "aiohttp":
        return AiohttpSender(max_connections, timeout)
    if kind in ("httpx-aiohttp", "httpx"):
        from tencent_desk.api.transport_httpx import (
            HttpxSender,  # imported on demand: ~0.2 s of start-up
        )

        return HttpxSender(max_connections, timeout, over_aiohttp=kind == "httpx-aiohttp")
    raise ValueError(f"transport must be one of {', '.join(KINDS)}, not {kind!r}")
