"""Session records (``describe_im_cdr_list``) -> normalized rows. Pure functions.

What a record's fields mean is read in :mod:`tencent_desk.api.record_fields`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from tencent_desk.api.record_fields import record_span
from tencent_desk.job.rows import _array as arrow_column

SESSION_RECORDS = pa.schema([
    pa.field("session_id", pa.string(), nullable=False),  # the merge key
    ("client_user_id", pa.string()),
    ("client_user_nickname", pa.string()),
    ("agent_id", pa.string()),
    ("agent_group_id", pa.string()),
    ("agent_group_name", pa.string()),
    ("channel_type", pa.string()),
    ("duration_s", pa.int64()),
    ("end_status", pa.string()),
    ("satisfaction", pa.int32()),
    ("record_timestamp", pa.timestamp("us", tz="UTC")),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("ended_at", pa.timestamp("us", tz="UTC")),
    ("run_id", pa.string()),
    pa.field("sdkappid", pa.int64(), nullable=False),  # with session_id, the merge key
])

_US = 1_000_000  # timestamps in microseconds, as session_states has them


def to_table(records: Sequence[Mapping[str, Any]], run_id: str, *,
             keep_nicknames: bool = False, sdkappid: int | None = None) -> pa.Table:
    """Checked records (:func:`~tencent_desk.api.record_fields.check`) -> ``session_records``
    rows. The nickname is personal data: no column at all unless ``keep_nicknames``."""
    cols: dict[str, list] = {f.name: [] for f in SESSION_RECORDS}
    for r in records:
        start, end = record_span(r["Timestamp"], r["Duration"])
        cols["session_id"].append(r["SessionId"])
        cols["client_user_id"].append(r["ClientUserId"])
        cols["client_user_nickname"].append(r["ClientUserNickName"])
        cols["agent_id"].append(r["AgentId"])
        cols["agent_group_id"].append(r["AgentGroupId"])
        cols["agent_group_name"].append(r["AgentGroupName"])
        cols["channel_type"].append(r["ChannelType"])
        cols["duration_s"].append(r["Duration"])
        cols["end_status"].append(r["EndStatus"])
        cols["satisfaction"].append(r["SatisfactionSelected"] or None)  # 0: no rating
        cols["record_timestamp"].append(r["Timestamp"] * _US)
        cols["started_at"].append(start * _US)
        cols["ended_at"].append(end * _US)
        cols["run_id"].append(run_id)
        cols["sdkappid"].append(sdkappid)
    schema = SESSION_RECORDS if keep_nicknames else SESSION_RECORDS.remove(
        SESSION_RECORDS.get_field_index("client_user_nickname"))
    return pa.Table.from_arrays([arrow_column(cols[f.name], f.type) for f in schema],
                                schema=schema)
