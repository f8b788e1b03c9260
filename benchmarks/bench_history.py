"""Worker: what one run's upkeep costs on days of history (1-minute polls, 500 open).

For each number of days, the history is built (or taken from the cache, see ``history.py``)
and copied aside; then ``runs`` more minute runs are loaded one at a time, each marked
``loading`` as dlt leaves it, and the job's own ``post_load.after_load`` is run on the job's
own pipeline (``run.pipeline.pipeline_for``: DuckDB at 64 MB, one thread): runs completed, the
latest-state view, the timeline upkeep and the publish, each timed.
``python benchmarks/bench_history.py '{"days": [1, 7, 90], "runs": 5}'`` prints one JSON
line; the databases built are listed in it (``database``) for the notebooks' measures.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import history
from common import OUT
from tencent_desk.models import snapshot, timeline
from tencent_desk.run import post_load
from tencent_desk.run.pipeline import pipeline_for

TIMED = ("upkeep", "publish", "after_load", "upkeep_cpu", "publish_cpu", "after_load_cpu")


@contextmanager
def timed(module: Any, name: str, into: dict[str, float]) -> Iterator[None]:
    """``module.name`` times each of its calls into ``into[name]`` (wall) and
    ``into[name + "_cpu"]`` (this process's CPU: less swayed by other load) in the block."""
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            into[name] = time.perf_counter() - t
            into[f"{name}_cpu"] = time.process_time() - cpu

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def case(days: int, runs: int, seed: int) -> dict:
    p = history.Params(days=days, seed=seed)
    built = history.build(p)
    src = history.CACHE / p.key()
    work = OUT / f"history-{days}"
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("built.json"))
    copy_s = time.perf_counter() - t
    db = work / "desk.duckdb"
    sess = history.population(p)
    pipeline = pipeline_for(db, history.DS, str(work / "pipelines"))
    per_run: list[dict[str, float]] = []
    for j in range(runs):
        minute = days * 1440 + j
        con = history.open_generator(db, p, sess)
        try:
            got = history.add_minutes(con, p.start, minute, minute + 1, "loading",
                                      built.get("schema_hash", ""))
        finally:
            con.close()
        spent: dict[str, float] = {}
        with timed(timeline, "upkeep", spent), timed(snapshot, "publish", spent), \
                timed(post_load, "after_load", spent):
            post_load.after_load(pipeline)
        per_run.append({**spent, "open": got["state_rows"]})
    return {**built, "copy_s": copy_s, "database": str(src / "desk.duckdb"),
            "open_sessions": statistics.median(r["open"] for r in per_run),
            **{f"{k}_median_s": statistics.median(r[k] for r in per_run)
               for k in TIMED},
            **{f"{k}_max_s": max(r[k] for r in per_run) for k in TIMED}}


def main() -> None:
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    print(json.dumps({"cases": [case(d, args.get("runs", 5), args.get("seed", 1))
                                for d in args.get("days", [1, 7, 90])]}))


if __name__ == "__main__":
    main()
