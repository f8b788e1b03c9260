"""Answers -> normalized rows (Arrow tables, dlt's fast load path). Pure functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from tencent_desk.api import states
from tencent_desk.api.codes import Action

if TYPE_CHECKING:  # the client (aiohttp) is not needed to read rows: analysis imports this
    from tencent_desk.api.client import Answer

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
    ("sdkappid", pa.int64()),  # the app asked: several apps share the tables
])


def state_of(answer: Answer) -> str:
    if answer.action is Action.OK:
        return states.normalize(answer.raw_state)
    if answer.action is Action.ENDED:
        return states.ENDED
    return states.ERROR


def to_table(answers: Sequence[Answer], run_id: str, tally: Counter[str],
             sdkappid: int | None = None) -> pa.Table:
    """One row per answer of app ``sdkappid``; ``tally`` counts the rows per state."""
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
    cols["sdkappid"] = [sdkappid] * n
    return pa.Table.from_arrays([_array(cols[f.name], f.type) for f in SESSION_STATES],
                                schema=SESSION_STATES)


def _array(values: list, kind: pa.DataType) -> pa.Array:
    """Built from buffers, not with pa.array(): pyarrow's first pa.array() imports pandas
    (its pandas shim), ~2 s of CPU and ~40 MB of memory for a job that never uses pandas,
    paid in the middle of the poll."""
    n = len(values)
    if pa.types.is_string(kind):
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int32, count=n), out=offsets[1:])
        return pa.Array.from_buffers(kind, n, [_validity(values), pa.py_buffer(offsets),
                                               pa.py_buffer(b"".join(encoded))])
    # Timestamps are built as int64 and viewed: a tz-aware array from ints is slow.
    number = pa.int64() if pa.types.is_timestamp(kind) else kind
    dtype = {pa.int64(): np.int64, pa.int32(): np.int32, pa.float64(): np.float64}[number]
    data = np.array([0 if v is None else v for v in values], dtype=dtype)
    return pa.Array.from_buffers(number, n, [_validity(values), pa.py_buffer(data)]).view(kind)


def _validity(values: list) -> pa.Buffer | None:
    """Arrow's validity bitmap (LSB first), or None when nothing is null."""
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
