"""What a key (``session_id``, ``client_user_id``, ``customer_service_id``) may not hold, in
one place: the job's seed check (SQL, over a seed's millions of rows) and the receiver (one
callback at a time, so that no event stores a key the seed check would refuse on every run)
apply this same rule, each in its own engine.

Control characters are C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F): Unicode's
``Cc``. The pattern is written so that Python's ``re`` and DuckDB's RE2 read it alike
(tests/test_receiver.py checks both over every character up to U+3000).
"""

from __future__ import annotations

import re

from tencent_desk.core.sql import literal

CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f]"
CONTROL_CHARACTERS_REASON = "contains control characters"
_CONTROL = re.compile(CONTROL_CHARACTERS)


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (C0, DEL or C1)."""
    return _CONTROL.search(text) is not None


def control_characters_sql(column: str) -> str:
    """The same test in SQL (DuckDB): true where ``column`` holds a control character."""
    return f"regexp_matches({column}, {literal(CONTROL_CHARACTERS)})"
