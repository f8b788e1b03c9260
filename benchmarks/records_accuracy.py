"""How much session records improve the demo day's figures: handling time, abandonment and
arrivals per hour, from polls alone and with records, both against the simulator's truth.

  .venv/bin/python benchmarks/records_accuracy.py [--seed 7] [--start-hour 9 --end-hour 18]

Runs ``desk-sessions demo`` (the real job polling the simulator every 5-15 simulated
minutes, then loading the day's session records) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tencent_desk import cli
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.analysis import record_metrics
from tencent_desk.demo import run_demo
from tencent_desk.simulator import truth as sim_truth
from tencent_desk.simulator.model import DAY_START


def _weighted(values, weights) -> float:  # type: ignore[no-untyped-def]
    known = values.notna()
    return float((values[known] * weights[known]).sum() / weights[known].sum())


def figures(db: Path, start: datetime, end: datetime) -> dict[str, tuple[float, float, float]]:
    """measure -> (polls alone, with records, truth) over sessions starting in [start, end)."""
    con = duckdb.connect(str(db), read_only=True)
    hours = (end - start).total_seconds() / 3600

    def within(df, column="interval_start"):  # type: ignore[no-untyped-def]
        t = df[column]
        return df[(t >= start) & (t < end)]

    polled = within(metrics.demand_per_interval(con))
    truth = within(sim_truth.truth_demand_per_interval(con))
    rec_arr = within(record_metrics.arrivals_per_interval(con))
    aht_polled = _weighted(polled.aht_s, polled.answered)
    aht_truth = _weighted(truth.aht_s, truth.answered)
    handled = within(record_metrics.handling_times(con), "started_at")
    by_load = within(record_metrics.handling_time_from_load(con))

    ab_polled = metrics.wait_outcomes(con)
    ab_polled = ab_polled[(ab_polled.first_waiting >= start) & (ab_polled.first_waiting < end)]
    ab_truth = sim_truth.truth_abandonment(con)
    ab_truth = ab_truth[(ab_truth.started_waiting >= start) & (ab_truth.started_waiting < end)]
    rec = within(record_metrics.recorded_sessions(con), "started_at")
    queued = rec[rec.end_kind.isin(record_metrics.QUEUED_KINDS)]
    con.close()
    return {
        "arrivals per hour": (polled.arrivals.sum() / hours, rec_arr.arrivals.sum() / hours,
                              truth.arrivals.sum() / hours),
        "average handling time (s)": (
            aht_polled, by_load.agent_seconds.sum() / by_load.served.sum(), aht_truth),
        "  per-session midpoints (s)": (aht_polled, handled.handling_s.mean(), aht_truth),
        "abandonment rate": (
            (ab_polled.outcome == "abandoned").mean(),
            (queued.end_kind == "abandoned").mean(),
            ab_truth.outcome.isin(["abandoned", "offered"]).mean()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start-hour", type=float, default=9.0)
    p.add_argument("--end-hour", type=float, default=18.0)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="records-accuracy-"))
    db = work / "demo.duckdb"
    demo = cli.parser().parse_args(["demo", "--database", str(db), "--seed", str(args.seed),
                                    "--start-hour", str(args.start_hour), "--end-hour",
                                    str(args.end_hour)])
    cli.setup_logging("WARNING")
    assert run_demo(demo) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        (n,) = con.execute("SELECT count(*) FROM tencent_desk.session_records").fetchone()
    day = DAY_START
    start = datetime.fromtimestamp(day + args.start_hour * 3600, UTC)
    end = datetime.fromtimestamp(day + args.end_hour * 3600, UTC)
    print(f"\ndemo day seed {args.seed}, sessions starting {start:%H:%M}-{end:%H:%M} UTC; "
          f"{n} session records loaded\n")
    print("| measure | polls alone | with records | truth | polls / truth | records / truth |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (polls, records, truth) in figures(db, start, end).items():
        print(f"| {name} | {polls:.3f} | {records:.3f} | {truth:.3f} | {polls / truth:.2f} | "
              f"{records / truth:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
