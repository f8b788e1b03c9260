"""One table that classifies every answer of the Desk API: what a client does with it."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    OK = "ok"                # an answer with a state
    ENDED = "ended"          # 141005: the session is over; an answer, not a failure
    THROTTLED = "throttled"  # frequency limit: slow down, then retry
    TRANSIENT = "transient"  # retry with exponential backoff and jitter, bounded attempts
    RENEW_SIG = "renew_sig"  # UserSig expired or invalidated: renew once, then retry
    REJECTED = "rejected"    # permanent for this row: record it, do not retry
    FATAL = "fatal"          # wrong for every row: stop the run and say what to fix


# Pseudo-codes for answers that carry no ErrorCode, kept distinct from Tencent's own.
HTTP_ERROR_BASE = -1000      # -1000 - status, e.g. -1502 for HTTP 502
BAD_BODY = -1                # body is not JSON, truncated, or not an object
TIMEOUT = -2                 # connect or read timeout
CONNECTION = -3              # connection refused, reset or dropped
BAD_ANSWER = -4              # JSON envelope without a usable ErrorCode

SESSION_ENDED = 141005

_FIX_CREDENTIALS = "check sdkappid, identifier and secret_key/usersig in the tencent_desk config"

# code -> (action, what it means, what the user must do when it is fatal)
TABLE: dict[int, tuple[Action, str, str]] = {
    0: (Action.OK, "ok", ""),
    141005: (Action.ENDED, "session does not exist or has ended", ""),
    141002: (Action.TRANSIENT, "Desk internal error", ""),
    141004: (Action.REJECTED, "invalid parameter", ""),
    141000: (Action.FATAL, "the app is not a Desk application",
             "enable Tencent Cloud Desk for this SDKAppID, or use the SDKAppID of the Desk app"),
    60007: (Action.THROTTLED, "API call frequency over limit", ""),
    60011: (Action.THROTTLED, "SDKAppID call frequency over limit", ""),
    60018: (Action.THROTTLED, "too many requests", ""),
    60019: (Action.THROTTLED, "too many requests", ""),
    60008: (Action.TRANSIENT, "service timeout", ""),
    60014: (Action.TRANSIENT, "internal error", ""),
    70169: (Action.TRANSIENT, "internal error", ""),
    70500: (Action.TRANSIENT, "internal server error", ""),
    70001: (Action.RENEW_SIG, "UserSig expired", ""),
    70052: (Action.RENEW_SIG, "UserSig invalidated", ""),
    60002: (Action.FATAL, "bad request URL", "check api_url: it must be the Desk REST API root"),
    60003: (Action.FATAL, "request body is not valid JSON", "report this as a bug"),
    60009: (Action.FATAL, "bad resource path", "check api_url: it must be the Desk REST API root"),
    60015: (Action.FATAL, "identifier is not a string", _FIX_CREDENTIALS),
    60004: (Action.FATAL, "identifier or UserSig wrong", _FIX_CREDENTIALS),
    60005: (Action.FATAL, "identifier or UserSig wrong", _FIX_CREDENTIALS),
    60006: (Action.FATAL, "SDKAppID invalid", "check sdkappid: copy it from the Chat console"),
    60012: (Action.FATAL, "SDKAppID missing", "set sdkappid in the tencent_desk config"),
    60016: (Action.FATAL, "SDKAppID disabled", "re-enable the app in the Chat console"),
    60017: (Action.FATAL, "SDKAppID disabled", "re-enable the app in the Chat console"),
    70020: (Action.FATAL, "SDKAppID not found",
             "check sdkappid and region: the app lives in one"),
    60010: (Action.FATAL, "identifier is not an app administrator",
            "set identifier to an app administrator account (Chat console > Account management)"),
    70403: (Action.FATAL, "identifier is not an app administrator",
            "set identifier to an app administrator account (Chat console > Account management)"),
    60020: (Action.FATAL, "package not ready",
             "wait a few minutes for the Chat package, then rerun"),
    70002: (Action.FATAL, "UserSig empty", _FIX_CREDENTIALS),
    70003: (Action.FATAL, "UserSig malformed", _FIX_CREDENTIALS),
    70005: (Action.FATAL, "UserSig malformed", _FIX_CREDENTIALS),
    70009: (Action.FATAL, "UserSig fails verification: wrong secret key", _FIX_CREDENTIALS),
    70016: (Action.FATAL, "UserSig fails verification", _FIX_CREDENTIALS),
    70013: (Action.FATAL, "UserSig made for another identifier", _FIX_CREDENTIALS),
    70014: (Action.FATAL, "UserSig made for another SDKAppID", _FIX_CREDENTIALS),
    70050: (Action.FATAL, "locked after repeated failures",
            "fix the credentials, wait a minute, then rerun"),
    BAD_BODY: (Action.TRANSIENT, "answer body is not a JSON object", ""),
    TIMEOUT: (Action.TRANSIENT, "timed out", ""),
    CONNECTION: (Action.TRANSIENT, "connection failed", ""),
    BAD_ANSWER: (Action.REJECTED, "answer has no usable ErrorCode", ""),
}


def classify_http(status: int) -> tuple[int, Action]:
    """An HTTP status other than 200: throttled (429), transient (5xx, 408) or fatal (other 4xx)."""
    code = HTTP_ERROR_BASE - status
    if status == 429:
        return code, Action.THROTTLED
    if status >= 500 or status == 408:
        return code, Action.TRANSIENT
    return code, Action.FATAL


def classify(code: int) -> Action:
    """The action for an ErrorCode; a code no table names is recorded against its row."""
    if code <= HTTP_ERROR_BASE:
        return classify_http(HTTP_ERROR_BASE - code)[1]
    entry = TABLE.get(code)
    return entry[0] if entry else Action.REJECTED


def reached_api(code: int) -> bool:
    """False when the call never got an answer from the Desk API itself: a transport failure
    (no connection, reset, timeout) or a gateway's HTTP 5xx/408 (Tencent answers HTTP 200
    for everything it handles). These, and only these, count towards an outage."""
    if code in (TIMEOUT, CONNECTION):
        return False
    if code <= HTTP_ERROR_BASE:
        status = HTTP_ERROR_BASE - code
        return not (status >= 500 or status == 408)
    return True


def describe(code: int) -> str:
    if code <= HTTP_ERROR_BASE:
        return f"HTTP {HTTP_ERROR_BASE - code}"
    entry = TABLE.get(code)
    return entry[1] if entry else f"error {code}"


def remedy(code: int) -> str:
    """What the user must fix for a fatal code."""
    if code <= HTTP_ERROR_BASE:
        return "check api_url/region: the server refused the request path"
    entry = TABLE.get(code)
    return entry[2] if entry and entry[2] else _FIX_CREDENTIALS
