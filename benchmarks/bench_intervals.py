"""Worker: the interval tables on the history (``history.py``, 1-minute polls, 500 open).

1. Notebooks: each notebook of ``notebooks/`` from a fresh kernel (nbclient, a kernel of
   this interpreter, in a child process) on the longest history with the window at a day,
   a week, a month and the whole history, each ending on its last whole weekday: wall time
   from start to the kernel's shutdown, and the kernel's peak memory as VmHWM read from
   ``/proc/self/status`` by a last cell inside the kernel (``ru_maxrss`` of the children
   would carry the parent's peak across exec).
2. PostgreSQL: the period a quarter notebook reads (the interval tables and the runs,
   COPYed into a real server, tests/support/postgres.py) read back by the warehouse
   Reader with only the interval tables, and every ``interval_metrics`` figure the
   notebooks draw; wall time.
3. Upkeep: for each history, ``runs`` more minute runs loaded one at a time and the job's
   ``post_load.after_load`` run (``bench_history.case``), ``intervals.upkeep`` timed alone.

``python benchmarks/bench_intervals.py '{"days": [7, 90], "runs": 9}'`` prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import bench_history
import duckdb
import history
import nbformat
from common import OUT, PY, ROOT, env
from tencent_desk.models import intervals, timeline

sys.path.insert(0, str(ROOT))
from tests.support.notebooks import KERNEL, NAMES, NOTEBOOKS, install_kernel_spec

TIMEOUT_S = 120
RUNS = 9  # upkeep runs a history: a median steadier on a shared machine
PG_TYPES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "DOUBLE": "DOUBLE PRECISION",
            "BIGINT": "BIGINT", "INTEGER": "INTEGER", "BOOLEAN": "BOOLEAN"}
PEAK_CELL = ("print('VmHWM_kB', [int(line.split()[1]) for line in open('/proc/self/status')"
             " if line.startswith('VmHWM')][0])")


def windows(days: int) -> dict[str, tuple[str, str]]:
    """DESK_FROM, DESK_TO (inclusive days) for a day, a week, a month and the history,
    each ending on its last whole weekday."""
    start = datetime.fromtimestamp(history.Params(days=days).start, UTC)
    last = (start + timedelta(days=days)).date() - timedelta(days=1)
    while last.weekday() >= 5:
        last -= timedelta(days=1)
    first = start.date() + timedelta(days=1)  # the first whole day
    spans = {"day": 1, "week": 7, "month": 30, f"{days} days": (last - first).days + 1}
    return {name: ((last - timedelta(days=n - 1)).isoformat(), last.isoformat())
            for name, n in spans.items() if n <= (last - first).days + 1}


def one_notebook(name: str) -> dict:
    """In the child: run the notebook with a last cell reporting the kernel's VmHWM."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    t = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, kernel_name=KERNEL, timeout=TIMEOUT_S,
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    except Exception as exc:  # a failing notebook is a figure too, with why
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
    wall = time.perf_counter() - t
    peak = None
    for out in nb.cells[-1].get("outputs", []):
        if "VmHWM_kB" in out.get("text", ""):
            peak = int(out["text"].split()[-1]) / 1024
    return {"notebook": name, "wall_s": wall, "kernel_vmhwm_mb": peak, "error": error}


def child(args: list[str], extra_env: dict[str, str]) -> dict:
    proc = subprocess.Popen([PY, __file__, *args], env={**env(), **extra_env}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"stopped after {TIMEOUT_S + 60} s"}
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1][:300] if err.strip() else "failed"}
    return json.loads(out.strip().splitlines()[-1])


def notebooks(database: str, days: int) -> list[dict]:
    jupyter = install_kernel_spec(OUT / "kernel")
    out = []
    for window, (first, last) in windows(days).items():
        for name in NAMES:
            got = child(["notebook", name], {"DESK_DUCKDB": database, "DESK_FROM": first,
                                             "DESK_TO": last, "JUPYTER_PATH": str(jupyter)})
            out.append({**got, "notebook": name, "window": window, "from": first, "to": last})
    return out


def postgres_quarter(database: str, days: int) -> dict:
    """The interval tables and runs of the history on a real server; the period read back
    as a quarter notebook reads it."""
    import psycopg2
    from tencent_desk.analysis import interval_metrics as im
    from tencent_desk.readers import warehouse

    from tests.support.postgres import running

    first, last = windows(days)[f"{days} days"]
    since = datetime.fromisoformat(first).replace(tzinfo=UTC)
    until = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
    with running() as server:
        url = server.create_database("bench_intervals")
        local = duckdb.connect(database, read_only=True)
        pg = psycopg2.connect(url)
        try:
            with pg.cursor() as cur:
                cur.execute(f"CREATE SCHEMA {history.DS}")
                for table in (*intervals.TABLES, "runs"):
                    cols = local.execute(
                        "SELECT column_name, data_type FROM information_schema.columns WHERE "
                        "table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                        [history.DS, table]).fetchall()
                    cur.execute(f"CREATE TABLE {history.DS}.{table} ("
                                + ", ".join(f'"{c}" {PG_TYPES.get(t, "VARCHAR")}'
                                            for c, t in cols) + ")")
                    csv = OUT / f"pg-{table}.csv"
                    local.execute(f"COPY {history.DS}.{table} TO '{csv}' (HEADER false)")
                    with open(csv, "rb") as f:
                        cur.copy_expert(f"COPY {history.DS}.{table} FROM STDIN WITH "
                                        "(FORMAT csv)", f)
                    if table != "runs":
                        cur.execute(f"CREATE INDEX ON {history.DS}.{table} (interval_start)")
                cur.execute(f"CREATE INDEX ON {history.DS}.runs (started_at)")
                # what the Reader checks for freshness: the job's last load
                cur.execute(f"CREATE TABLE {history.DS}._dlt_loads AS SELECT "
                            "'1' AS load_id, 0 AS status")
                rows = {}
                for table in intervals.TABLES:
                    cur.execute(f"SELECT count(*) FROM {history.DS}.{table}")
                    rows[table] = cur.fetchone()[0]
            pg.commit()
        finally:
            pg.close()
            local.close()
        t = time.perf_counter()
        reader = warehouse.Reader(warehouse.destination("postgres", url), history.DS, since,
                                  until, tables=intervals.TABLES)
        con = reader.connection()
        pulled = time.perf_counter() - t
        im.figures(con, since, until)
        im.figures(con, since, until, by="agent_group_name")
        im.per_interval(con, since, until, "1D")
        im.weekday_hour(con, since, until)
        im.agents(con, since, until)
        reader.close()
        return {"rows": rows, "pull_s": pulled, "total_s": time.perf_counter() - t,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def upkeep(days: int, runs: int) -> dict:
    """``bench_history.case`` with ``intervals.upkeep`` timed alone in each after_load: wall
    time, and this process's CPU time (less swayed by the other load of a shared machine)."""
    spent: list[float] = []
    cpu: list[float] = []
    original = intervals.upkeep

    def timed(*args: object, **kwargs: object) -> int:
        t, c = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            spent.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)

    intervals.upkeep = timed  # type: ignore[assignment]
    try:
        got = bench_history.case(days, runs, 1)
    finally:
        intervals.upkeep = original  # type: ignore[assignment]
    return {"days": days, "database": got["database"], "sessions": got["sessions"],
            "intervals_median_s": statistics.median(spent), "intervals_max_s": max(spent),
            "intervals_cpu_median_s": statistics.median(cpu),
            "timeline_median_s": got["upkeep_median_s"],
            "after_load_median_s": got["after_load_median_s"]}


def main() -> None:
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    days = args.get("days", [7, 90])
    ups = [upkeep(d, args.get("runs", RUNS)) for d in days]
    big = ups[-1]
    db = str(history.CACHE / history.Params(days=big["days"]).key() / "desk.duckdb")
    out = {"upkeep": ups, "notebooks": notebooks(db, big["days"]),
           "postgres": child(["postgres", db, str(big["days"])], {}),
           "lookback_days": timeline.LOOKBACK_DAYS}
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "notebook":
        print(json.dumps(one_notebook(sys.argv[2])))
    elif len(sys.argv) > 3 and sys.argv[1] == "postgres":
        print(json.dumps(postgres_quarter(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
    sys.stdout.flush()
    os._exit(0)


def section_intervals(rep, quick: bool) -> None:  # type: ignore[no-untyped-def]
    """``rep`` is run.Report: the figures of this worker under the section ``intervals``."""
    import common
    from common import Watch
    from run import load_note

    days = [3, 7] if quick else [7, 90]
    with Watch() as w:
        r = common.worker("bench_intervals.py", {"days": days, "runs": RUNS}, timeout=10800)
    note = load_note(w)
    for u in r["upkeep"]:
        case = f"one run, {u['days']} d of history"
        rep.add("intervals", case, "intervals upkeep (median)", u["intervals_median_s"], "s",
                "absolute", "<= 1", f"max {u['intervals_max_s']:.2f} s; {note}")
        rep.add("intervals", case, "intervals upkeep CPU (median)",
                u.get("intervals_cpu_median_s"), "s", "absolute")
        rep.add("intervals", case, "timeline upkeep (median)", u["timeline_median_s"], "s",
                "absolute")
        rep.add("intervals", case, "whole after_load (median)", u["after_load_median_s"], "s",
                "absolute")
    small, big = r["upkeep"][0], r["upkeep"][-1]
    rep.add("intervals", f"{big['days']} d ÷ {small['days']} d of history",
            "intervals upkeep ratio (median)",
            big["intervals_median_s"] / small["intervals_median_s"], "", "ratio", "<= 1.2")
    rep.add("intervals", f"{big['days']} d ÷ {small['days']} d of history",
            "intervals upkeep CPU ratio (median)",
            big["intervals_cpu_median_s"] / small["intervals_cpu_median_s"], "", "ratio",
            "<= 1.2")
    walls: dict[str, dict[str, float]] = {}
    for b in r["notebooks"]:
        case = f"notebooks/{b['notebook']}.ipynb, {b['window']} ({b['from']}..{b['to']})"
        err = b.get("error") or ""
        rep.add("intervals", case, "wall (fresh kernel)", b.get("wall_s"), "s", "absolute",
                "<= 5", err[:120])
        rep.add("intervals", case, "kernel peak (VmHWM)", b.get("kernel_vmhwm_mb"), "MB",
                "absolute", "<= 1000")
        if b.get("wall_s") and not err:
            walls.setdefault(b["notebook"], {})[b["window"]] = b["wall_s"]
    longest = f"{big['days']} days"
    for name, w_ in walls.items():
        if "day" in w_ and longest in w_:
            rep.add("intervals", f"notebooks/{name}.ipynb, {longest} ÷ day", "wall ratio",
                    w_[longest] / w_["day"], "", "ratio", "<= 1.5")
    pg = r["postgres"]
    rep.add("intervals", f"the {longest} period from PostgreSQL (interval tables only)",
            "Reader + every interval figure drawn", pg.get("total_s"), "s", "absolute",
            "<= 10", pg.get("error") or f"pull {pg.get('pull_s', 0):.2f} s; rows "
            + ", ".join(f"{k} {v:,}" for k, v in pg.get("rows", {}).items()))
    rep.notes.append(
        "intervals: each notebook from a fresh kernel (nbclient, a child process) on the "
        f"{big['days']}-day history with DESK_FROM..DESK_TO a day, a week, a month and the "
        "whole history, ending on its last whole weekday; peak memory is VmHWM read by a last "
        "cell inside the kernel. A window over five days reads the period from the interval "
        "tables and keeps the latest day in detail. Upkeep: bench_history's runs, "
        "intervals.upkeep timed alone within after_load.")
