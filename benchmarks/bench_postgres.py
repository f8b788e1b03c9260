"""Loading into a real PostgreSQL server on loopback against a DuckDB file, two ways:

* one run of the real ``desk-sessions run`` (a child process) of N keys against the
  simulator: wall time and rows per second, everything included (start-up, polling, load,
  after_load with the timeline upkeep);
* the load path alone: N ``session_states`` rows as the job's Arrow batches -> dlt
  extract / normalize / load, rows per second.

``.venv/bin/python benchmarks/bench_postgres.py [N]`` (default 20000) prints a Markdown
table. The server is started from the machine's initdb/pg_ctl as the tests do (fsync off:
a throw-away server) and stopped at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import common
import dlt
from bench_load import arrow_batches, make_answers
from common import OUT
from tencent_desk.job import destination

sys.path.insert(0, str(common.ROOT))
from tests.support import postgres


def cli_run(sim_url: str, seed: Path, where: list[str], folder: Path,
            env: dict[str, str]) -> tuple[float, str]:
    folder.mkdir(parents=True, exist_ok=True)
    argv = [common.DESK, "run", "--seed", str(seed), *where, "--api-url", sim_url,
            "--pipelines-dir", str(folder / "dlt"), "--max-qps", "20000", "--no-progress",
            "--log-level", "WARNING"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env={**common.env(), **env}, capture_output=True, text=True,
                          timeout=900, cwd=folder)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return took, proc.stdout.splitlines()[0]


def load_path(n: int, dest: object, name: str) -> float:
    answers = make_answers(n)
    pipeline = dlt.pipeline(pipeline_name=f"bench_pg_{name}", destination=dest,
                            dataset_name="tencent_desk", pipelines_dir=str(OUT / name))
    t0 = time.perf_counter()
    pipeline.run(dlt.resource(arrow_batches(answers, "bench", 2000), name="session_states",
                              write_disposition="append"))
    return time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    with postgres.running() as server, common.simulator(sessions=3000, seed_out=True) as sim:
        ids = common.seed_session_ids(sim.seed_csv)
        seed = common.write_seed(OUT / "seed.csv", (ids + common.random_ids(n))[:n])
        for name, where, env in (
                ("duckdb", ["--database", str(OUT / "run_duckdb" / "desk.duckdb")], {}),
                ("postgres", ["--destination", "postgres", "--state-dir",
                              str(OUT / "run_postgres")],
                 {"DESTINATION__POSTGRES__CREDENTIALS": server.create_database("bench_run")})):
            took, line = cli_run(sim.url, seed, where, OUT / f"run_{name}", env)
            rows.append(f"| desk-sessions run, {n} keys | {name} | {took:.1f} s | "
                        f"{n / took:,.0f} rows/s | {line} |")
        os.environ["DESTINATION__POSTGRES__CREDENTIALS"] = server.create_database("bench_load")
        for name, dest in (("duckdb", dlt.destinations.duckdb(str(OUT / "load.duckdb"))),
                           ("postgres", destination.server())):
            took = load_path(n, dest, name)
            rows.append(f"| load path (Arrow -> dlt), {n} rows | {name} | {took:.1f} s | "
                        f"{n / took:,.0f} rows/s | |")
    print("| what | destination | time | rate | summary |\n|---|---|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
