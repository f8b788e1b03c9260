"""The callback protocol as Desk speaks it: URL parameters, the webhook token check, the
acknowledgement. Every reading of undocumented behaviour is in ASSUMPTIONS, named so.
"""

from __future__ import annotations

import hashlib
import hmac
import json

# What the docs leave open, and how this receiver reads it.
ASSUMPTIONS = {
    # Chat's webhook authentication, our reading: the URL carries RequestTime (Unix
    # seconds) and Sign = lowercase hex SHA-256 of token + RequestTime.
    "sign": "sha256_hex(token + RequestTime)",
    # Desk says contenttype=json in the URL; a Content-Type header, when sent, must be JSON.
    "content_type": "application/json or none",
    # The English page lacks RequestID: without one, a repeat is the same body again.
    "request_id_fallback": "sha256 of the body",
}
MAX_BODY = 1024 * 1024
ACK = json.dumps({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}).encode()


def expected_sign(token: str, request_time: str) -> str:
    return hashlib.sha256((token + request_time).encode()).hexdigest()


def sign_ok(token: str, request_time: str | None, sign: str | None) -> bool:
    """Whether a callback's ``Sign`` matches the configured webhook token."""
    if not request_time or not sign:
        return False
    return hmac.compare_digest(expected_sign(token, request_time), sign.lower())


def content_type_ok(header: bytes | None) -> bool:
    if header is None:
        return True
    return header.split(b";", 1)[0].strip().lower() == b"application/json"


def request_id(params: dict[str, str], body: bytes) -> str:
    given = params.get("RequestID", "").strip()
    return given[:256] if given else "body:" + hashlib.sha256(body).hexdigest()


def failure(reason: str) -> bytes:
    return json.dumps({"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": reason}).encode()
