"""Forecast methods on synthetic seasonal arrivals with a known truth (tests/support/seasonal):
12 weeks of half-hourly counts per agent group (a day profile, weekday levels, a gamma daily
draw with CV 10%, Poisson around it), each of 14 days planned from the data before it after
10 weeks (rolling origin). Per group: WAPE over busy intervals (expected rate >= 20) against
the oracle (each interval's expected rate before the day's draw), seasonal naive and the
Poisson floor; bias; the share of actuals inside the 80% interval; the afternoon's WAPE
after an intraday reforecast at 12:00 against the evening-before oracle's.

  .venv/bin/python benchmarks/bench_forecast.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import seasonal

GROUPS = {"small (peak 25 / 30 min)": 25.0, "medium (peak 60)": 60.0,
          "large (peak 200)": 200.0}
SEEDS = (1, 2, 3)


def main() -> None:
    print("| group | seed | WAPE profile | oracle | ÷ oracle | naive | vs naive | floor | "
          "bias | in 80% | intraday pm | oracle pm |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, peak in GROUPS.items():
        for seed in SEEDS:
            s = seasonal.rolling_origin(*seasonal.seasonal(12, peak, seed=seed))
            print(f"| {name} | {seed} | {s.wape:.3f} | {s.oracle_wape:.3f} | "
                  f"{s.wape / s.oracle_wape:.2f} | {s.naive_wape:.3f} | "
                  f"{1 - s.wape / s.naive_wape:+.0%} | {s.floor:.3f} | {s.bias:+.3f} | "
                  f"{s.coverage:.0%} | {s.intraday_wape:.3f} | {s.oracle_afternoon_wape:.3f} |")


if __name__ == "__main__":
    main()
