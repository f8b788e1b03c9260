"""What a run costs when the Desk API cannot be reached: time and calls before it stops.

  .venv/bin/python benchmarks/bench_outage.py                 300 and 100,000 keys
  .venv/bin/python benchmarks/bench_outage.py --sizes 300 --cases closed_port

Runs the real ``desk-sessions run`` (default max_qps, concurrency and timeout) against
loopback only: a closed port, a black hole (a listening socket that never answers; both
the main and the backup domain), and names that do not resolve (``.invalid``). Prints a
Markdown table and writes it to benchmarks/RESULTS-outage.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import DESK, OUT, random_ids, run_child, write_seed

RESULTS = Path(__file__).resolve().parent / "RESULTS-outage.md"
CASES = ("closed_port", "black_hole", "dns")


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(4096)  # the kernel takes the connections; nobody ever answers
        yield f"http://127.0.0.1:{hole.getsockname()[1]}"


@contextlib.contextmanager
def target(case: str) -> Iterator[tuple[str, str]]:
    """(api_url, backup_url) for a case."""
    if case == "closed_port":
        yield (f"http://127.0.0.1:{common.free_port()}",
               f"http://127.0.0.1:{common.free_port()}")
    elif case == "black_hole":
        with black_hole() as main, black_hole() as backup:
            yield main, backup
    else:
        yield "https://main.desk.invalid", "https://backup.desk.invalid"


def one(case: str, keys: int) -> dict[str, object]:
    folder = OUT / f"{case}-{keys}"
    folder.mkdir(parents=True, exist_ok=True)
    seed = write_seed(folder / "seed.csv", random_ids(keys))
    db = folder / "desk.duckdb"
    with target(case) as (main, backup):
        run = run_child([DESK, "run", "--seed", str(seed), "--database", str(db), "--api-url",
                         main, "--pipelines-dir", str(folder / "dlt"), "--no-progress"],
                        timeout=600, cwd=folder,
                        extra_env={"SOURCES__TENCENT_DESK__BACKUP_URL": backup})
    con = duckdb.connect(str(db), read_only=True)
    try:
        status, polled_s, calls, rows, not_asked, fallbacks = con.execute(
            "SELECT status, epoch(finished_at) - epoch(started_at), calls, rows, not_asked, "
            "fallbacks FROM tencent_desk.runs").fetchone()
    finally:
        con.close()
    return {"case": case, "keys": keys, "exit": run.returncode, "status": status,
            "polling_s": round(polled_s, 1), "wall_s": round(run.wall_s, 1), "calls": calls,
            "rows": rows, "not_asked": not_asked, "fallbacks": fallbacks}


def table(results: list[dict[str, object]]) -> str:
    head = list(results[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="300,100000")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results = [one(case, int(n)) for case in args.cases.split(",")
               for n in args.sizes.split(",")]
    text = table(results)
    print(text)
    if not args.no_write:
        RESULTS.write_text(
            "# An unreachable Desk API: time and calls before the run stops\n\n"
            f"`.venv/bin/python benchmarks/bench_outage.py` on {time.strftime('%Y-%m-%d')}, "
            "defaults (max_qps 100, 50 calls in flight, timeout 10 s), main and backup "
            "domain both unreachable. `polling_s`: the run's started_at to finished_at; "
            "`wall_s`: the whole command (start-up, seed check, load). Exit 5 = outage. "
            "`rows`: keys that got an answer (all `error`); `not_asked`: the rest (never "
            "sent, or given up in flight). dns: this machine's resolver answers one lookup "
            "of a missing name at once, but concurrent ones wait out its 5 s retry.\n\n"
            + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
