"""What reaches stderr: every log record as one line, whichever library logs it.

dlt logs a full traceback when it retries a load job (a full disk: two of them, some 40
lines, before our own one-line error); cron mails them and log scanners page on them. Below
DEBUG every record is cut to one line here, in the record factory (dlt's logger has its own
handler and does not propagate, so no root handler or filter would see its records), with
the exception's own last line kept; ``--log-level DEBUG`` shows everything as logged.
Python warnings and exceptions that end a thread go through logging too, and so get the
same treatment.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tencent_desk.core import redact

DETAILS = "(details: --log-level DEBUG)"
_TRACEBACK = "Traceback (most recent call last):"
_installed: list[bool] = []


def one_line(message: str, detail: str | None = None) -> str:
    """``message`` cut to its first line; a traceback (in ``detail`` or inside the message)
    kept as its last line, the exception itself."""
    text = message.strip()
    if _TRACEBACK in text:
        text, _, tail = text.partition(_TRACEBACK)
        detail = (detail or "") + _TRACEBACK + tail
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    cut = len(lines) > 1
    if detail and detail.strip():
        last = [line.strip() for line in detail.strip().splitlines() if line.strip()][-1]
        if last != _TRACEBACK and last not in first:
            first = f"{first.rstrip(':')}: {last}" if first else last
        cut = True
    return f"{first} {DETAILS}" if cut else first


def install(level: str) -> None:
    """Every record created from now on in this process is one line, unless ``level`` is
    DEBUG (idempotent); Python warnings and uncaught thread exceptions are logged."""
    logging.captureWarnings(True)
    threading.excepthook = _thread_died
    if level == "DEBUG" or _installed:
        return
    _installed.append(True)
    redact.install()  # its factory runs first: what is cut here is already scrubbed
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.exc_info and record.exc_info[1] is not None:  # a factory without redact's
            import traceback

            record.exc_text = "".join(traceback.format_exception(*record.exc_info))
        message = record.getMessage()
        if "\n" in message.strip() or record.exc_text or record.stack_info:
            record.msg, record.args = one_line(message, record.exc_text), None
        record.exc_info = record.exc_text = record.stack_info = None
        return record

    logging.setLogRecordFactory(factory)


def _thread_died(hook: threading.ExceptHookArgs) -> None:
    if hook.exc_type is SystemExit:
        return
    name = hook.thread.name if hook.thread is not None else "?"
    logging.getLogger("desk_sessions").error(
        "thread %s stopped", name,
        exc_info=(hook.exc_type, hook.exc_value or hook.exc_type(), hook.exc_traceback))
