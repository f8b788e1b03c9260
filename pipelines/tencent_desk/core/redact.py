"""Keeps the secret key and every UserSig out of log records, messages and tracebacks.

httpx and aiohttp put the full URL, query string and UserSig included, into their log
lines and exceptions; a log record factory scrubs every record from every logger, and
``redact()`` scrubs any text we build from an exception.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

_USERSIG = re.compile(r"(usersig=)[^&\s'\"<>)]+", re.IGNORECASE)
_MASK = "<redacted>"
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register(*values: str | None) -> None:
    """Remember exact strings (keys, ready-made sigs) that must never be shown."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 6)


def redact(text: str) -> str:
    if not text:
        return text
    text = _USERSIG.sub(r"\1" + _MASK, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def install() -> None:
    """Scrub every log record created from now on, in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's bug, not a leak
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
