"""``make soak``: a day of minute-by-minute runs of the real CLI (tests/soak_day.py), then
its figures: each run's time, the job's max RSS, the receiver's RSS and open fds, the
snapshot's file count, the last 100 runs against the first 100 after warm-up (a quarter of
the runs each when fewer than 220 ran). Prints a Markdown section for RESULTS.md.

    .venv/bin/python benchmarks/soak.py --runs 1440
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.soak_day import check, soak  # noqa: E402

WARM_UP = 10


def ratios(series: list[float]) -> tuple[float, float, float]:
    """(median of the first window, of the last, last / first) after warm-up."""
    rest = series[WARM_UP:] if len(series) > 2 * WARM_UP else series
    k = 100 if len(rest) >= 220 else max(1, len(rest) // 4)
    first, last = statistics.median(rest[:k]), statistics.median(rest[-k:])
    return first, last, (last / first if first else float("nan"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=1440)
    p.add_argument("--start-hour", type=float, default=0.0)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="desk-soak-"))
    started = time.monotonic()
    figures = soak(folder, args.runs, start_h=args.start_hour)
    counts = check(folder, figures)
    took = time.monotonic() - started
    print(f"## Soak: {len(figures.seconds)} minute-by-minute runs of the real CLI\n")
    print(f"`.venv/bin/python benchmarks/soak.py --runs {args.runs} --start-hour "
          f"{args.start_hour:g}`: {took / 60:.1f} min wall; exit codes "
          f"{dict(figures.codes)}; {counts['events']} events loaded once each (every one "
          f"of {len(figures.acknowledged)} acknowledged), {counts['states']} state rows in "
          f"{counts['runs']} runs, none doubled; {counts['reads']} snapshot reads, "
          f"{len(figures.read_errors)} failed.\n")
    print("| figure | first window | last window | last / first |")
    print("|---|---|---|---|")
    for name, series, unit in (("run time (s)", figures.seconds, 1),
                               ("job max RSS (MB)", figures.job_kb, 1024),
                               ("receiver RSS (MB)", figures.receiver_kb, 1024),
                               ("receiver open fds", figures.receiver_fds, 1),
                               ("snapshot files", figures.snapshot_files, 1)):
        first, last, ratio = ratios([v / unit for v in series])
        print(f"| {name} | {first:.1f} | {last:.1f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
