"""The soak, short (``make test-slow``): a few minute-by-minute runs of the real CLI on a
compressed clock, callbacks through ``desk-sessions listen``, records at the hour, a reader
polling the snapshot; nothing acknowledged or answered lost or doubled, and the snapshot's
retention (set to 4 simulated minutes) removing what it should and nothing else. The
day-long version with its figures is ``make soak`` (benchmarks/soak.py)."""

from __future__ import annotations

import pytest
from tencent_desk.models import snapshot

from .soak_day import check, soak

RUNS, RETAIN_S = 12, 240.0


@pytest.mark.slow
@pytest.mark.timeout(3600)  # some 10-30 s per run of the CLI on a busy 2-core machine
def test_a_short_soak_loses_and_doubles_nothing_and_retention_keeps_it_bounded(
        tmp_path) -> None:
    figures = soak(tmp_path, runs=RUNS, start_h=9.0, records_every=6,  # records twice
                   retain_s=RETAIN_S)
    counts = check(tmp_path, figures)  # and, after each run, the retention's rules
    assert counts["events"] > 0 and counts["runs"] >= RUNS and counts["reads"] > 0
    assert len(figures.acknowledged) > 0
    # Files a publish replaced were removed once a retention had passed (runs 5 to 12);
    # the files on disk are always the current ones and those retired within a retention.
    assert counts["removed"] > 0
    assert figures.snapshot_files == [
        c + r for c, r in zip(figures.current_files, figures.retired_files, strict=True)]
    # What bounds the current files whatever the runs: a table's day in COMPACT_AT files
    # at most (then compacted into one).
    manifest = snapshot.read_manifest(tmp_path / "desk.read")
    assert max(len(names) for schema in manifest["schemas"].values()
               for table in schema["tables"].values()
               for names in table["days"].values()) <= snapshot.COMPACT_AT
