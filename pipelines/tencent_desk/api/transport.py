"""What an HTTP sender is for the client: one POST, answered with (status, body) or a
SendError. The senders: :mod:`.transport_aiohttp` and :mod:`.transport_httpx`.

``aiohttp`` (the default) speaks aiohttp directly: about 0.5 ms of CPU per call on these
machines. ``httpx-aiohttp`` keeps httpx's API over aiohttp's pool (about 0.95 ms: httpx's
request and response models). ``httpx`` is httpx's own pool, whose per-request scan of
every connection costs ~12 ms per call at 100 in flight (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tencent_desk.core import redact, settings

KINDS = settings.TRANSPORTS
HEADERS = {"Content-Type": "application/json"}


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


def error_text(exc: BaseException) -> str:
    return redact.redact(f"{type(exc).__name__}: {exc}")[:300]
