"""The benchmark suite: ``make bench`` (``.venv/bin/python benchmarks/run.py``).

Sections (all against ``desk-sessions simulate`` in a separate process on loopback, so the
client's CPU is measured alone; every case bounded in calls and time):

  limits  calls/s achieved under a server limit L (÷ L) and the share of throttled answers,
          through DeskClient.get_many and through the whole ``desk-sessions run`` CLI
  cpu     client CPU per call at 100 calls in flight, no limit: the three transports
  peers   the same job done other ways: a sequential httpx loop, dlt's rest_api source
          (plain and parallelized), and this project's CLI
  load    normalize + load session_states rows into DuckDB: rows.to_table Arrow vs dicts
  scale   ``desk-sessions run`` on large seeds of random keys: peak RSS and its growth
  snapshot what publishing the readers' snapshot costs a run, at 10k and 1M rows of history
  records ``desk-sessions records``: a backfill of 1,000,000 session records (bench_records)
  timeline keeping session_timeline up to date after a run, by days of history (500 open)
  history 90 days of 1-minute polls (500 open at the peak) in the job's tables: one run's
          after_load (upkeep, publish) at 1/30/90 days, each notebook opened on one day
          (bench_history, bench_notebooks; the history is built once, cached in out/history)
  postgres analysis from PostgreSQL: dlt's load rate there vs DuckDB, and a notebook's read
          of one day with a year of history there vs the DuckDB snapshot (bench_postgres_read)
  report  ``desk-sessions report --month`` on the 90-day history's last whole month: the
          whole CLI, and the figures' and the page's parts (bench_report)
  intervals the interval tables on the 90-day history: each notebook from a fresh kernel at a
          day, a week, a month and 90 days; the quarter's period read from PostgreSQL; the
          intervals upkeep per run at 7 and 90 days (bench_intervals)

  .venv/bin/python benchmarks/run.py                 everything (~25 min on 2 cores; the
                                                     first time, ~25 min more to build the
                                                     history, then cached)
  .venv/bin/python benchmarks/run.py --quick         small sizes: a smoke test (~3 min)
  .venv/bin/python benchmarks/run.py --only cpu,load  some sections
Writes benchmarks/RESULTS.md (unless --no-write); scratch files go to
benchmarks/out/run-<time>-<pid>/ (the last three are kept). One run at a time: a second
one waits for the first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import profiles
from common import DESK, OUT, Watch, random_ids, run_child, seed_session_ids, simulator

SECTIONS = ("limits", "cpu", "peers", "load", "scale", "snapshot", "records", "timeline",
            "history", "postgres", "report", "intervals")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# Sections that, run alone (--only), write their figures under their own heading of RESULTS.md
SECTION_TITLES = {"records": "Session records backfill", "snapshot": "Readers' snapshot",
                  "timeline": "Timeline upkeep", "history": "90 days of history",
                  "postgres": "Analysis from PostgreSQL",
                  "report": "desk-sessions report",
                  "intervals": "Interval tables: a quarter at the cost of a day"}


@dataclass
class Figure:
    section: str
    case: str
    metric: str
    value: float | None
    unit: str
    kind: str              # "ratio" (comparable across machines) or "absolute" (this machine)
    goal: str = ""         # e.g. ">= 0.95"
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    quick: bool
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: list[tuple[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, section: str, case: str, metric: str, value: float | None, unit: str,
            kind: str, goal: str = "", note: str = "") -> Figure:
        met = None
        if goal and value is not None:
            op, target = goal.split()
            met = value >= float(target) if op == ">=" else value <= float(target)
        fig = Figure(section, case, metric, value, unit, kind, goal, met, note)
        self.figures.append(fig)
        print(f"  {case:<44} {metric:<34} {fmt(value, unit):>14}  {fmt_goal(goal, unit):<9} "
              f"{'' if met is None else ('met' if met else 'NOT MET')}", flush=True)
        return fig


def fmt_goal(goal: str, unit: str) -> str:
    if not goal or unit != "%":
        return goal
    op, target = goal.split()
    return f"{op} {float(target) * 100:g} %"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,} {unit}".strip()
    if unit == "%":
        return f"{value * 100:.2f} %"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}".strip()
    if abs(value) >= 10:
        return f"{value:.1f} {unit}".strip()
    return f"{value:.3f} {unit}".strip()


def load_note(watch: Watch) -> str:
    return f"other load {watch.foreign_cores:.2f} cores" if watch.foreign_cores >= 0.15 else ""


# ------------------------------------------------------------------------------- limits
def section_limits(rep: Report, quick: bool) -> None:
    seconds = 3 if quick else 12  # per case, at the limit
    cases = [(200, 50, 64), (200, 250, 128), (1000, 80, 128)]
    for limit, latency, conc in cases:
        with simulator(rate_limit=limit, latency_ms=latency, sessions=20000, seed_out=True,
                       tag=f"sim-L{limit}-d{latency}") as sim:
            name = f"get_many L={limit}/s d={latency}ms conc={conc}"
            with Watch(sim) as w:
                r = common.worker("bench_client.py", {
                    "url": sim.url, "calls": limit * seconds, "max_qps": limit,
                    "max_concurrency": conc, "seed_csv": str(sim.seed_csv)}, timeout=120)
            note = load_note(w)
            rep.add("limits", name, "calls/s ÷ L", r["calls_per_second"] / limit, "", "ratio",
                    ">= 0.95", note)
            rep.add("limits", name, "throttled share (600xx)", r["throttled_share"], "%",
                    "ratio", "<= 0.005")
            rep.add("limits", name, "calls/s (first call to last)", r["calls_per_second"],
                    "calls/s", "absolute")
            rep.add("limits", name, "client CPU per call", r["cpu_ms_per_call"], "ms",
                    "absolute")
            if limit == 1000:
                ids = seed_session_ids(sim.seed_csv)[:limit * seconds]
                cli_case(rep, sim, "our simulator", limit, ids, fixed_cost=True)
    # The done-means case: an implementation of the API that shares no code with ours.
    with common.independent_api(rate_limit=1000, latency_ms=80) as api:
        cli_case(rep, api, "independent API (fixed seconds)", 1000,
                 random_ids(1000 * seconds), fixed_cost=False)


def cli_run(sim_url: str, seed: Path, name: str, max_qps: float, conc: int | None,
            timeout: float) -> tuple[common.ChildRun, dict]:
    """``desk-sessions run`` as a user types it; ``conc`` None: its default concurrency."""
    work = OUT / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "bench.duckdb"
    run = run_child([DESK, "run", "--seed", str(seed), "--database", str(db),
                     "--api-url", sim_url, "--max-qps", f"{max_qps:g}",
                     *(["--max-concurrency", str(conc)] if conc else []),
                     "--pipelines-dir", str(work / "pipelines"),
                     "--no-progress", "--log-level", "WARNING"], timeout=timeout, cwd=work)
    if run.returncode != 0:
        raise RuntimeError(f"desk-sessions run failed ({run.returncode}): {run.stderr[-1500:]}")
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = [d[0] for d in con.execute("SELECT * FROM tencent_desk.runs LIMIT 0").description]
        row = con.execute("SELECT * FROM tencent_desk.runs ORDER BY started_at DESC LIMIT 1"
                          ).fetchone()
        runs = dict(zip(cols, row, strict=True))
    finally:
        con.close()
    return run, runs


def cli_case(rep: Report, sim: common.Simulator, server: str, limit: int, ids: list[str],
             fixed_cost: bool) -> None:
    seed = common.write_seed(OUT / "cli-L1000-seed.csv", ids)
    conc = None  # as a user runs it: --max-qps only, the concurrency that follows from it
    name = f"desk-sessions run --max-qps {limit}, {server}, L={limit}/s d=80ms"
    # Let the server's one-second window forget the get_many case that just ran.
    time.sleep(1.5)
    with Watch(sim) as w:
        run, runs = cli_run(sim.url, seed, "cli-L1000", limit, conc, timeout=300)
    rows = runs["rows"]
    span = (runs["finished_at"] - runs["started_at"]).total_seconds()
    note = load_note(w)
    # The goal for the whole job (its 0.95 is for the client, the get_many cases).
    rep.add("limits", name, "calls/s ÷ L (runs.calls_per_second)",
            runs["calls_per_second"] / limit, "", "ratio", ">= 0.85", note)
    rep.add("limits", name, "throttled share (600xx)",
            runs["throttled"] / max(runs["calls"], 1), "%", "ratio", "<= 0.005")
    rep.add("limits", name, "process CPU per row (incl. start-up)",
            1000 * run.cpu_s / max(rows, 1), "ms", "absolute", "<= 2")
    rep.add("limits", name, "rows/s end to end (process wall)", rows / run.wall_s, "rows/s",
            "absolute")
    rep.add("limits", name, "peak RSS", run.maxrss_mb, "MB", "absolute")
    rep.notes.append(
        f"`{name}`: {rows} rows; process wall {run.wall_s:.1f} s, CPU {run.cpu_s:.1f} s "
        f"(wait4; RUSAGE_CHILDREN delta {run.cpu_children_s:.1f} s); runs table: "
        f"{runs['calls']} calls, {runs['calls_per_second']:.1f} calls/s, started_at to "
        f"finished_at {span:.1f} s.")
    if not fixed_cost:
        return
    # The fixed part: the same command on a seed of 10 keys.
    small = common.write_seed(OUT / "cli-small-seed.csv", ids[:10])
    fixed, _ = cli_run(sim.url, small, "cli-fixed", limit, conc, timeout=120)
    per_row = (run.cpu_s - fixed.cpu_s) / max(rows - 10, 1)
    rep.add("limits", "desk-sessions run, 10 keys (fixed cost)", "process CPU", fixed.cpu_s,
            "s", "absolute")
    rep.add("limits", name, "marginal CPU per row (minus fixed)", 1000 * per_row, "ms",
            "absolute")


# ---------------------------------------------------------------------------------- cpu
def section_cpu(rep: Report, quick: bool, profile: bool) -> None:
    transports = {"aiohttp": ("transport aiohttp (default)", 1500 if quick else 6000),
                  "httpx-aiohttp": ("transport httpx-aiohttp", 1500 if quick else 4000),
                  "httpx": ("transport httpx (its own pool)", 300 if quick else 800)}
    with simulator(rate_limit=0, latency_ms=80, sessions=20000, seed_out=True,
                   tag="sim-cpu") as sim:
        results = {}
        for transport, (label, calls) in transports.items():
            case = f"{label}, 100 in flight, d=80ms"
            with Watch(sim) as w:
                r = common.worker("bench_client.py", {
                    "url": sim.url, "calls": calls, "max_qps": 1e6, "max_concurrency": 100,
                    "seed_csv": str(sim.seed_csv), "transport": transport}, timeout=180)
            results[transport] = r
            rep.add("cpu", case, "client CPU per call", r["cpu_ms_per_call"], "ms", "absolute",
                    "<= 0.5" if transport == "aiohttp" else "", load_note(w))
            rep.add("cpu", case, "calls/s", r["calls_per_second"], "calls/s", "absolute")
            if transport == "aiohttp":
                rep.add("cpu", case, "simulator CPU per call (server side)",
                        1000 * w.sim_cpu / max(r["calls"], 1), "ms", "absolute")
        base = results["aiohttp"]["cpu_ms_per_call"]
        for transport in ("httpx-aiohttp", "httpx"):
            rep.add("cpu", f"{transport} ÷ aiohttp", "CPU per call ratio",
                    results[transport]["cpu_ms_per_call"] / base, "", "ratio")
        if profile or base > 0.5:
            spy = OUT / "pyspy-client.txt"
            common.worker("bench_client.py", {
                "url": sim.url, "calls": 1500 if quick else 4000, "max_qps": 1e6,
                "max_concurrency": 100, "seed_csv": str(sim.seed_csv), "transport": "aiohttp",
                "profile": "pyspy", "pyspy_out": str(spy)}, timeout=180)
            if spy.exists():
                rep.profiles.append(("client fetch phase, transport aiohttp, 100 in flight "
                                     "(py-spy, 250 Hz, non-blocking)",
                                     profiles.render(profiles.summarize(spy))))


# -------------------------------------------------------------------------------- peers
def section_peers(rep: Report, quick: bool) -> None:
    limit, latency = 200, 30
    sizes = {"loop": 60 if quick else 250, "seq": 60 if quick else 250,
             "par": 300 if quick else 1500, "cli": 600 if quick else 2400}
    with simulator(rate_limit=limit, latency_ms=latency, sessions=6000, seed_out=True,
                   tag="sim-peers") as sim:
        ids_file = common.write_seed(OUT / "peer-ids.csv", seed_session_ids(sim.seed_csv))
        peers = [("loop", "a) sequential httpx loop, sign each request", "loop", False),
                 ("seq", "b) dlt rest_api source, parent seed + child POST", "rest_api",
                  False),
                 ("par", "b) dlt rest_api source, parallelized=True", "rest_api", True)]
        for key, label, peer, par in peers:
            time.sleep(1.1)  # a fresh server window for each peer
            with Watch(sim) as w:
                r = common.worker("bench_peers.py", {
                    "peer": peer, "url": sim.url, "rows": sizes[key],
                    "ids_file": str(ids_file), "parallelized": par}, timeout=180)
            fetch_rate = r["rows"] / r["fetch_s"]
            rep.add("peers", label, "rows/s ÷ L (fetch phase)", fetch_rate / limit, "",
                    "ratio", note=load_note(w))
            rep.add("peers", label, "rows/s (fetch phase)", fetch_rate, "rows/s", "absolute")
            if "total_s" in r:
                rep.add("peers", label, "rows/s (extract+normalize+load)",
                        r["rows"] / r["total_s"], "rows/s", "absolute")
            rep.add("peers", label, "throttled answers", int(r["throttled"]), "", "absolute")
        time.sleep(1.1)
        seed = common.write_seed(OUT / "peer-cli-seed.csv",
                                 [s.strip() for s in ids_file.read_text().splitlines()[1:]]
                                 [:sizes["cli"]])
        label = "c) this project: desk-sessions run"
        with Watch(sim) as w:
            run, runs = cli_run(sim.url, seed, "cli-peers", limit, 64, timeout=180)
        span = (runs["finished_at"] - runs["started_at"]).total_seconds()
        rep.add("peers", label, "rows/s ÷ L (fetch phase)", runs["calls_per_second"] / limit,
                "", "ratio", note=load_note(w))
        rep.add("peers", label, "rows/s (fetch phase)", runs["calls_per_second"], "rows/s",
                "absolute")
        rep.add("peers", label, "rows/s (started_at..finished_at)", runs["rows"] / span,
                "rows/s", "absolute")
        rep.add("peers", label, "rows/s (whole process)", runs["rows"] / run.wall_s,
                "rows/s", "absolute")
        rep.add("peers", label, "throttled answers", int(runs["throttled"]), "", "absolute")
    rep.notes.append(
        f"peers: simulator limit {limit}/s, latency {latency} ms; rows: loop {sizes['loop']}, "
        f"rest_api {sizes['seq']}, rest_api parallelized {sizes['par']} (dlt's default "
        f"extract workers: 5), desk-sessions {sizes['cli']}. Fetch phase: the loop itself; "
        "rest_api: pipeline.extract(); desk-sessions: runs.calls_per_second (first call to "
        "last answer). The loop loads nothing.")


# --------------------------------------------------------------------------------- load
def section_load(rep: Report, quick: bool) -> None:
    arrow_rows = 100_000 if quick else 1_000_000
    dict_rows = 5_000 if quick else 20_000
    dict_parquet_rows = 20_000 if quick else 100_000
    r = common.worker("bench_load.py", {"arrow_rows": arrow_rows, "dict_rows": dict_rows,
                                        "dict_parquet_rows": dict_parquet_rows}, timeout=400)
    a, d, dp = r["arrow"], r["dict"], r["dict_parquet"]
    arrow_rate = a["rows"] / a["total_s"]
    dict_rate = d["rows"] / d["total_s"]
    dp_rate = dp["rows"] / dp["total_s"]
    case_a = f"rows.to_table Arrow -> dlt -> DuckDB, {a['rows']:,} rows"
    rep.add("load", case_a, "seconds (extract+normalize+load)", a["total_s"], "s", "absolute")
    rep.add("load", case_a, "rows/s", arrow_rate, "rows/s", "absolute")
    case_d = f"dicts -> dlt default (insert_values), {d['rows']:,} rows"
    rep.add("load", case_d, "rows/s", dict_rate, "rows/s", "absolute")
    rep.add("load", case_d, f"seconds for {arrow_rows:,} rows (scaled)",
            arrow_rows / dict_rate, "s", "absolute")
    case_p = f"dicts -> dlt, loader_file_format=parquet, {dp['rows']:,} rows"
    rep.add("load", case_p, "rows/s", dp_rate, "rows/s", "absolute")
    rep.add("load", case_p, f"seconds for {arrow_rows:,} rows (scaled)",
            arrow_rows / dp_rate, "s", "absolute")
    rep.add("load", "Arrow path ÷ dict path (default)", "rows/s ratio", arrow_rate / dict_rate,
            "", "ratio")
    rep.add("load", "Arrow path ÷ dict path (parquet)", "rows/s ratio", arrow_rate / dp_rate,
            "", "ratio")
    phases = "; ".join(f"{k}: extract {v['extract_s']:.1f} s, normalize {v['normalize_s']:.1f}"
                       f" s, load {v['load_s']:.1f} s, CPU {v['cpu_s']:.1f} s"
                       for k, v in (("arrow", a), ("dict", d), ("dict parquet", dp)))
    rep.notes.append(f"load: Arrow measured on {a['rows']:,} rows (tables of {r['batch']} rows,"
                     f" as the job yields them); dicts measured on {d['rows']:,} rows (default "
                     f"insert_values) and {dp['rows']:,} rows (parquet) and scaled linearly to "
                     f"{arrow_rows:,}. Phases: {phases}. Building the answers is not timed; "
                     "converting them (to_table / dict per row) is.")


# -------------------------------------------------------------------------------- scale
def rss_during_poll(run: common.ChildRun, runs: dict) -> tuple[float, float]:
    """RSS plateau (median over the second half of the poll) and its growth over the last
    three quarters of the poll, as MB per 100k keys (least squares on the samples)."""
    st = runs["started_at"].timestamp() - run.started_at
    fi = runs["finished_at"].timestamp() - run.started_at
    span = max(fi - st, 1e-9)
    half = sorted(mb for t, mb in run.rss_mb if st + span / 2 <= t <= fi)
    plateau = half[len(half) // 2] if half else float("nan")
    pts = [(t, mb) for t, mb in run.rss_mb if st + span / 4 <= t <= fi]
    if len(pts) < 3:
        return plateau, float("nan")
    mt = sum(t for t, _ in pts) / len(pts)
    mm = sum(mb for _, mb in pts) / len(pts)
    var = sum((t - mt) ** 2 for t, _ in pts)
    slope = sum((t - mt) * (mb - mm) for t, mb in pts) / var if var else 0.0  # MB/s
    keys_per_s = max(runs["rows"], 1) / span
    return plateau, slope / keys_per_s * 100_000


def section_scale(rep: Report, quick: bool, sizes: list[int]) -> None:
    if quick:
        sizes = [20_000, 40_000]
    peaks: dict[int, float] = {}
    per_key: dict[int, float] = {}
    with simulator(rate_limit=0, latency_ms=0, sessions=1000, tag="sim-scale") as sim:
        for n in sizes:
            seed = common.write_seed(OUT / f"scale-{n}.csv", random_ids(n, seed=n))
            name = f"desk-sessions run, {n:,} random keys"
            with Watch(sim) as w:
                run, runs = cli_run(sim.url, seed, f"cli-scale-{n}", 20000, 200,
                                    timeout=max(120, n / 200))
            peaks[n] = run.maxrss_mb
            per_key[n] = run.wall_s / n
            plateau, growth = rss_during_poll(run, runs)
            rep.add("scale", name, "peak RSS (ru_maxrss)", run.maxrss_mb, "MB", "absolute",
                    "<= 300", load_note(w))
            rep.add("scale", name, "RSS plateau while polling (median)", plateau, "MB",
                    "absolute")
            rep.add("scale", name, "RSS growth while polling", growth, "MB/100k keys",
                    "absolute")
            rep.add("scale", name, "wall seconds", run.wall_s, "s", "absolute")
            rep.add("scale", name, "calls/s (runs table)", runs["calls_per_second"], "calls/s",
                    "absolute")
            rep.add("scale", name, "process CPU per row", 1000 * run.cpu_s / runs["rows"],
                    "ms", "absolute")
            (OUT / f"rss-{n}.json").write_text(json.dumps(run.rss_mb))
            marks = [run.rss_mb[int(len(run.rss_mb) * q)] for q in (0.05, 0.1, 0.25, 0.5, 0.75)
                     if run.rss_mb] + run.rss_mb[-1:]
            rep.notes.append(f"`{name}`: RSS over time (s, MB): "
                             + ", ".join(f"({t:.0f}, {mb:.0f})" for t, mb in marks)
                             + f"; polling from {runs['started_at']:%H:%M:%S} to "
                             f"{runs['finished_at']:%H:%M:%S}")
        lo, hi = min(sizes), max(sizes)
        if hi < 1_000_000:
            rep.notes.append(
                f"scale: largest seed here {hi:,} keys ({per_key[hi] * 1000:.2f} ms wall per "
                f"key): 1,000,000 keys would take ~{per_key[hi] * 1e6 / 60:.0f} min at that "
                "rate, past the 10-minute budget of `make bench`; run "
                "`benchmarks/run.py --only scale --scale-sizes 100000,1000000 --results "
                "benchmarks/RESULTS-scale-1M.md` for it.")
        if lo != hi:
            rep.add("scale", f"peak RSS {hi:,} keys ÷ {lo:,} keys", "RSS ratio",
                    peaks[hi] / peaks[lo], "", "ratio", "<= 1.1")


# ----------------------------------------------------------------------------- snapshot
def section_snapshot(rep: Report, quick: bool) -> None:
    history = [10_000, 100_000] if quick else [10_000, 1_000_000]
    r = common.worker("bench_snapshot.py", {"history": history, "runs": 48, "run_rows": 500},
                      timeout=600)
    for c in r["cases"]:
        case = f"publish after a run of {c['run_rows']} rows, {c['history_rows']:,} rows before"
        rep.add("snapshot", case, "seconds per run (median)", c["publish_median_s"], "s",
                "absolute")
        rep.add("snapshot", case, "seconds per run (max, a day compacted)",
                c["publish_max_s"], "s", "absolute")
        rep.add("snapshot", case, "bytes written per run (median)",
                c["bytes_per_run_median"] / 1e3, "kB", "absolute")
        rep.add("snapshot", case, "snapshot size ÷ database size",
                c["snapshot_mb"] / c["database_mb"], "", "ratio")
    small, big = r["cases"][0], r["cases"][-1]
    rep.add("snapshot", f"{big['history_rows']:,} ÷ {small['history_rows']:,} rows of history",
            "publish seconds per run ratio (median)",
            big["publish_median_s"] / small["publish_median_s"], "", "ratio", "<= 1.5")
    rep.notes.append(
        "snapshot: runs of 500 keys every 5 minutes, 48 runs after the history (so a day's "
        "files are compacted about three times); first publish of the whole history: "
        + "; ".join(f"{c['history_rows']:,} rows {c['first_publish_s']:.2f} s" for c in
                    r["cases"]) + ".")


# ----------------------------------------------------------------------------- timeline
def section_timeline(rep: Report, quick: bool) -> None:
    days = [1, 3] if quick else [1, 30]
    r = common.worker("bench_timeline.py", {"days": days, "runs": 5}, timeout=900)
    for c in r["cases"]:
        case = f"timeline upkeep after a run, 500 open, {c['days']} d ({c['state_rows']:,} rows)"
        rep.add("timeline", case, "seconds per run (median)", c["upkeep_median_s"], "s",
                "absolute", "<= 1")
    small, big = r["cases"][0], r["cases"][-1]
    rep.add("timeline", f"{big['days']} days ÷ {small['days']} day of history",
            "upkeep seconds per run ratio (median)",
            big["upkeep_median_s"] / small["upkeep_median_s"], "", "ratio")
    rep.notes.append("timeline: 500 sessions open at any time, polled every minute, each an "
                     "hour long; first upkeep over the whole history: " + "; ".join(
                         f"{c['days']} d {c['first_upkeep_s']:.1f} s" for c in r["cases"]))


# ------------------------------------------------------------------------------ history
def section_history(rep: Report, quick: bool, days: list[int]) -> None:
    import history
    from tencent_desk.models import timeline

    days = [1, 3] if quick else days
    with Watch() as w:
        r = common.worker("bench_history.py", {"days": days, "runs": 5}, timeout=7200)
    for c in r["cases"]:
        case = f"{c['days']} d of 1-minute polls, {c['state_rows']:,} state rows"
        rep.add("history", case, "build (0 when cached)", 0.0 if c["cached"] else c["build_s"],
                "s", "absolute")
        rep.add("history", case, "database / snapshot on disk",
                c["database_mb"], "MB", "absolute", note=f"snapshot {c['snapshot_mb']:,.0f} MB")
        case = f"one run, {c['open_sessions']:.0f} open, {c['days']} d of history"
        rep.add("history", case, "timeline upkeep (median)", c["upkeep_median_s"], "s",
                "absolute", "<= 1", load_note(w))
        rep.add("history", case, "timeline upkeep CPU (median)", c["upkeep_cpu_median_s"],
                "s", "absolute")
        rep.add("history", case, "publish (median)", c["publish_median_s"], "s", "absolute")
        rep.add("history", case, "whole after_load (median)", c["after_load_median_s"], "s",
                "absolute", "<= 1", note=f"max {c['after_load_max_s']:.2f} s")
        rep.add("history", case, "whole after_load CPU (median)",
                c["after_load_cpu_median_s"], "s", "absolute")
        rep.notes.append(
            f"history {c['days']} d: {c['runs']:,} runs, {c['sessions']:,} sessions, "
            f"{c['state_rows']:,} state rows, {c['events']:,} events, {c['records']:,} "
            f"records; built in {c['build_s']:.0f} s (a day at a time, brought up to date and "
            f"published as the job does every {history.PUBLISH_DAYS} days: "
            f"{c['publish_s']:.0f} s of it){', earlier: cached' if c['cached'] else ''}.")
    small, big = r["cases"][0], r["cases"][-1]
    # Growth is judged between histories over twice the upkeep's look-back: a shorter one
    # has less history within its reach, not less to skip.
    past = [c for c in r["cases"] if c["days"] > 2 * timeline.LOOKBACK_DAYS]
    base = past[0] if len(past) > 1 else small
    for key, label in (("upkeep", "timeline upkeep"), ("after_load", "whole after_load")):
        rep.add("history", f"{big['days']} d ÷ {base['days']} d of history",
                f"{label} ratio (median)",
                big[f"{key}_median_s"] / base[f"{key}_median_s"], "", "ratio", "<= 1.5",
                "" if base is small else f"both past the {timeline.LOOKBACK_DAYS}-day "
                "look-back of the upkeep")
    cases = [notebook_case(c) for c in (small, big)]
    with Watch() as w:
        nb = common.worker("bench_notebooks.py", {"cases": cases}, timeout=7200)
    walls: dict[str, dict[int, float]] = {}
    for c, days in zip(nb["cases"], (small["days"], big["days"]), strict=True):
        for b in c["notebooks"]:
            on = c["from"] if c["from"] == c["to"] else f"{c['from']}..{c['to']}"
            case = f"notebooks/{b['notebook']}.ipynb on {on}, {days} d of history"
            note = b.get("error") or ""
            rep.add("history", case, "wall (kernel start to shutdown)", b.get("wall_s"), "s",
                    "absolute", "<= 5", note[:120] or load_note(w))
            rep.add("history", case, "kernel CPU", b.get("kernel_cpu_s"), "s", "absolute")
            rep.add("history", case, "kernel peak RSS", b.get("kernel_peak_mb"), "MB",
                    "absolute", "<= 1000")
            if b.get("wall_s") and not note:
                walls.setdefault(b["notebook"], {})[days] = b["wall_s"]
        a = c["analysis"]
        case = f"Reader + timeline_metrics, {c['since'][:16]}..{c['until'][:16]}, {days} d"
        rep.add("history", case, "wall", a.get("total_s"), "s", "absolute", "<= 5",
                a.get("error", f"{a.get('sessions', 0):,} sessions"))
        rep.add("history", case, "peak RSS", a.get("peak_mb"), "MB", "absolute", "<= 1000")
    for name, w in walls.items():
        if len(w) == 2:
            rep.add("history", f"notebooks/{name}.ipynb, {big['days']} d ÷ {small['days']} d",
                    "wall ratio", w[big["days"]] / w[small["days"]], "", "ratio")
    rep.notes.append(
        "history: each notebook runs in a child process as the tests run them (nbclient, a "
        "kernel of the venv's interpreter), with DESK_DUCKDB=<the history>, DESK_FROM and "
        "DESK_TO the first and last day (inclusive); its wall includes the kernel's start. "
        "The day is the last whole weekday of the history; the 1-day history (15:00 to "
        "15:00) is opened whole.")


def notebook_case(c: dict) -> dict:
    """What a notebook is opened on: the last whole weekday of the history; a history of
    one day (15:00 to 15:00) is opened whole."""
    import history

    start = datetime.fromtimestamp(history.Params(days=c["days"]).start, UTC)
    end = start + timedelta(days=c["days"])
    if c["days"] == 1:
        since, until = start, end
    else:
        day = end.date() - timedelta(days=1)
        while day.weekday() >= 5:
            day -= timedelta(days=1)
        since = datetime.combine(day, datetime.min.time(), UTC)
        until = since + timedelta(days=1)
    return {"database": c["database"], "from": since.date().isoformat(),
            "to": (until - timedelta(seconds=1)).date().isoformat(),
            "since": since.isoformat(), "until": until.isoformat()}


# --------------------------------------------------------------------------------- main
def write_results(rep: Report, machine: dict, total_s: float, argv: list[str],
                  path: Path = RESULTS) -> None:
    lines = ["# Benchmark results", "",
             f"Generated by `benchmarks/run.py{(' ' + ' '.join(argv)) if argv else ''}` "
             f"(`make bench`) in {total_s / 60:.1f} min"
             f"{' (QUICK: small sizes, a smoke test)' if rep.quick else ''}.", "",
             "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    lines += ["", "## How to read", "",
              "- **ratio** figures (calls/s ÷ limit, throttled share, rows/s ÷ limit, "
              "path and transport ratios, RSS growth) compare across machines.",
              "- **absolute** figures (ms of CPU, rows/s, seconds, MB) hold for this machine "
              "only.",
              "- The simulator (`desk-sessions simulate`) runs in its own process on "
              "loopback; client CPU is that of the client process alone (process time over "
              "the fetch phase; for the CLI: the child's user+system time from wait4, "
              "cross-checked against RUSAGE_CHILDREN).",
              "- *independent API* is `benchmarks/independent_api.py`: the API written again "
              "from the reference alone, sharing no code with the package (aiohttp.web, its "
              "own UserSig check, a limit of fixed calendar seconds counting every arrival).",
              "- *other load* flags cases during which other processes on the machine used "
              "that many cores: wall-clock figures of those cases are pessimistic.", "",
              "## Figures", "",
              "| section | case | metric | value | kind | goal | met | note |",
              "|---|---|---|---:|---|---|---|---|"]
    lines += [f"| {f.section} " + figure_row(f) for f in rep.figures]
    goals = [f for f in rep.figures if f.met is not None]
    lines += ["", f"Goals met: {sum(f.met for f in goals)} of {len(goals)}."]
    if rep.notes:
        lines += ["", "## Details", ""] + [f"- {n}" for n in rep.notes]
    for title, text in rep.profiles:
        lines += ["", f"## Profile: {title}", "", "```", text, "```"]
    if rep.timings:
        lines += ["", "## Section times", ""] + [f"- {k}: {v:.0f} s"
                                                  for k, v in rep.timings.items()]
    if rep.errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in rep.errors]
    path.write_text("\n".join(lines) + "\n")


def figure_row(f: Figure) -> str:
    """A figure as a Markdown table row from its case on."""
    met = "" if f.met is None else ("yes" if f.met else "**NO**")
    return (f"| {f.case} | {f.metric} | {fmt(f.value, f.unit)} | {f.kind} | "
            f"{fmt_goal(f.goal, f.unit)} | {met} | {f.note} |")


def write_section(rep: Report, machine: dict, total_s: float, path: Path, title: str) -> None:
    """One section's figures under its own heading of ``path``, the rest left as it is."""
    block = [f"## {title}", "",
             f"`benchmarks/run.py --only {rep.figures[0].section if rep.figures else ''}"
             f"{' --quick' if rep.quick else ''}` in {total_s / 60:.1f} min on "
             f"{machine.get('cpu', 'this machine')}.", "",
             "| case | metric | value | kind | goal | met | note |",
             "|---|---|---:|---|---|---|---|"]
    block += [figure_row(f) for f in rep.figures]
    block += [""] + [f"- {n}" for n in rep.notes] + [f"- error: {e}" for e in rep.errors]
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    head, found, rest = text.partition(f"\n## {title}\n")
    tail = rest[rest.find("\n## "):] if found and "\n## " in rest else ""
    path.write_text(head.rstrip("\n") + "\n\n" + "\n".join(block).rstrip("\n") + "\n"
                    + tail)


def print_table(rep: Report) -> None:
    print("\n" + "=" * 118)
    print(f"{'section':<7} {'case':<46} {'metric':<36} {'value':>14} {'kind':<8} "
          f"{'goal':<8} met")
    print("-" * 118)
    for f in rep.figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        print(f"{f.section:<7} {f.case[:46]:<46} {f.metric[:36]:<36} "
              f"{fmt(f.value, f.unit):>14} {f.kind:<8} {fmt_goal(f.goal, f.unit):<8} {met}"
              + (f"  ({f.note})" if f.note else ""))
    goals = [f for f in rep.figures if f.met is not None]
    print("-" * 118)
    print(f"goals met: {sum(f.met for f in goals)} of {len(goals)}")


def exclusive(path: Path):  # type: ignore[no-untyped-def]
    """One benchmark run at a time on a machine: a second one waits (it would skew both)."""
    import fcntl

    fh = path.open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another benchmarks/run.py is running: waiting for it to finish", flush=True)
        fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def prune(folder: Path, keep: int) -> None:
    """Scratch folders of earlier runs: keep the last few."""
    runs = sorted((p for p in folder.glob("run-*") if p.is_dir() and p != OUT),
                  key=lambda p: p.stat().st_mtime)
    for old in runs[:max(0, len(runs) - keep + 1)]:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------- report
def section_report(rep: Report, quick: bool) -> None:
    days = 7 if quick else 90
    with Watch() as w:
        r = common.worker("bench_report.py", {"days": days, "repeat": 1 if quick else 3},
                          timeout=7200)
    case = f"report --month {r['month']} ({r['sessions']:,} sessions), {days} d of history"
    rep.add("report", case, "CLI wall (median)", r["cli_median_s"], "s", "absolute", "<= 5",
            load_note(w))
    rep.add("report", case, "figures (gather)", r["gather_s"], "s", "absolute")
    rep.add("report", case, "page (render)", r["render_s"], "s", "absolute")
    rep.add("report", case, "page size", r["page_kb"], "KiB", "absolute")
    if not r["whole_month"]:
        rep.notes.append(f"report: {days} d of history hold no whole month (52 d do): the "
                         f"month measured is partial.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections among {', '.join(SECTIONS)}")
    p.add_argument("--scale-sizes", default="50000,100000",
                   help="seed sizes of the scale section (default %(default)s: 1M keys take "
                   "~8 min on a 2-core machine, too much for the 10-minute budget; run it with "
                   "--only scale --scale-sizes 100000,1000000)")
    p.add_argument("--history-days", default="1,7,90",
                   help="days of history of the history section (default %(default)s; the "
                   "notebooks are opened on the first and the last; the upkeep's growth is "
                   "the last over the first longer than twice the upkeep's look-back)")
    p.add_argument("--profile", action="store_true",
                   help="profile the client even when its CPU goal is met")
    p.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="where to write the results (default %(default)s)")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    OUT.mkdir(parents=True, exist_ok=True)
    lock = exclusive(OUT.parent / ".lock")  # noqa: F841  (held until exit)
    prune(OUT.parent, keep=3)
    machine = common.machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()), flush=True)
    rep = Report(quick=args.quick)
    t_all = time.perf_counter()
    for section in SECTIONS:
        if section not in chosen:
            continue
        print(f"\n[{section}]", flush=True)
        t0 = time.perf_counter()
        try:
            if section == "limits":
                section_limits(rep, args.quick)
            elif section == "cpu":
                section_cpu(rep, args.quick, args.profile)
            elif section == "peers":
                section_peers(rep, args.quick)
            elif section == "load":
                section_load(rep, args.quick)
            elif section == "snapshot":
                section_snapshot(rep, args.quick)
            elif section == "timeline":
                section_timeline(rep, args.quick)
            elif section == "history":
                section_history(rep, args.quick,
                                [int(d) for d in args.history_days.split(",") if d.strip()])
            elif section == "postgres":
                from bench_postgres_read import section_postgres

                section_postgres(rep, args.quick)
            elif section == "report":
                section_report(rep, args.quick)
            elif section == "intervals":
                from bench_intervals import section_intervals

                section_intervals(rep, args.quick)
            elif section == "records":
                from bench_records import section_records

                section_records(rep, args.quick)
            else:
                section_scale(rep, args.quick,
                              [int(s) for s in args.scale_sizes.split(",") if s.strip()])
        except Exception as exc:  # one broken section does not lose the others' figures
            traceback.print_exc()
            rep.errors.append(f"{section}: {type(exc).__name__}: {str(exc)[:500]}")
        rep.timings[section] = time.perf_counter() - t0
        print(f"  ({rep.timings[section]:.0f} s)", flush=True)
    total = time.perf_counter() - t_all
    print_table(rep)
    print(f"total {total / 60:.1f} min")
    (OUT / "results.json").write_text(json.dumps({
        "machine": machine, "total_s": total, "quick": rep.quick,
        "figures": [f.__dict__ for f in rep.figures], "notes": rep.notes,
        "profiles": rep.profiles, "timings": rep.timings, "errors": rep.errors}, indent=1))
    if not args.no_write and len(chosen) == 1 and chosen[0] in SECTION_TITLES:
        write_section(rep, machine, total, args.results, SECTION_TITLES[chosen[0]])
    elif not args.no_write:
        write_results(rep, machine, total, sys.argv[1:] if argv is None else argv,
                      args.results)
        print(f"wrote {args.results}")
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
