"""``session_state_latest``: the latest row per key, a view the job makes after each load
(and a reader makes again over pulled rows)."""

from __future__ import annotations

from typing import Any

from tencent_desk.job.rows import SESSION_STATES

VIEW = "session_state_latest"

LATEST_VIEW = """
CREATE VIEW {view} AS
SELECT {columns} FROM (
    SELECT s.*, row_number() OVER (
        PARTITION BY sdkappid, key_type,
            CASE WHEN key_type = 'session' THEN session_id END,
            CASE WHEN key_type = 'pair' THEN client_user_id END,
            CASE WHEN key_type = 'pair' THEN customer_service_id END
        ORDER BY polled_at DESC, run_id DESC) AS rn
    FROM {table} AS s) AS ranked
WHERE rn = 1
"""


def latest_sql(view: str, table: str) -> str:
    """The view ``view`` over the session_states table ``table`` (both qualified)."""
    return LATEST_VIEW.format(view=view, table=table, columns=", ".join(SESSION_STATES.names))


def replace(client: Any) -> None:
    """(Re)make the view in a dlt sql_client's dataset; dropped first, as PostgreSQL
    replaces a view only when its columns stay the same."""
    name = client.make_qualified_table_name
    client.execute_sql(f"DROP VIEW IF EXISTS {name(VIEW)}")
    client.execute_sql(latest_sql(name(VIEW), name("session_states")))
