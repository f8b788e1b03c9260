"""The soak, short (``make test-slow``): a few minute-by-minute runs of the real CLI on a
compressed clock, callbacks through ``desk-sessions listen``, records at the hour, a reader
polling the snapshot; nothing acknowledged or answered lost or doubled. The day-long
version with its figures is ``make soak`` (benchmarks/soak.py)."""

from __future__ import annotations

import pytest

from .soak_day import check, soak


@pytest.mark.slow
@pytest.mark.timeout(3600)  # some 10-30 s per run of the CLI on a busy 2-core machine
def test_a_short_soak_loses_and_doubles_nothing(tmp_path) -> None:
    figures = soak(tmp_path, runs=12, start_h=9.0, records_every=6)  # records twice
    counts = check(tmp_path, figures)
    assert counts["events"] > 0 and counts["runs"] >= 12 and counts["reads"] > 0
    assert len(figures.acknowledged) > 0
