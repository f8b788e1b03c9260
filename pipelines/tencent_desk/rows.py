"""Answers -> normalized rows (Arrow tables, dlt's fast load path). Pure functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pyarrow as pa

from . import states
from .client import Answer
from .codes import Action

SESSION_STATES = pa.schema([
    ("run_id", pa.string()),
    ("session_id", pa.string()),
    ("client_user_id", pa.string()),
    ("customer_service_id", pa.string()),
    ("key_type", pa.string()),
    ("state", pa.string()),
    ("raw_state", pa.string()),
    ("agent_id", pa.string()),
    ("error_code", pa.int64()),
    ("error_info", pa.string()),
    ("request_id", pa.string()),
    ("polled_at", pa.timestamp("us", tz="UTC")),
    ("latency_ms", pa.float64()),
    ("attempts", pa.int32()),
])


def state_of(answer: Answer) -> str:
    if answer.action is Action.OK:
        return states.normalize(answer.raw_state)
    if answer.action is Action.ENDED:
        return states.ENDED
    return states.ERROR


def to_table(answers: Sequence[Answer], run_id: str, tally: Counter[str]) -> pa.Table:
    """One row per answer; ``tally`` counts the rows per state."""
    n = len(answers)
    cols: dict[str, list] = {f.name: [None] * n for f in SESSION_STATES}
    for i, a in enumerate(answers):
        key = a.key
        state = state_of(a)
        tally[state] += 1
        # A session key's row keeps the id asked about (an answer may lack SessionId); a
        # pair's row names the session the answer found, if any.
        cols["session_id"][i] = key.session_id or (
            (a.session_id or None) if a.action is Action.OK else None)
        cols["client_user_id"][i] = key.client_user_id
        cols["customer_service_id"][i] = key.customer_service_id
        cols["key_type"][i] = "session" if key.session_id else "pair"
        cols["state"][i] = state
        cols["raw_state"][i] = a.raw_state
        # The API names an agent only while one is offered or serving the chat.
        cols["agent_id"][i] = (a.agent_id or None) if state in states.WITH_AGENT else None
        cols["error_code"][i] = a.code
        cols["error_info"][i] = a.error_info or None
        cols["request_id"][i] = a.request_id
        cols["polled_at"][i] = int(a.answered_at * 1_000_000)
        cols["latency_ms"][i] = round(a.latency_ms, 3)
        cols["attempts"][i] = a.attempts
    cols["run_id"] = [run_id] * n
    return pa.Table.from_arrays([_array(cols[f.name], f.type) for f in SESSION_STATES],
                                schema=SESSION_STATES)


def _array(values: list, kind: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(kind):
        # Building a tz-aware array from ints costs ~0.2 s a call in pyarrow; a view is free.
        return pa.array(values, type=pa.int64()).view(kind)
    return pa.array(values, type=kind)
