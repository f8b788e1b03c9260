"""httpx senders: httpx's API over aiohttp's pool (``httpx-aiohttp``) or over its own."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from tencent_desk.api import codes
from tencent_desk.api.transport import HEADERS, SendError, error_text


class HttpxSender:
    def __init__(self, max_connections: int, timeout: float, over_aiohttp: bool) -> None:
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        transport = AiohttpTransport(limits=limits, verify=True) if over_aiohttp else None
        self._client = httpx.AsyncClient(
            transport=transport, limits=limits, verify=True, trust_env=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout * 0.8, 5.0)))

    def urls(self, prefix: str) -> Callable[[int], httpx.URL]:
        # httpx's public API only: it checks every character of each URL (~80 µs for a
        # signed one of ~300 characters on an idle core; URL.copy_with checks the whole URL
        # again too), a small share of httpx's own cost per call (docs/transports.md).
        return lambda r: httpx.URL(prefix + str(r))

    async def post(self, url: httpx.URL, body: bytes) -> tuple[int, bytes]:
        try:
            response = await self._client.post(url, content=body, headers=HEADERS)
            return response.status_code, response.content
        except Exception as exc:
            raise _from_httpx(exc) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def _from_httpx(exc: BaseException) -> SendError:
    cause = exc.__cause__ or exc
    text = error_text(cause)
    # httpx_aiohttp turns every aiohttp connection error it has no closer match for (a
    # dropped or reset connection too) into httpx.ConnectTimeout: the cause tells.
    no_handshake = isinstance(cause, aiohttp.ConnectionTimeoutError) or (
        isinstance(exc, httpx.ConnectTimeout) and not isinstance(cause, aiohttp.ClientError))
    unreachable = no_handshake or isinstance(cause, aiohttp.ClientConnectorError) or isinstance(
        exc, httpx.ConnectError)
    timed_out = no_handshake or isinstance(exc, TimeoutError) or isinstance(
        cause, aiohttp.ServerTimeoutError | httpx.TimeoutException)
    return SendError(codes.TIMEOUT if timed_out else codes.CONNECTION, text, unreachable)
