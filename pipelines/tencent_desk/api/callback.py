"""The callback protocol as Desk speaks it: URL parameters, the webhook token check, the
acknowledgement. Our readings of what the docs leave open are here, each marked ASSUMPTION.
"""

from __future__ import annotations

import hashlib
import hmac
import json

CALLBACK_COMMAND = "Desk.SessionEventNotify"
MAX_BODY = 1024 * 1024
ACK = json.dumps({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}).encode()


def expected_sign(token: str, request_time: str) -> str:
    """ASSUMPTION (Chat's webhook authentication, as we read it): the URL carries
    ``RequestTime`` (Unix seconds) and ``Sign``, the lowercase hex SHA-256 of token +
    RequestTime."""
    return hashlib.sha256((token + request_time).encode()).hexdigest()


def sign_ok(token: str, request_time: str | None, sign: str | None) -> bool:
    """Whether a callback's ``Sign`` matches the configured webhook token."""
    if not request_time or not sign:
        return False
    given = sign.lower().encode("utf-8", "replace")  # compare_digest refuses non-ASCII str
    return hmac.compare_digest(expected_sign(token, request_time).encode(), given)


def content_type_ok(header: bytes | None) -> bool:
    """ASSUMPTION: Desk says ``contenttype=json`` in the URL; a Content-Type header, when
    sent, must then be JSON."""
    if header is None:
        return True
    return header.split(b";", 1)[0].strip().lower() == b"application/json"


def request_id(params: dict[str, str], body: bytes) -> str:
    """ASSUMPTION: without ``RequestID`` (the English page lacks it) a repeat is the same
    body again."""
    given = params.get("RequestID", "").strip()
    return given[:256] if given else "body:" + hashlib.sha256(body).hexdigest()


def failure(reason: str) -> bytes:
    return json.dumps({"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": reason}).encode()
