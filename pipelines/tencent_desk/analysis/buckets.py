"""Intervals of time as the figures cut them: a length in whole seconds, and the SQL for the
interval holding an instant (aligned to the Unix epoch, UTC)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd


def interval_seconds(interval: str | timedelta | float) -> int:
    """``"15min"``, a timedelta or a number of seconds, as whole seconds; anything else (not
    positive, a fraction of a second) is refused rather than rounded."""
    seconds = (
        float(interval) if isinstance(interval, int | float)
        else pd.Timedelta(interval).total_seconds()
    )
    if seconds <= 0 or seconds != int(seconds):
        raise ValueError(f"interval must be a positive whole number of seconds, got {interval!r}")
    return int(seconds)


def bucket_sql(epoch_s: str, w: int) -> str:
    """SQL for the start (epoch seconds) of the ``w``-second interval holding ``epoch_s``."""
    return f"CAST(floor({epoch_s} / {w}) * {w} AS BIGINT)"
