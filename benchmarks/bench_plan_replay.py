"""Issue 23's proof: plan each of 14 days from the history before it, then replay each day in
the simulator with exactly the planned staffing, against the oracle's plan and Erlang C's.

- History: 10 simulated weeks of three agent groups made through the intake path
  (``desk-sessions simulate history --weeks 10 --start 2026-01-05 --seed 0 --poll-days 3
  --poll-every 5``: callbacks through the receiver, then the records job; on the last 3
  days the job also polls every 5 minutes, as the README's cron line does, which is what
  times the offers' ringing), read as ``desk-sessions plan`` reads it. Built once and
  cached (``--database``; default benchmarks/out/plan-history/h10-polled.duckdb).
- Rolling origin: days 71 to 84 of the same weeks model (same seed: the continuation).
  Each day is planned with :func:`planning.plan.make_plan` (what ``desk-sessions plan
  --backtest`` runs) at 30 minutes, target 0.8:60 over each day per group (``--target-per
  interval``: in every interval; the same rule for all three plans), max occupancy 0.85,
  from the data before it: the history plus the days already replayed (what the desk would
  have recorded under its plans). Then the day's customers (:func:`weeks.day_customers`)
  are replayed under three staffings: the plan's agents, the oracle's (the same staffing
  model, :func:`plan.staff`, fed the simulator's expected rates: the best forecast the
  evening before) and Erlang C's agents on the plan's forecast.
- Intraday: at 12:00 of each day, ``intraday_plan(..., 12:00)`` from the morning's arrivals;
  the afternoon's WAPE against the oracle's.

Per-group goals on 14 days are at the mercy of the days' draws, so the report also says
which failing goals the oracle fails too, and how often windows like this one let the truth
itself pass the forecast's per-group goals (:func:`reach`).

Service level here is the field's definition, the one the plan targets and the report shows
(answered within 60 s / (answered + abandoned after 60 s)), with the wait to the answer as
the customer sees it (the offer's ringing included); the stricter share of all who asked is
reported beside.

  .venv/bin/python benchmarks/bench_plan_replay.py [--database FILE] [--days 14]
      [--max-occupancy 0.85] [--target-per day|interval] [--seed N --database FILE]
      [--unnamed]

Writes its figures under "## Plan replayed in the simulator (issue 23)" in
benchmarks/RESULTS.md, or with another --max-occupancy under that heading followed by ",
max occupancy X" (``make bench`` also runs it without a cap, 1: the service-level goals then
measure the staffing model, not the cap), and with --unnamed followed by ", records without
the unserved's group" (``make bench`` runs that too: the plan under the other reading of the
records, planning/ungrouped.py); the rest is left alone (--no-write: print only).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tencent_desk.core import settings
from tencent_desk.planning import forecast as fc
from tencent_desk.planning import history, ungrouped
from tencent_desk.planning import plan as pl
from tencent_desk.planning.choices import PER
from tencent_desk.planning.summary import Summary
from tencent_desk.readers.snapshot import Reader
from tencent_desk.run.publish import publish
from tencent_desk.simulator import weeks as wk
from tencent_desk.simulator.replay import replay, serve_customers
from tencent_desk.simulator.schedule import Schedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.nb_fixture import unnamed
from tests.support import plan_replay as glue

HISTORY_WEEKS = 10
START = "2026-01-05"
SEED = 0
PARAMS = pl.Params(interval_min=30, target_sl=0.8, target_s=60.0, max_occupancy=0.85)
BUSY = 20  # sessions asking for a human in a 30-minute interval
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Plan replayed in the simulator (issue 23)"
PLANS = ("plan", "oracle", "erlang_c")
DEFAULT_DB = ROOT / "benchmarks" / "out" / "plan-history" / "h10-polled.duckdb"
POLL_DAYS, POLL_EVERY_MIN = 3, 5


def build_history(database: Path, seed: int) -> None:
    """The 10 weeks through the intake path (cached)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    desk = str(Path(sys.executable).parent / "desk-sessions")
    subprocess.run([desk, "simulate", "history", "--weeks", str(HISTORY_WEEKS), "--database",
                    str(database), "--start", START, "--seed", str(seed), "--poll-days",
                    str(POLL_DAYS), "--poll-every", str(POLL_EVERY_MIN)], check=True)
    if not Reader.available(database):
        subprocess.run([desk, "publish", "--database", str(database)], check=True)
    built(database).touch()


def unnamed_history(database: Path) -> Path:
    """A copy of ``database`` whose records name no group for the sessions nobody served
    (the other reading of Desk's "the agent group that served"), its timeline made again
    by a publish (cached beside it)."""
    copy = database.with_name(f"{database.stem}-unnamed.duckdb")
    if built(copy).exists():
        return copy
    unnamed(database, copy)
    publish(copy)
    built(copy).touch()
    return copy


def built(database: Path) -> Path:
    """Marks a history built to the end (an interrupted build leaves its file behind)."""
    return database.with_name(database.name + ".built")


@dataclass
class Day:
    rows: pd.DataFrame  # per group and interval: forecasts, actuals, each plan's outcome
    pm: pd.DataFrame  # the afternoon: intraday reforecast, oracle, actual
    seconds: float
    index: int  # the day's number in the weeks model
    oracle_schedule: Schedule  # the oracle's plan, which no day's draw changes
    plan_schedule: Schedule


def run_day(summed: Summary, cfg: wk.WeeksConfig, rates: pd.DataFrame, d: int,
            params: pl.Params, unnamed: bool = False) -> tuple[Day, pd.DataFrame]:
    """Plan day ``d`` from ``summed`` (the sessions before it), replay it under the three
    plans; returns the day's figures and its sessions as recorded under the plan (those
    nobody served without their group, if ``unnamed``)."""
    t0 = time.monotonic()
    day = pd.Timestamp(cfg.day_start(d), unit="s", tz="UTC")
    ids = glue.group_ids(cfg)
    names = {v: k for k, v in ids.items()}
    plan = pl.make_plan(summed, [day], params)
    oracle = glue.oracle_plan(summed, rates, day, params)
    customers = wk.day_customers(cfg, d)
    slow = wk.slowdowns(cfg)
    key = ["group", "interval_start"]
    rows = plan[[*key, "forecast", "forecast_lo", "forecast_hi", "slots_per_agent",
                 "service_level", "abandonment", "patience_s", "ringing_s"]].rename(
        columns={"service_level": "sl_predicted", "abandonment": "ab_predicted"})
    rows = rows.merge(oracle[[*key, "forecast"]].rename(columns={"forecast": "expected"}),
                      on=key)
    # The true predictive interval: Poisson around the expected rate times the day's gamma
    # draw (CV day_cv) is negative binomial; what coverage the exact model gets on busy days.
    true = [fc.nb_interval(m, m + (m * cfg.day_cv) ** 2) for m in rows.expected]
    rows["true_lo"], rows["true_hi"] = [t[0] for t in true], [t[1] for t in true]
    counts = summed.counts(params.freq, summed.data_days())
    at = pd.DatetimeIndex(rows.interval_start.unique())
    naive = pd.concat([fc.forecast(counts[n], at, "naive").forecast.rename("naive")
                       .rename_axis("interval_start").reset_index().assign(group=n)
                       for n in ids])
    rows = rows.merge(naive, on=key, how="left")  # by group: the plan's order is not ids'
    served_plan = None
    schedules = {}
    for label, frame, column in (("plan", plan, "agents"), ("oracle", oracle, "agents"),
                                 ("erlang_c", plan, "erlang_c_agents")):
        schedule = schedules[label] = glue.schedule_of(frame, column, day, cfg, params)
        got = replay(customers, schedule, threshold_s=params.target_s, slowdown=slow)
        got["group"] = got.agent_group_id.map(names)
        measures = ("answered", "answered_within", "abandoned", "abandoned_after",
                    "staff_hours", "agents")
        got = got.rename(columns={c: f"{label}_{c}" for c in ("offered", *measures)})
        keep = [f"{label}_{c}" for c in measures]
        if label == "plan":
            keep.append("plan_offered")
            served_plan = serve_customers(customers, schedule, slow)
            offered_in = served_plan.started - served_plan.queued_at <= params.target_s
            got["plan_offered_within"] = (
                served_plan.assign(ok=offered_in & (served_plan.agent >= 0), k=pd.to_datetime(
                    served_plan.queued_at, unit="s", utc=True).dt.floor(params.freq))
                .groupby(["agent_group_id", "k"]).ok.sum()
                .reindex(pd.MultiIndex.from_frame(got[["agent_group_id", "interval_start"]]),
                         fill_value=0).to_numpy())
            keep.append("plan_offered_within")
        rows = rows.merge(got[[*key, *keep]], on=key)
    rows = rows.rename(columns={"plan_offered": "actual"})
    rows["day"] = day
    assert served_plan is not None
    recorded = glue.as_sessions(served_plan, cfg)
    if unnamed:
        recorded["agent_group_name"] = recorded.agent_group_name.where(~recorded.abandoned)
    # Intraday: the rest of the day from 12:00, from the morning as recorded.
    noon = day + pd.Timedelta(hours=12)
    today = recorded[recorded.queued_at < noon]
    pm = pl.intraday_plan(ungrouped.spread(summed + Summary.of(today, params.target_s)),
                          noon, params, history_until=day)[0][[*key, "forecast"]]
    pm = pm.merge(rows[[*key, "expected", "actual"]], on=key)
    return Day(rows, pm, time.monotonic() - t0, d, schedules["oracle"],
               schedules["plan"]), recorded


def level(x: pd.DataFrame, prefix: str) -> float:
    """The field's service level of replayed intervals ``x`` (columns ``prefix`` + answered,
    answered_within, abandoned_after): their counts summed, not their levels averaged."""
    kept = x[f"{prefix}answered"].sum() + x[f"{prefix}abandoned_after"].sum()
    return float(x[f"{prefix}answered_within"].sum() / kept) if kept else float("nan")


def other_windows(days: list[Day], cfg: wk.WeeksConfig, params: pl.Params,
                  windows: int = 30) -> dict[str, np.ndarray]:
    """The oracle's and the plan's schedules replayed on ``windows`` other draws of the
    days' customers (the simulator's seeds after ``cfg.seed``): each window's service level
    over the days, and its abandonment's mean gap to the plan's prediction. The oracle's
    plan is the same for every seed (the expected rates); the plan's is the one made on
    these days, so its windows show how far the days' own draws move its figures."""
    slow = wk.slowdowns(cfg)
    out: dict[str, list[float]] = {"oracle": [], "plan": [], "plan_ab_gap": []}
    for k in range(1, windows + 1):
        other = replace(cfg, seed=cfg.seed + k)
        customers = [wk.day_customers(other, d.index) for d in days]
        for label in ("oracle", "plan"):
            got = [replay(c, getattr(d, f"{label}_schedule"), threshold_s=params.target_s,
                          slowdown=slow) for c, d in zip(customers, days, strict=True)]
            out[label].append(float(np.mean([level(g, "") for g in got])))
            if label == "plan":
                out["plan_ab_gap"].append(float(np.mean([
                    g.abandoned.sum() / g.offered.sum() - float(
                        (d.rows.ab_predicted * d.rows.forecast).sum() / d.rows.forecast.sum())
                    for g, d in zip(got, days, strict=True)])))
    return {k: np.asarray(v) for k, v in out.items()}


PEER = ROOT / "benchmarks" / "peers" / "statsforecast"


def mstl(summed: Summary, days: list[Day], params: pl.Params) -> None:
    """statsforecast's MSTL (daily and weekly seasonality, AutoETS trend), the maintained
    library the profile is compared with: each planned day forecast from the counts before
    it, into each day's rows as ``mstl``. It runs in its own environment (statsforecast
    needs pandas < 3): benchmarks/peers/statsforecast, through uv."""
    counts = summed.counts(params.freq, summed.data_days())
    long = counts.reset_index().melt(id_vars="interval_start", var_name="unique_id",
                                     value_name="y").fillna({"y": 0.0})
    long["ds"] = long.pop("interval_start").dt.tz_localize(None)
    origins = [pd.Timestamp(d.rows.day.iloc[0]).tz_localize(None) for d in days]
    per_day = 24 * 60 // params.interval_min
    out = ROOT / "benchmarks" / "out" / "plan-history"
    out.mkdir(parents=True, exist_ok=True)
    src, dst = out / "mstl-in.parquet", out / "mstl-out.parquet"
    pd.concat([long[long.ds < o + pd.Timedelta(days=1)].assign(origin=o) for o in origins],
              ignore_index=True).to_parquet(src)
    env = {k: v for k, v in os.environ.items() if k != "UV_PROJECT_ENVIRONMENT"}  # its own
    uv = ROOT / ".venv-uv" / "bin" / "uv"
    subprocess.run([str(uv), "run", "--quiet", "--locked", "--project", str(PEER), "python",
                    str(PEER / "mstl.py"), str(src), str(dst), str(per_day), str(per_day)],
                   check=True, env=env)
    got = pd.read_parquet(dst)
    got = got.assign(group=got.unique_id, interval_start=pd.to_datetime(got.ds).dt.tz_localize(
        "UTC"))[["group", "interval_start", "mstl"]]
    for d in days:
        d.rows = d.rows.merge(got, on=["group", "interval_start"], how="left")


def reach(r: pd.DataFrame, day_cv: float, windows: int = 2000
          ) -> dict[str, tuple[float, float, float, float]]:
    """How often windows like this one let the truth itself pass the per-group forecast
    goals: ``windows`` draws of the same days' arrivals from the simulator's expected rates
    (Poisson around them times a gamma day draw per group and day, CV ``day_cv``; seasonal
    naive is the same draw a week before, as the weeks repeat), the same busy rule. Per
    group and "all": the share of windows where the exact 80% interval covers 75-85% of
    the busy actuals, and where the expected rate's WAPE is >= 25% below naive's; then
    both figures over all the windows together (the long run, where a group's busy
    intervals, chosen on the actual, may hold the truth itself outside the goal)."""
    rng = np.random.default_rng(0)
    shape = 1.0 / day_cv**2 if day_cv else 0.0
    out = {}
    for group, x in [*r.groupby("group"), ("all", r)]:
        lam = x.expected.to_numpy(float)
        day = pd.factorize(x.group.astype(str) + x.day.astype(str))[0]

        def draw(lam: np.ndarray = lam, day: np.ndarray = day) -> np.ndarray:
            m = (rng.gamma(shape, 1.0 / shape, (windows, day.max() + 1)) if shape
                 else np.ones((windows, day.max() + 1)))
            return rng.poisson(lam * m[:, day])

        got, naive = draw(), draw()
        busy = got >= BUSY
        inside = busy & (got >= x.true_lo.to_numpy()) & (got <= x.true_hi.to_numpy())
        cover = inside.sum(1) / np.maximum(busy.sum(1), 1)
        err, err_naive = (np.abs(got - lam) * busy).sum(1), (np.abs(got - naive) * busy).sum(1)
        gain = 1 - err / np.maximum(err_naive, 1)
        out[str(group)] = (float(((cover >= 0.75) & (cover <= 0.85)).mean()),
                           float((gain >= 0.25).mean()), float(inside.sum() / busy.sum()),
                           float(1 - err.sum() / err_naive.sum()))
    return out


def wape(actual: pd.Series, predicted: pd.Series) -> float:
    return float((actual - predicted).abs().sum() / actual.sum())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


FORECAST_HEAD = [
    "| group | busy intervals | WAPE plan | oracle | ÷ oracle (<= 1.15) | naive | "
    "vs naive (>= 25% better) | oracle vs naive | MSTL (statsforecast) | ÷ MSTL | "
    "bias | in 80% (75-85%) | in the true 80% | slots estimated |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]


def forecast_table(busy: pd.DataFrame) -> tuple[list[str], list[tuple[str, bool]],
                                                 dict[str, bool]]:
    """The forecast's rows over ``busy``, per group and for all; its goals; and what the
    oracle gets on the goals that a 14-day window's own draws can fail (a goal the oracle
    misses too is out of reach on this window, not the plan's fault)."""
    lines: list[str] = []
    goals: list[tuple[str, bool]] = []
    oracle_ok: dict[str, bool] = {}
    for group, b in [*busy.groupby("group"), ("all", busy)]:
        w, o, n = wape(b.actual, b.forecast), wape(b.actual, b.expected), wape(b.actual,
                                                                                 b.naive)
        m = wape(b.actual, b.mstl)
        cover = float(((b.actual >= b.forecast_lo) & (b.actual <= b.forecast_hi)).mean())
        true = float(((b.actual >= b.true_lo) & (b.actual <= b.true_hi)).mean())
        bias = float((b.forecast - b.actual).sum() / b.actual.sum())
        slots = ", ".join(str(int(s)) for s in sorted(b.slots_per_agent.unique()))
        lines.append(f"| {group} | {len(b)} | {w:.3f} | {o:.3f} | {w / o:.2f} "
                     f"{verdict(w / o <= 1.15)} | {n:.3f} | {1 - w / n:+.0%} "
                     f"{verdict(1 - w / n >= 0.25)} | {1 - o / n:+.0%} | {m:.3f} | "
                     f"{w / m:.2f} | {bias:+.3f} | "
                     f"{cover:.0%} "
                     f"{verdict(0.75 <= cover <= 0.85)} | {true:.0%} | {slots} |")
        goals += [(f"WAPE {group} <= 1.15x oracle", w / o <= 1.15),
                  (f"WAPE {group} >= 25% better than naive", 1 - w / n >= 0.25),
                  (f"80% interval coverage {group} 75-85%", 0.75 <= cover <= 0.85)]
        oracle_ok |= {f"WAPE {group} >= 25% better than naive": 1 - o / n >= 0.25,
                      f"80% interval coverage {group} 75-85%": 0.75 <= true <= 0.85}
    return lines, goals, oracle_ok


def report(days: list[Day], args: argparse.Namespace, params: pl.Params,
           built_s: float | None) -> str:
    r = pd.concat([d.rows for d in days], ignore_index=True)
    pm = pd.concat([d.pm for d in days], ignore_index=True)
    busy = r[r.actual >= BUSY]
    target = params.target_sl
    where = ("" if args.database == DEFAULT_DB else f" --database {args.database}") + (
        "" if args.seed == SEED else f" --seed {args.seed}") + (
        " --unnamed" if args.unnamed else "")
    lines = [f"Command: `.venv/bin/python benchmarks/bench_plan_replay.py{where} --days "
             f"{args.days} --max-occupancy {params.max_occupancy} --target-per "
             f"{params.target_per}` "
             f"({datetime.now(UTC):%Y-%m-%d}; history {args.history.name}: 10 weeks "
             f"from {START}, seed {args.seed}, 3 groups, made through the intake path, "
             f"polled on the last {POLL_DAYS} days every {POLL_EVERY_MIN} minutes"
             + (f" in {built_s:.0f} s" if built_s else ", cached") + f"; {len(days)} days "
             f"planned and replayed in {sum(d.seconds for d in days):.0f} s, "
             f"{np.mean([d.seconds for d in days]):.0f} s a day). Target 0.8:60 "
             + ("over each day per group (forecast-weighted) for all three plans, "
                if params.target_per == "day" else "in every interval, ") +
             f"30-minute intervals, max occupancy {params.max_occupancy}, no shrinkage. "
             f"Busy: an interval of a group with >= {BUSY} sessions asking for a human.", "",
             "**Forecast** (busy intervals, 30 min, per group):", "", *FORECAST_HEAD]
    table, goals, oracle_ok = forecast_table(busy)
    lines += table
    table, other, _ = forecast_table(r[r.expected >= BUSY])
    lines += ["", f"The same goals with busy intervals chosen before the day, on the expected "
              f"arrivals (the oracle's >= {BUSY}) rather than on those that came, so not on "
              f"the day's draw: another reading of the goal, shown, not counted "
              f"({sum(ok for _, ok in other)} of {len(other)} pass).", "", *FORECAST_HEAD,
              *table]
    odds = reach(r, args.cfg.day_cv)
    lines += ["", "How often a window of these days lets the truth itself pass (2,000 windows "
              "drawn from the simulator's expected rates and day draws; busy as counted, "
              f">= {BUSY} that came):",
              "", "| group | the exact 80% interval covers 75-85% | the expected rate >= 25% "
              "better than naive | in the long run: covered | better than naive |",
              "|---|---|---|---|---|",
              *[f"| {g} | {c:.0%} | {n:.0%} | {lc:.1%} | {ln:+.1%} |"
                for g, (c, n, lc, ln) in odds.items()]]
    lines += ["", "Patience and the offer's ringing as the plans estimated them (the first "
              "and the last day planned), against the simulator's truth (its configured "
              "means):", "", "| group | patience | true | ringing | true |",
              "|---|---|---|---|---|"]

    def span(x: pd.DataFrame, col: str) -> str:
        a, b = (float(x[x.day == day][col].iloc[0]) for day in (x.day.min(), x.day.max()))
        return f"{a:.0f} s" if round(a) == round(b) else f"{a:.0f}-{b:.0f} s"
    for g in args.cfg.groups:
        x = r[r.group == g.name]
        lines.append(f"| {g.name} | {span(x, 'patience_s')} | {g.patience_mean_s:.0f} s | "
                     f"{span(x, 'ringing_s')} | {(g.offer_min_s + g.offer_max_s) / 2:.0f} s |")
    # Staffing on replay, per day (all groups pooled).
    per_day = []
    for d in days:
        x = d.rows
        row = {"day": x.day.iloc[0], "offered": x.actual.sum(),
               "ab_predicted": float((x.ab_predicted * x.forecast).sum() / x.forecast.sum()),
               "sl_predicted": float((x.sl_predicted * x.forecast).sum() / x.forecast.sum())}
        for p in PLANS:
            row[f"{p}_sl"] = level(x, f"{p}_")
            row[f"{p}_all_sl"] = x[f"{p}_answered_within"].sum() / x.actual.sum()
            row[f"{p}_ab"] = x[f"{p}_abandoned"].sum() / x.actual.sum()
            row[f"{p}_hours"] = x[f"{p}_staff_hours"].sum()
        row["plan_offer_sl"] = x.plan_offered_within.sum() / x.actual.sum()
        per_day.append(row)
    pd_ = pd.DataFrame(per_day)
    lines += ["", "**Staffing, on replay** (each day's customers under each plan; service "
              "level = answered within 60 s / (answered + abandoned after 60 s)):", "",
              "| day | asked | SL plan | predicted | SL oracle | SL Erlang C | abandoned plan | "
              "predicted | hours plan | oracle | Erlang C |", "|---|---|---|---|---|---|---|"
              "---|---|---|---|"]
    for row in per_day:
        lines.append(f"| {row['day']:%a %m-%d} | {row['offered']:.0f} | {row['plan_sl']:.1%} | "
                     f"{row['sl_predicted']:.1%} | {row['oracle_sl']:.1%} | "
                     f"{row['erlang_c_sl']:.1%} | {row['plan_ab']:.1%} | "
                     f"{row['ab_predicted']:.1%} | {row['plan_hours']:.0f} | "
                     f"{row['oracle_hours']:.0f} | {row['erlang_c_hours']:.0f} |")
    lines += ["", f"Per group, all {len(days)} days: service level reached "
              "(predicted by the plan), abandoned (predicted), staff-hours:", "",
              "| group | SL plan | predicted | SL oracle | SL Erlang C | abandoned plan | "
              "predicted | hours plan | oracle | Erlang C |", "|---|---|---|---|---|---|---|"
              "---|---|---|"]
    for group, x in r.groupby("group"):
        asked, f = x.actual.sum(), x.forecast.sum()
        lines.append(
            f"| {group} | {level(x, 'plan_'):.1%} | "
            f"{(x.sl_predicted * x.forecast).sum() / f:.1%} | "
            f"{level(x, 'oracle_'):.1%} | {level(x, 'erlang_c_'):.1%} | "
            f"{x.plan_abandoned.sum() / asked:.1%} | {(x.ab_predicted * x.forecast).sum() / f:.1%}"
            f" | {x.plan_staff_hours.sum():.0f} | {x.oracle_staff_hours.sum():.0f} | "
            f"{x.erlang_c_staff_hours.sum():.0f} |")
    sl, sl_o = pd_.plan_sl.mean(), pd_.oracle_sl.mean()
    ab_gap = float((pd_.plan_ab - pd_.ab_predicted).mean())
    hours = pd_.plan_hours.sum() / pd_.oracle_hours.sum()
    hours_c = pd_.erlang_c_hours.sum() / pd_.plan_hours.sum()

    def within(prefix: str) -> float:
        s = busy[f"{prefix}_answered_within"] / (
            busy[f"{prefix}_answered"] + busy[f"{prefix}_abandoned_after"])
        return float(((s - target).abs() <= 0.10).mean())

    share, share_o = within("plan"), within("oracle")
    lines += ["", "| goal | measured | |", "|---|---|---|",
              f"| SL averaged over the days within ±3 points of {target:.0%} | "
              f"{sl:.1%}, predicted {pd_.sl_predicted.mean():.1%} (days "
              f"{pd_.plan_sl.min():.1%} to {pd_.plan_sl.max():.1%}, sd "
              f"{pd_.plan_sl.std():.1%}) | {verdict(abs(sl - target) <= 0.03)} |",
              f"| abandonment within 1 point of predicted, on average | {pd_.plan_ab.mean():.1%}"
              f" vs {pd_.ab_predicted.mean():.1%} ({ab_gap * 100:+.1f} points) | "
              f"{verdict(abs(ab_gap) <= 0.01)} |",
              f"| staff-hours <= 1.05x the oracle plan's | {pd_.plan_hours.sum():.0f} h vs "
              f"{pd_.oracle_hours.sum():.0f} h = {hours:.3f}x | {verdict(hours <= 1.05)} |",
              f"| SL at most 2 points below the oracle plan's | {sl:.1%} vs {sl_o:.1%} "
              f"({(sl - sl_o) * 100:+.1f} points) | {verdict(sl >= sl_o - 0.02)} |",
              f"| busy intervals within ±10 points of target >= oracle's - 5 points | "
              f"{share:.0%} vs {share_o:.0%} ({len(busy)} intervals) | "
              f"{verdict(share >= share_o - 0.05)} |",
              f"| Erlang C's plan on the same customers | {hours_c:.2f}x the plan's "
              f"staff-hours ({pd_.erlang_c_hours.sum():.0f} h), SL {pd_.erlang_c_sl.mean():.1%}, "
              f"abandoned {pd_.erlang_c_ab.mean():.1%} | shown |"]
    oracle_ok["SL within ±3 points"] = abs(sl_o - target) <= 0.03
    windows = other_windows(days, args.cfg, params)
    gaps = windows["plan_ab_gap"]
    lines += [f"| the plan's own schedules on {len(gaps)} other draws of these days' "
              f"customers (seeds {args.cfg.seed + 1}-{args.cfg.seed + len(gaps)}) | SL mean "
              f"{windows['plan'].mean():.1%}, {windows['plan'].min():.1%} to "
              f"{windows['plan'].max():.1%}, within ±3 points of {target:.0%} in "
              f"{(np.abs(windows['plan'] - target) <= 0.03).mean():.0%}; abandonment "
              f"{gaps.mean() * 100:+.1f} points from predicted, within 1 point in "
              f"{(np.abs(gaps) <= 0.01).mean():.0%} | shown |"]
    others = windows["oracle"]
    lines += [f"| the oracle plan's SL on {len(others)} other draws of these days' customers "
              f"(seeds {args.cfg.seed + 1}-{args.cfg.seed + len(others)}) | mean "
              f"{others.mean():.1%}, {others.min():.1%} to {others.max():.1%}; within ±3 "
              f"points of {target:.0%} in "
              f"{(np.abs(others - target) <= 0.03).mean():.0%} | shown |"]
    goals += [("SL within ±3 points", abs(sl - target) <= 0.03),
              ("abandonment within 1 point", abs(ab_gap) <= 0.01),
              ("staff-hours <= 1.05x oracle", hours <= 1.05),
              ("SL >= oracle - 2 points", sl >= sl_o - 0.02),
              ("busy share >= oracle - 5 points", share >= share_o - 0.05)]
    w_pm, o_pm = wape(pm.actual, pm.forecast), wape(pm.actual, pm.expected)
    lines += [f"| intraday: afternoon WAPE after a 12:00 reforecast below the evening-before "
              f"oracle's | {w_pm:.3f} vs {o_pm:.3f} | {verdict(w_pm < o_pm)} |"]
    goals.append(("intraday below oracle", w_pm < o_pm))
    lines += ["", f"Service level as a share of all who asked (plan, mean of days): "
              f"{pd_.plan_all_sl.mean():.1%}; to the offer (ringing left out) "
              f"{pd_.plan_offer_sl.mean():.1%}.", "",
              f"Goals: {sum(ok for _, ok in goals)} of {len(goals)} pass"
              + ("" if all(ok for _, ok in goals) else "; failing: " + "; ".join(
                  n for n, ok in goals if not ok)) + "."]
    out_of_reach = [n for n, ok in goals if not ok and not oracle_ok.get(n, True)]
    if out_of_reach:
        lines += ["", "Of those, the oracle fails too on these days (its forecast; for the "
                  "interval, the exact predictive distribution's; its plan's service level): "
                  + "; ".join(out_of_reach) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", type=Path, default=DEFAULT_DB,
                    help="the 10 weeks' DuckDB file (built here if absent; the default one, "
                    "benchmarks/out/plan-history/h10-polled.duckdb, also if its build did not "
                    "finish)")
    ap.add_argument("--days", type=int, default=14, help="days planned and replayed")
    ap.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    ap.add_argument("--max-occupancy", type=float, default=PARAMS.max_occupancy,
                    help="the plans' maximum occupancy (default %(default)s)")
    ap.add_argument("--target-per", choices=PER, default=PARAMS.target_per,
                    help="where the target applies, for all three plans (default "
                    "%(default)s)")
    ap.add_argument("--seed", type=int, default=SEED,
                    help="the simulator's seed: the history's and the replayed days' "
                    "(default %(default)s; another seed wants its own --database)")
    ap.add_argument("--unnamed", action="store_true",
                    help="the records name no group for the sessions nobody served (the "
                    "other reading of Desk's docs): the history a copy of --database so "
                    "made, the replayed days recorded so")
    args = ap.parse_args(argv)
    if args.seed != SEED and args.database == DEFAULT_DB:
        ap.error("--seed other than 0 wants its own --database (the default is seed 0's)")
    params = replace(PARAMS, max_occupancy=args.max_occupancy, target_per=args.target_per)
    built_s = None
    if not args.database.exists() or (args.database == DEFAULT_DB
                                      and not built(args.database).exists()):
        t0 = time.monotonic()
        build_history(args.database, args.seed)
        built_s = time.monotonic() - t0
    args.history = unnamed_history(args.database) if args.unnamed else args.database
    start = pd.Timestamp(START, tz="UTC")
    history_days = HISTORY_WEEKS * 7
    summed = history.read(args.history, "duckdb", settings.DEFAULT_DATASET,
                          start.to_pydatetime(), (start + pd.Timedelta(
                              days=history_days)).to_pydatetime(), params.target_s)
    cfg = wk.WeeksConfig(seed=args.seed, start=start.timestamp(), days=history_days + args.days)
    rates = wk.expected_rates(cfg, params.interval_min * 60)
    days = []
    for d in range(history_days, history_days + args.days):
        day, recorded = run_day(summed, cfg, rates, d, params, args.unnamed)
        days.append(day)
        # as a plan reads it (planning/history.py): sessions without a group shared out
        summed = ungrouped.spread(summed + Summary.of(recorded, params.target_s))
        print(f"day {d + 1}: planned and replayed in {day.seconds:.0f} s", file=sys.stderr)
    mstl(summed, days, params)
    args.cfg = cfg
    text = report(days, args, params, built_s)
    print(text)
    if not args.no_write:
        write(text, HEADING + ("" if params.max_occupancy == PARAMS.max_occupancy else
                               f", max occupancy {params.max_occupancy:g}")
              + (", records without the unserved's group" if args.unnamed else ""))
    return 0


def write(section: str, heading: str) -> None:
    """Replace this benchmark's section of RESULTS.md where it is (the findings written by
    hand after it stay after it), or add it at the end."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = rf"\n{re.escape(heading)}\n.*?(?=\n## |\Z)"
    new = f"\n{heading}\n\n{section}\n"
    if re.search(pattern, text, flags=re.S):
        text = re.sub(pattern, lambda _: new, text, count=1, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n" + new
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
