"""UserSig (TLSSigAPIv2, HMAC-SHA256): generate, verify, and keep one fresh for a client.

The format: HMAC-SHA256 over four (or five) ``TLS.*`` lines, put in a JSON object,
zlib-compressed, base64-encoded with ``+/=`` replaced by ``*-_``.
Verification never raises: it answers the error code the Desk API would answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_EXPIRE = 24 * 3600
# A generated sig is replaced once less than this share of its lifetime is left.
RENEW_AT_REMAINING = 0.25

OK = 0
EXPIRED = 70001
EMPTY = 70002
MALFORMED = 70003
BAD_SIGNATURE = 70009
WRONG_IDENTIFIER = 70013
WRONG_SDKAPPID = 70014

_TO_URL = str.maketrans("+/=", "*-_")
_FROM_URL = str.maketrans("*-_", "+/=")


def _digest(key: str, identifier: str, sdkappid: int, t: int, expire: int,
            userbuf_b64: str | None = None) -> str:
    text = (f"TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\n"
            f"TLS.time:{t}\nTLS.expire:{expire}\n")
    if userbuf_b64 is not None:
        text += f"TLS.userbuf:{userbuf_b64}\n"
    mac = hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def generate(sdkappid: int, identifier: str, key: str, *, expire: int = DEFAULT_EXPIRE,
             now: int | None = None, userbuf: bytes | None = None) -> str:
    """A UserSig for ``identifier``, valid ``expire`` seconds from ``now`` (default: now)."""
    t = int(time.time()) if now is None else int(now)
    doc: dict[str, object] = {
        "TLS.ver": "2.0",
        "TLS.identifier": str(identifier),
        "TLS.sdkappid": int(sdkappid),
        "TLS.expire": int(expire),
        "TLS.time": t,
    }
    userbuf_b64 = None
    if userbuf is not None:
        userbuf_b64 = base64.b64encode(userbuf).decode("ascii")
        doc["TLS.userbuf"] = userbuf_b64
    doc["TLS.sig"] = _digest(key, str(identifier), int(sdkappid), t, int(expire), userbuf_b64)
    packed = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
    return base64.b64encode(packed).decode("ascii").translate(_TO_URL)


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`verify`: ``code`` is 0 or the Desk API error code, ``reason`` says why."""

    code: int
    reason: str
    expires_at: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == OK


def decode(sig: str) -> dict | None:
    """The JSON document inside a UserSig, or None when it is not one."""
    try:
        raw = base64.b64decode(sig.translate(_FROM_URL).encode("ascii"), validate=True)
        doc = json.loads(zlib.decompress(raw).decode("utf-8"))
    except (ValueError, binascii.Error, zlib.error, UnicodeError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def verify(sig: str | None, sdkappid: int, identifier: str, key: str,
           now: float | None = None) -> Verdict:
    """Check a UserSig the way the server does; never raises."""
    if not sig:
        return Verdict(EMPTY, "UserSig is empty")
    doc = decode(sig)
    if doc is None:
        return Verdict(MALFORMED, "UserSig is not base64/zlib/JSON")
    try:
        s_appid = int(doc["TLS.sdkappid"])
        s_ident = doc["TLS.identifier"]
        s_time = int(doc["TLS.time"])
        s_expire = int(doc["TLS.expire"])
        s_mac = doc["TLS.sig"]
        userbuf = doc.get("TLS.userbuf")
        if not isinstance(s_ident, str) or not isinstance(s_mac, str):
            raise TypeError
        if userbuf is not None and not isinstance(userbuf, str):
            raise TypeError
    except (KeyError, TypeError, ValueError, OverflowError):
        return Verdict(MALFORMED, "UserSig lacks a field or has a field of the wrong type")
    if s_appid != int(sdkappid):
        return Verdict(WRONG_SDKAPPID, "UserSig was made for another SDKAppID")
    if s_ident != identifier:
        return Verdict(WRONG_IDENTIFIER, "UserSig was made for another identifier")
    t = time.time() if now is None else now
    if t > s_time + s_expire:
        return Verdict(EXPIRED, "UserSig has expired")
    expected = _digest(key, s_ident, s_appid, s_time, s_expire, userbuf)
    if not hmac.compare_digest(expected, s_mac):
        return Verdict(BAD_SIGNATURE, "UserSig signature does not match the secret key")
    return Verdict(OK, "ok", s_time + s_expire)


class UserSigProvider:
    """Hands a client the UserSig to send: generated from the secret key (cached, renewed
    well before expiry) or a ready-made one for users who keep the key elsewhere.

    Neither the key nor the sig appears in ``repr``.
    """

    def __init__(self, sdkappid: int, identifier: str, *, secret_key: str | None = None,
                 usersig: str | None = None, expire: int = DEFAULT_EXPIRE,
                 wall: Callable[[], float] = time.time) -> None:
        if not secret_key and not usersig:
            raise ValueError("either secret_key or usersig is needed")
        self.sdkappid = int(sdkappid)
        self.identifier = identifier
        self._key = secret_key or None
        self._fixed = None if secret_key else usersig
        self._expire = int(expire)
        self._wall = wall
        self._sig: str | None = None
        self._renew_after = 0.0
        self._lock = threading.Lock()
        self.renewals = 0

    @property
    def can_renew(self) -> bool:
        return self._key is not None

    def current(self) -> str:
        if self._fixed is not None:
            return self._fixed
        now = self._wall()
        if self._sig is None or now >= self._renew_after:
            self._mint(now)
        assert self._sig is not None
        return self._sig

    def renew(self, stale: str | None = None) -> bool:
        """Replace ``stale`` (the sig a server refused with 70001/70052) by a fresh one,
        unless a concurrent call already did. False when there is no key to sign with."""
        if self._key is None:
            return False
        if stale is None or stale == self._sig:
            self._mint(self._wall())
            self.renewals += 1
        return True

    def _mint(self, now: float) -> None:
        assert self._key is not None
        with self._lock:
            self._sig = generate(self.sdkappid, self.identifier, self._key,
                                 expire=self._expire, now=int(now))
            self._renew_after = now + self._expire * (1 - RENEW_AT_REMAINING)

    def secrets(self) -> tuple[str, ...]:
        """Every secret string this provider holds, for redaction."""
        return tuple(s for s in (self._key, self._fixed, self._sig) if s)

    def __repr__(self) -> str:
        source = "secret_key" if self._key else "usersig"
        return (f"UserSigProvider(sdkappid={self.sdkappid}, identifier={self.identifier!r}, "
                f"from={source}, secrets=<redacted>)")
