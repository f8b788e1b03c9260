"""What the replay benchmark's service-level goal would give with the patience estimate
scaled (a probe, not a method: the plan cannot know the truth). On the benchmark's history
the estimate is 40-60% too long, because the offer's ringing counts as waiting
(benchmarks/RESULTS.md, "Plan replayed in the simulator: findings"); x 0.72 is the mean of
true / estimated over the three groups.

  .venv/bin/python benchmarks/probe_patience.py SCALE MAX_OCCUPANCY   (e.g. 0.72 0.9)

Prints bench_plan_replay.py's report for 14 days (--no-write: RESULTS.md is left alone).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from tencent_desk.planning import forecast as fc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_plan_replay  # beside this file

_estimate = fc.patience


def main(scale: float, max_occupancy: str) -> int:
    def scaled(waited_s: float, abandoned: int) -> fc.Patience:
        p = _estimate(waited_s, abandoned)
        return replace(p, mean_s=p.mean_s * scale)

    fc.patience = scaled  # planning.plan reads it as fc.patience
    return bench_plan_replay.main(["--days", "14", "--max-occupancy", max_occupancy,
                                   "--target-per", "day", "--no-write"])


if __name__ == "__main__":
    raise SystemExit(main(float(sys.argv[1]), sys.argv[2]))
