"""``make soak``: a day of minute-by-minute runs of the real CLI (tests/soak_day.py), then
its figures: each run's time, the job's max RSS, the receiver's RSS and open fds, the
snapshot's files (on disk; current; retired, kept for readers of older snapshots), the last
100 runs against the first 100 after warm-up (a quarter of the runs each when fewer than
220 ran). The day runs from noon to noon, across midnight, so that the two windows have
the same activity (an hour's retired files follow the hour's publishes, a quarter as
many at night as in the afternoon) and what they compare is growth with runs alone; a
soak from midnight compares the night with the evening. Warm-up: 10 runs, or the runs of
one retention and one compaction cycle when longer (before retention first removes
anything the retired files can only grow). Prints a Markdown section for RESULTS.md.

    .venv/bin/python benchmarks/soak.py --runs 1440 --start-hour 12
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tencent_desk.models.snapshot import COMPACT_AT  # noqa: E402

from tests.soak_day import check, soak  # noqa: E402

EVERY_S = 60.0  # a run every simulated minute


def warm_up(retain_s: float) -> int:
    """Runs before the first window: until retention has begun removing, and a day's files
    have been compacted once."""
    return max(10, math.ceil(retain_s / EVERY_S) + COMPACT_AT)


def ratios(series: list[float], warm: int) -> tuple[float, float, float]:
    """(median of the first window, of the last, last / first) after warm-up."""
    rest = series[warm:] if len(series) > 2 * warm else series
    k = 100 if len(rest) >= 220 else max(1, len(rest) // 4)
    first, last = statistics.median(rest[:k]), statistics.median(rest[-k:])
    return first, last, (last / first if first else float("nan"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=1440)
    p.add_argument("--start-hour", type=float, default=12.0,
                   help="the simulated hour of the first run (default noon)")
    p.add_argument("--retention", type=float, default=3600.0,
                   help="the snapshot's retention, simulated seconds (default an hour)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="desk-soak-"))
    print(f"soak in {folder}", file=sys.stderr, flush=True)
    started = time.monotonic()
    figures = soak(folder, args.runs, start_h=args.start_hour, every_s=EVERY_S,
                   retain_s=args.retention, progress=lambda n, line: print(
                       f"run {n}: {line}", file=sys.stderr, flush=True))
    took = time.monotonic() - started
    warm = warm_up(args.retention)
    print(f"## Soak: {len(figures.seconds)} minute-by-minute runs of the real CLI\n")
    print(f"`.venv/bin/python benchmarks/soak.py --runs {args.runs} --start-hour "
          f"{args.start_hour:g} --retention {args.retention:g}`: {took / 60:.1f} min wall; "
          f"exit codes {dict(figures.codes)}; {figures.reads} snapshot reads, "
          f"{len(figures.read_errors)} failed ({figures.unpublished} before the first state "
          f"row was published). Warm-up {warm} runs.\n")
    print("| figure | first window | last window | last / first |")
    print("|---|---|---|---|")
    for name, series, unit in (("run time (s)", figures.seconds, 1),
                               ("job max RSS (MB)", figures.job_kb, 1024),
                               ("receiver RSS (MB)", figures.receiver_kb, 1024),
                               ("receiver open fds", figures.receiver_fds, 1),
                               ("snapshot files on disk", figures.snapshot_files, 1),
                               ("of them current", figures.current_files, 1),
                               ("of them retired", figures.retired_files, 1)):
        first, last, ratio = ratios([v / unit for v in series], warm)
        print(f"| {name} | {first:.1f} | {last:.1f} | {ratio:.2f} |")
    sys.stdout.flush()  # the figures stand even if the end check below fails
    counts = check(folder, figures)
    print(f"\nEnd check passed: {counts['events']} events loaded once each (every one of "
          f"{len(figures.acknowledged)} acknowledged), {counts['states']} state rows in "
          f"{counts['runs']} runs, none doubled; retention removed {counts['removed']} "
          f"replaced files, each once it had been retired {args.retention:g} s, none "
          "current, none early.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
