"""Worker: ``desk-sessions report --month`` on the last whole calendar month of a history
(``history.py``, built once and cached; 52 days is the shortest that holds one): the whole
CLI in a child process, as cron runs it, and the figures' part alone
(``report.figures.gather``) and the page's (``page.render``) in this process, each timed.
``python benchmarks/bench_report.py '{"days": 52, "repeat": 3}'`` prints one JSON line."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import history
from common import DESK, OUT, env
from tencent_desk.notebook import data_days
from tencent_desk.report import page, period
from tencent_desk.report.figures import Source, gather
from tencent_desk.report.targets import Targets


def main() -> None:
    args = json.loads(sys.argv[1])
    p = history.Params(days=args["days"])
    built = history.build(p)
    db = history.CACHE / p.key() / "desk.duckdb"
    days = data_days(db)
    last = days[-1]
    month = f"{(last.replace(day=1) - timedelta(days=1)):%Y-%m}"  # the last whole month
    chosen = period.parse(month=month, today=last)
    # the history's first day is partial (it starts at 15:00): a month from it is not whole
    whole = days[0] < chosen.since.date()
    walls = []
    out = Path(OUT) / "report.html"
    for _ in range(args.get("repeat", 3)):
        t = time.perf_counter()
        done = subprocess.run([DESK, "report", "--database", str(db), "--month", month,
                               "--out", str(out)], env=env(), capture_output=True, text=True,
                              timeout=1800)
        walls.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
    t = time.perf_counter()
    figures = gather(Source(db, "tencent_desk"), chosen, Targets())
    gathered = time.perf_counter() - t
    html = page.render(figures)
    rendered = time.perf_counter() - t - gathered
    print(json.dumps({"month": month, "whole_month": whole, "sessions": figures.sessions,
                      "cli_s": walls,
                      "cli_median_s": statistics.median(walls), "gather_s": gathered,
                      "render_s": rendered, "page_kb": len(html.encode()) / 1024,
                      "history_cached": built.get("cached", False)}))


if __name__ == "__main__":
    main()
