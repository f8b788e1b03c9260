"""Worker: each notebook opened on one day of a history, and the analysis under it.

``python benchmarks/bench_notebooks.py '{"cases": [{"database": PATH, "from": "2026-04-03",
"to": "2026-04-03", "since": ISO, "until": ISO}]}'`` prints one JSON line. For each case:

* every notebook of ``notebooks/`` is executed as the tests do (nbclient, a kernel of this
  interpreter) in a child process with ``DESK_DUCKDB=PATH DESK_FROM=from DESK_TO=to``:
  wall time from start to the kernel's shutdown, the cells' own time (nbclient's timings),
  and the kernel's CPU time and peak RSS (``RUSAGE_CHILDREN`` once it is reaped). A kernel past
  ``KILL_MB`` is stopped, so that a notebook reading everything cannot take the machine.
* ``snapshot.Reader(db, since, until)`` and the ``timeline_metrics`` functions on that
  window, in a child process too: wall time and peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from common import OUT, PY, ROOT, env

sys.path.insert(0, str(ROOT))
from tests.support.notebooks import NOTEBOOKS, execute, install_kernel_spec

KILL_MB = 6000
TIMEOUT_S = 60  # per notebook (the goal is 5 s): past it, stopped and said so


def notebook_names() -> list[str]:
    """Whatever notebooks exist (the tests' list is the order, others follow)."""
    from tests.support.notebooks import NAMES

    found = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    return [n for n in NAMES if n in found] + [n for n in found if n not in NAMES]


def _children_rss_mb() -> float:
    import psutil

    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total / 1e6


def _guard(stop: threading.Event, peak: list[float]) -> None:
    """Sample the kernel's RSS; past KILL_MB, end it (execution then fails, said so)."""
    import psutil

    while not stop.wait(0.1):
        rss = _children_rss_mb()
        peak[0] = max(peak[0], rss)
        if rss > KILL_MB:
            for child in psutil.Process().children(recursive=True):
                child.kill()
            peak.append(-1)
            return


def one_notebook(name: str) -> dict:
    """In the child: run the notebook, measure it."""
    stop, peak = threading.Event(), [0.0]
    guard = threading.Thread(target=_guard, args=(stop, peak), daemon=True)
    guard.start()
    t = time.perf_counter()
    error = None
    try:
        nb = execute(name)
    except Exception as exc:  # a failing notebook is a figure too, with why
        nb, error = None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
    wall = time.perf_counter() - t
    stop.set()
    guard.join()
    cells = 0.0
    for cell in nb.cells if nb else []:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            cells += (datetime.fromisoformat(timing["shell.execute_reply"].rstrip("Z"))
                      - datetime.fromisoformat(timing["iopub.execute_input"].rstrip("Z"))
                      ).total_seconds()
    if len(peak) > 1:
        error = f"stopped: the kernel went past {KILL_MB} MB"
    kernel = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"notebook": name, "wall_s": wall, "cells_s": cells if nb else None,
            "kernel_cpu_s": kernel.ru_utime + kernel.ru_stime,
            "kernel_peak_mb": kernel.ru_maxrss / 1024,
            "sampled_peak_mb": peak[0], "error": error}


def analysis(database: str, since: str, until: str) -> dict:
    """In the child: the reader and the timeline figures for the window, timed."""
    from tencent_desk.analysis import timeline_metrics as tm
    from tencent_desk.readers.snapshot import Reader

    t = time.perf_counter()
    lo, hi = datetime.fromisoformat(since), datetime.fromisoformat(until)
    reader = Reader(Path(database), lo, hi)
    con = reader.connection()
    opened = time.perf_counter() - t
    df = tm.sessions(con, lo, hi)
    read = time.perf_counter() - t
    at = [lo + timedelta(minutes=15 * i) for i in range(int((hi - lo).total_seconds() // 900))]
    tm.speed_of_answer(df, by="agent_group_id")
    tm.handling_time(df, by="agent_group_id")
    tm.measured_service_level(df)
    tm.abandonment_rate(df, by="agent_group_id")
    tm.arrivals(df, "1h", by="agent_group_id")
    tm.queue_length(df, at)
    tm.agent_concurrency(df, at)
    tm.occupancy(df, lo, hi)
    reader.close()
    return {"sessions": len(df), "open_s": opened, "read_s": read,
            "total_s": time.perf_counter() - t,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(args: list[str], extra_env: dict[str, str]) -> dict:
    """A child process (its own process group: a kernel left behind goes with it)."""
    proc = subprocess.Popen([PY, __file__, *args], env={**env(), **extra_env}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"stopped after {TIMEOUT_S} s"}
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1][:300] if err.strip() else "failed"}
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    args = json.loads(sys.argv[1])
    jupyter = install_kernel_spec(OUT / "kernel")
    out = []
    for case in args["cases"]:
        day = {"DESK_DUCKDB": case["database"], "DESK_FROM": case["from"],
               "DESK_TO": case["to"], "JUPYTER_PATH": str(jupyter)}
        books = [{**child(["notebook", name], day), "notebook": name}
                 for name in notebook_names()]
        reader = child(["analysis", case["database"], case["since"], case["until"]], {})
        out.append({**case, "notebooks": books, "analysis": reader})
    print(json.dumps({"cases": out}))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "notebook":
        print(json.dumps(one_notebook(sys.argv[2])))
    elif len(sys.argv) > 2 and sys.argv[1] == "analysis":
        print(json.dumps(analysis(*sys.argv[2:5])))
    else:
        main()
    sys.stdout.flush()
    os._exit(0)  # the kernel's threads: do not wait for them
