"""Tencent Cloud Desk session states: a dlt source.

For every key of a seed table (a session id, or a user + customer-service account pair)
it asks Desk's ``v4/desk_http_svc/get_session_state`` for the current state, at up to
``max_qps`` calls per second with ``max_concurrency`` calls in flight, and loads:

* ``session_states``: one row per key per run: normalized ``state`` (chatbot, queuing,
  waiting_for_agent, agent, not_in_session, ended, unknown, error), the raw state, the
  agent, the answered session id, ``polled_at``, latency, attempts, error code;
* ``seed_rejects``: seed rows that were not asked, with the reason;
* ``runs``: one row per run: timing, configuration (never a secret), counts, calls/s.

Sessions seen ending (141005) in an earlier run, or with a session record, are not asked
again unless ``repoll_ended``; pairs are always asked.

With ``records`` (or ``records_from``) it also loads ``session_records``: one row per ended
session from ``describe_im_cdr_list``, incrementally (see :mod:`.record_source`).
Config and secrets resolve from ``.dlt/config.toml``, ``.dlt/secrets.toml`` or
``SOURCES__TENCENT_DESK__<KEY>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tencent_desk.job.source import tencent_desk, tencent_desk_apps

__all__ = ["tencent_desk", "tencent_desk_apps"]


def __getattr__(name: str) -> Any:
    # Lazy: dlt and the API client cost about 0.6 s to import, and a notebook that only reads
    # the database (``tencent_desk.analysis``) should not pay for them.
    if name in __all__:
        from tencent_desk.job import source

        return getattr(source, name)
    raise AttributeError(f"module 'tencent_desk' has no attribute {name!r}")
