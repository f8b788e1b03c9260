"""A session record of ``describe_im_cdr_list`` as the API answers it: each page checked
field by field, and read under the assumptions the documentation leaves open. Pure functions.

Tencent's documentation leaves two things open; the readings this project takes are kept
here, in :data:`RECORD_TIMES` and :data:`END_STATUS_KINDS`, and nowhere else (the
simulator derives its records from its truth with the same functions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# ASSUMPTION (undocumented): what ``Timestamp`` marks and what ``Duration`` covers.
# "end": Timestamp is when the session ended and Duration the whole session, from the
# customer's first message to the end: started_at = Timestamp - Duration.
# "start": Timestamp is when it started: ended_at = Timestamp + Duration.
# A real account that shows the other reading flips this one value.
RECORD_TIMES = "end"

# ASSUMPTION (undocumented, open vocabulary): EndStatus values -> what happened. The docs
# name only AgentEndedSession; the others are the simulator's names for the outcomes the
# docs describe. An unlisted value is kept raw and counts as "other".
END_STATUS_KINDS: dict[str, str] = {
    "AgentEndedSession": "agent_ended",
    "UserEndedSession": "user_ended",
    "UserTimeout": "user_timeout",
    "QueueAbandoned": "abandoned",
    "ChatbotEnded": "chatbot_only",
}

# field -> (type, may it be absent or empty)
_FIELDS: dict[str, tuple[type, bool]] = {
    "SessionId": (str, False),
    "ClientUserId": (str, True),
    "ClientUserNickName": (str, True),
    "AgentId": (str, True),
    "AgentGroupId": (str, True),
    "AgentGroupName": (str, True),
    "ChannelType": (str, True),
    "Duration": (int, False),
    "EndStatus": (str, True),
    "SatisfactionSelected": (int, True),
    "Timestamp": (int, False),
}
_MAX_TEXT = 512
class BadRecord(ValueError):
    """A record that cannot be stored as it came: the message names the field."""


def record_span(timestamp: int, duration: int) -> tuple[int, int]:
    """(started_at, ended_at) in Unix seconds from a record, under :data:`RECORD_TIMES`."""
    if RECORD_TIMES == "end":
        return timestamp - duration, timestamp
    return timestamp, timestamp + duration


def record_times(started_at: float, ended_at: float) -> tuple[int, int]:
    """The inverse: (Timestamp, Duration) a record of a session with these times carries."""
    start, end = math.floor(started_at), math.floor(ended_at)
    return (end if RECORD_TIMES == "end" else start), end - start


def end_kind(end_status: str | None) -> str:
    return END_STATUS_KINDS.get(end_status or "", "other")


def check(raw: object) -> dict[str, Any]:
    """One record checked field by field; raises :class:`BadRecord` naming the problem."""
    if not isinstance(raw, Mapping):
        raise BadRecord(f"a record is {type(raw).__name__}, not an object")
    out: dict[str, Any] = {}
    for name, (kind, optional) in _FIELDS.items():
        value = raw.get(name)
        if value is None or value == "":
            if not optional:
                raise BadRecord(f"record {_sid(raw)} has no {name}")
            out[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            raise BadRecord(f"record {_sid(raw)}: {name} is {type(value).__name__}, "
                            f"not {kind.__name__}")
        out[name] = value[:_MAX_TEXT] if isinstance(value, str) else value
    if out["Duration"] < 0 or out["Timestamp"] <= 0:
        raise BadRecord(f"record {_sid(raw)}: Duration {out['Duration']} or Timestamp "
                        f"{out['Timestamp']} out of range")
    rating = out["SatisfactionSelected"]
    if rating is not None and not 0 <= rating <= 5:
        raise BadRecord(f"record {_sid(raw)}: SatisfactionSelected {rating} not in 0..5")
    return out


def _sid(raw: Mapping) -> str:
    sid = raw.get("SessionId")
    return repr(sid[:64]) if isinstance(sid, str) else "without SessionId"


def check_page(doc: object) -> tuple[int, list[dict[str, Any]]]:
    """(TotalCount, checked records) of one answered page; :class:`BadRecord` otherwise."""
    if not isinstance(doc, Mapping):
        raise BadRecord("the answer is not an object")
    total, found = doc.get("TotalCount"), doc.get("IMCdrList")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise BadRecord(f"TotalCount is {_shown(total)}, not a count")
    if found is None:
        found = []
    if not isinstance(found, list):
        raise BadRecord(f"IMCdrList is {type(found).__name__}, not a list")
    return total, [check(r) for r in found]


def _shown(value: object) -> str:
    return "missing" if value is None else f"{type(value).__name__} {str(value)[:20]!r}"
