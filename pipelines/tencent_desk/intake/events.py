"""Desk's ``SessionEventNotify`` events: what their names mean, how a callback body becomes a
``session_events`` row, and how a session's times are derived from its events.

Only three event names are in our sources (``SessionBegin``, ``ChatBot.UserSendMsg``,
``ChatBot.RobotSendMsg``). The docs list more kinds without naming them: the names below
marked ``documented=False`` are OUR ASSUMPTION (the simulator sends them; a real account may
spell them otherwise). Times never depend on names: a session's first event is its start,
its first event carrying an ``AgentId`` is when an agent took it, its last event bounds its
end. Names only add "closed" (the session ended) where a closing name is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tencent_desk.api.callback import CALLBACK_COMMAND
from tencent_desk.core import settings
from tencent_desk.core.keys import CONTROL_CHARACTERS_REASON, has_control_characters
from tencent_desk.core.sql import literals


@dataclass(frozen=True)
class EventName:
    meaning: str       # start, message, transfer_started, transfer_succeeded, ... closed
    documented: bool   # False: a name we assumed, to be confirmed on a real account


EVENT_NAMES: dict[str, EventName] = {
    "SessionBegin": EventName("start", True),
    "ChatBot.UserSendMsg": EventName("message", True),
    "ChatBot.RobotSendMsg": EventName("message", True),
    # --- assumed names (the docs list these kinds, our sources do not name them) ---
    "Agent.UserSendMsg": EventName("message", False),
    "Agent.AgentSendMsg": EventName("message", False),
    "TransferToAgent.Start": EventName("transfer_started", False),
    "TransferToAgent.Success": EventName("transfer_succeeded", False),
    "TransferToAgent.Fail": EventName("transfer_failed", False),
    "Agent.Transfer": EventName("agent_transfer", False),
    "SessionEnd": EventName("closed", False),
    "UserTimeout": EventName("closed", False),
}
CLOSING = tuple(name for name, e in EVENT_NAMES.items() if e.meaning == "closed")

# EventTime is milliseconds; outside these bounds (1970..2999) it is no time at all.
_MAX_EVENT_TIME_MS = 32_503_680_000_000
# A number sent as a string has at most this many digits: every valid EventTime (14) and
# satisfaction (10) has fewer, leading zeros included.
_MAX_DIGITS = 20

# The columns of ``session_events`` (spool records carry the same keys, times in ms).
COLUMNS = ("session_id", "event", "event_time", "client_user_id", "customer_service_id",
           "agent_id", "forward_from_agent_id", "channel_type", "is_contact_user",
           "satisfaction", "msg_key", "request_id", "received_at", "sdkappid")
CONTENT_COLUMNS = ("msg_body", "cloud_custom_data")  # only with keep_message_content
_TEXT_FIELDS = {"client_user_id": "ClientUserId", "customer_service_id": "CustomerServiceId",
                "agent_id": "AgentId", "forward_from_agent_id": "ForwardFromAgentId",
                "channel_type": "ChannelType", "msg_key": "MsgKey"}
# The columns a seed's key is made of (job/seeds.py checks them with the same rule).
_KEY_FIELDS = {"session_id": "SessionId", "client_user_id": "ClientUserId",
               "customer_service_id": "CustomerServiceId"}


class BadEvent(ValueError):
    """A callback body that is no usable event; ``reason`` is a short code for counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def meaning(name: str | None) -> str:
    """What an event name means; ``unknown`` for a name not in the table."""
    entry = EVENT_NAMES.get(name or "")
    return entry.meaning if entry else "unknown"


def to_record(doc: Any, request_id: str, received_ms: int, *,
              keep_content: bool = False, sdkappid: int | None = None) -> dict[str, Any]:
    """A spool record (a ``session_events`` row, times in ms) from a parsed callback body.
    Raises :class:`BadEvent` for a body that is not a Desk session event.

    Message text (``MsgBody``) and the app's ``CloudCustomData`` are personal data: they
    are dropped here unless ``keep_content``.
    """
    if not isinstance(doc, dict):
        raise BadEvent("not_object", "the body is not a JSON object")
    command = doc.get("CallbackCommand", CALLBACK_COMMAND)
    if command != CALLBACK_COMMAND:
        raise BadEvent("command", f"CallbackCommand in the body is not {CALLBACK_COMMAND}")
    session_id = doc.get("SessionId")
    if not isinstance(session_id, str) or not session_id.strip():
        raise BadEvent("session_id", "SessionId is missing or not a string")
    if len(session_id) > settings.MAX_KEY_LENGTH:
        raise BadEvent("session_id", f"SessionId is longer than {settings.MAX_KEY_LENGTH}")
    event_time = _integer(doc.get("EventTime"))
    if event_time is None or not 0 < event_time < _MAX_EVENT_TIME_MS:
        raise BadEvent("event_time", "EventTime is missing or not milliseconds since 1970")
    # a rating that is no whole number is dropped, not the event: refused, Desk would not
    # send its times again ("" for no rating would cost every unrated session's events)
    satisfaction = _integer(doc.get("SatisfactionSelected"))
    if satisfaction is not None and not -(2**31) <= satisfaction < 2**31:
        satisfaction = None
    event = doc.get("Event")
    record: dict[str, Any] = {
        "session_id": session_id.strip(),
        "event": _text(event),
        "event_time": event_time,
        **{col: _text(doc.get(field)) for col, field in _TEXT_FIELDS.items()},
        "is_contact_user": doc["IsContactUser"] if isinstance(
            doc.get("IsContactUser"), bool) else None,
        "satisfaction": satisfaction,
        "request_id": request_id,
        "received_at": received_ms,
        "sdkappid": sdkappid,  # the app whose callback it was (the URL's SdkAppid)
    }
    for col, field in _KEY_FIELDS.items():  # the seed check would refuse it on every run
        if record[col] is not None and has_control_characters(record[col]):
            raise BadEvent(col, f"{field} {CONTROL_CHARACTERS_REASON}")
    if keep_content:
        body = doc.get("MsgBody")
        try:
            record["msg_body"] = None if body is None else json.dumps(body, ensure_ascii=False)
        except RecursionError:  # parsed just below the limit, nested deeper to write
            raise BadEvent("msg_body", "MsgBody is nested too deeply") from None
        record["cloud_custom_data"] = _text(doc.get("CloudCustomData"))
    return record


def _text(value: Any) -> str | None:
    """Strings as sent (at most MAX_KEY_LENGTH), numbers as text, anything else dropped."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or not value:
        return None
    return value[:settings.MAX_KEY_LENGTH]


def _integer(value: Any) -> int | None:
    """A JSON integer, or one written as ASCII digits (at most ``_MAX_DIGITS``); None for
    anything else: a bool, a float (1e999, NaN), a list, an object, digits ``str.isdigit``
    takes but ``int`` does not ('²') or that ``int`` refuses to read (over 4300 of them)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if (isinstance(value, str) and value.isascii() and value.isdigit()
            and len(value) <= _MAX_DIGITS):
        return int(value)
    return None


# One row per session from its events: the derived times, whether a closing name was seen.
EVENT_TIMES_VIEW = f"""
CREATE VIEW {{view}} AS
SELECT sdkappid, session_id,
       min(client_user_id) AS client_user_id,
       min(customer_service_id) AS customer_service_id,
       min(event_time) AS began_at,
       min(event_time) FILTER (WHERE agent_id IS NOT NULL) AS agent_at,
       {{first_agent_id}} AS first_agent_id,
       max(event_time) AS last_event_at,
       bool_or(event IN ({literals(CLOSING)})) AS closed,
       count(*) AS events
FROM {{table}}
GROUP BY sdkappid, session_id
"""
