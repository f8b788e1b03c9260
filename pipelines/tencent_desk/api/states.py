"""Session states: every documented spelling of ``CurrentState`` -> one normalized name."""

from __future__ import annotations

CHATBOT = "chatbot"
QUEUING = "queuing"
WAITING_FOR_AGENT = "waiting_for_agent"
AGENT = "agent"
NOT_IN_SESSION = "not_in_session"
ENDED = "ended"
UNKNOWN = "unknown"
ERROR = "error"

ALL = (CHATBOT, QUEUING, WAITING_FOR_AGENT, AGENT, NOT_IN_SESSION, ENDED, UNKNOWN, ERROR)
# States in which the API names the agent.
WITH_AGENT = frozenset({WAITING_FOR_AGENT, AGENT})
# A customer waits for an answer in both: queued, then offered to an agent who has not accepted.
WAIT_STATES = (QUEUING, WAITING_FOR_AGENT)


def merged(names: tuple[str, ...] | list[str]) -> str:
    """The name of states counted as one, e.g. 'queuing+waiting_for_agent'."""
    return "+".join(names)

# Keys are folded: case, spaces, underscores and hyphens removed. The English docs write
# "Not in session" and "Queuing", the Chinese ones "NotInSession" and "Queueing".
_SPELLINGS = {
    "chatbot": CHATBOT,
    "queuing": QUEUING,
    "queueing": QUEUING,
    "waitingforagentanswering": WAITING_FOR_AGENT,
    "agent": AGENT,
    "notinsession": NOT_IN_SESSION,
}
_FOLD = str.maketrans("", "", " _-\t")


def normalize(raw: object) -> str:
    """The normalized state for a raw ``CurrentState``; anything unnamed is ``unknown``."""
    if not isinstance(raw, str):
        return UNKNOWN
    return _SPELLINGS.get(raw.casefold().translate(_FOLD), UNKNOWN)
