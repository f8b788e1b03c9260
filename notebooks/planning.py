# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Planning: forecast, staff, and check the plan against the day
#
# What `desk-sessions plan` does, shown: each agent group's sessions asking for a human are
# forecast interval by interval with an 80% prediction interval; the intervals are staffed
# with the fewest agents for which each day meets the service target (the intervals'
# service levels weighted by their forecast arrivals) under a maximum occupancy, by a model
# with abandonment (patience estimated from the data) and chat concurrency (the chats
# agents really hold). Days that have happened are planned again from the data before
# them (a backtest) and compared with what came. See docs/planning.md.
#
# `DESK_DUCKDB` / `DESK_DESTINATION`, `DESK_DATASET`, `DESK_APP`: the data, as in every
# notebook (`DESK_APP`: one app's sessions and polls, as `desk-sessions plan --app`).
# `DESK_FROM`, `DESK_TO`: the days to check plans against (default the latest day with
# data; of a window longer than five days, its latest day); the forecast shown is for the
# day after. `DESK_TARGET` (default `0.8:60`),
# `DESK_INTERVAL` (minutes: 15, 30, 60; default 30).

# %%
# %matplotlib inline
import os
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("notebooks")]

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from tencent_desk.analysis import erlang
from tencent_desk.notebook import describe, open_desk, time_axis
from tencent_desk.planning import concurrency, evaluate, history
from tencent_desk.planning.choices import PlanError, parse_interval, parse_target
from tencent_desk.planning.plan import Params, make_plan, recent, slot_handling, wait_target

desk = open_desk(period=False)  # plans the latest day of a long window; draws no period
print(describe(desk))
share, seconds = parse_target(os.environ.get("DESK_TARGET", "0.8:60"), "DESK_TARGET")
PARAMS = Params(parse_interval(os.environ.get("DESK_INTERVAL", "30"), "DESK_INTERVAL"), share,
                seconds)
STEP = pd.Timedelta(minutes=PARAMS.interval_min)
first = pd.Timestamp(desk.since).normalize()
days = list(pd.date_range(first, pd.Timestamp(desk.until - pd.Timedelta(microseconds=1))
                          .normalize(), freq="D"))
next_day = days[-1] + pd.Timedelta(days=1)
on_file = isinstance(desk.path, Path)
# the weeks before the window, summed where they are stored (a few thousand rows)
summed = history.read(
    desk.path if on_file else None, "duckdb" if on_file else str(desk.path), desk.dataset,
    (first - pd.Timedelta(weeks=PARAMS.weeks, days=1)).to_pydatetime(),
    next_day.to_pydatetime(), PARAMS.target_s, desk.sdkappid)
if len(summed.sdkappids) > 1:  # as the command says without --app
    print(f"the sessions of {len(summed.sdkappids)} apps planned together, a plan for none "
          "of them: set DESK_APP to choose one of several")
print(f"target {PARAMS.target_sl:.0%} within {PARAMS.target_s:.0f} s over each "
      f"{PARAMS.target_per}, "
      f"{PARAMS.interval_min}-minute intervals, max occupancy {PARAMS.max_occupancy:.0%}; "
      f"{summed.sessions} sessions summed since "
      f"{first - pd.Timedelta(weeks=PARAMS.weeks):%Y-%m-%d}")

# %% [markdown]
# ## The forecast for the next day, with its 80% interval
#
# The weekday's level (its mean volume over recent weeks) times its day type's shape; the
# interval covers Poisson noise, the day-to-day variation of the volume seen in the
# history, and the uncertainty of the estimate itself.

# %%
try:
    ahead = make_plan(summed, [next_day], PARAMS)
except PlanError as exc:
    ahead = None
    print(f"no forecast: {exc}")
if ahead is not None:
    fig, ax = plt.subplots()
    for group, g in ahead.groupby("group"):
        mid = g.interval_start + STEP / 2
        line = ax.plot(mid, g.forecast, label=group)[0]
        ax.fill_between(mid, g.forecast_lo.astype(float), g.forecast_hi.astype(float),
                        color=line.get_color(), alpha=0.2)
    ax.set_title(f"Sessions asking for a human per {PARAMS.interval_min} min, "
                 f"{next_day:%Y-%m-%d} (80% interval shaded)")
    time_axis(ax, ahead.interval_start)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()

# %%
if ahead is not None:
    # the groups side by side: one under the other, a day's first rows are one group's
    plan_table = pd.concat({group: g.set_index("interval_start")[
        ["forecast", "forecast_lo", "forecast_hi", "agents", "service_level"]]
        for group, g in ahead.groupby("group")}, axis=1)
    display(plan_table[plan_table.xs("forecast", axis=1, level=1).gt(0).any(axis=1)].round(2))

# %% [markdown]
# ## Plan against actual, for the days in the window
#
# Each day planned from the data before it, then compared with what came: the forecast's
# error, the agents planned against the agents the same model asks for given the arrivals
# that really came, and the service level reached (answered within the target ÷ (answered +
# abandoned after it), the plan's target; the table's is the busy intervals' counts summed).
# A single interval's service level is noisy even under a perfect plan.

# %%
checked, data_end = [], pd.Timestamp(desk.until)  # no actual past the data's end
for day in days:
    try:
        plan = make_plan(summed, [day], PARAMS, erlang_too=False)  # shown against actual only
    except PlanError as exc:
        print(f"{day:%Y-%m-%d}: not planned: {exc}")
        continue
    seen = plan[plan.interval_start + STEP <= data_end]  # the intervals the data saw whole
    if seen.empty:
        print(f"{day:%Y-%m-%d}: no data yet to check the plan against "
              f"(data until {data_end:%Y-%m-%d %H:%M})")
        continue
    if len(seen) < len(plan):
        print(f"{day:%Y-%m-%d}: compared until {seen.interval_start.max() + STEP:%H:%M}, "
              "where the data ends; the intervals after it are not")
    checked.append(evaluate.plan_vs_actual(seen, summed, PARAMS))
if checked:
    against = pd.concat(checked, ignore_index=True)
    display(evaluate.summary(against).round(3))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
    for group, g in against.groupby("group"):
        mid = g.interval_start + STEP / 2
        line = ax1.plot(mid, g.forecast, label=f"{group}: forecast")[0]
        ax1.fill_between(mid, g.forecast_lo.astype(float), g.forecast_hi.astype(float),
                         color=line.get_color(), alpha=0.2)
        ax1.plot(mid, g.arrivals, ".", color=line.get_color(), label=f"{group}: actual")
        ax2.step(g.interval_start, g.agents, where="post", color=line.get_color(),
                 label=f"{group}: planned")
        ax2.step(g.interval_start, g.agents_needed, where="post", color=line.get_color(),
                 ls="--", label=f"{group}: needed given actual")
    ax1.set_title("Forecast against actual arrivals")
    ax2.set_title("Agents planned against needed")
    for ax in (ax1, ax2):
        time_axis(ax, against.interval_start)
        ax.legend(loc="best", fontsize="x-small")
    fig.tight_layout()
else:
    print("no plan in the window to check against what came")

# %% [markdown]
# ## Erlang C, Erlang A and the concurrency model side by side
#
# For the busiest interval planned (or, without a plan, a textbook example: 100 chats in 30
# minutes, 4-minute patience, 3 chats per agent, handling 5 minutes for an agent's only chat
# and a minute longer for each more, 6 on average): the service level each model predicts
# for a number of agents. Erlang C lets nobody leave and so asks for the most; Erlang A lets
# customers abandon; the concurrency model also lets handling slow as an agent holds more
# chats (as measured in the data: the handling times by chats held the plan staffs with).
# Each model's wait ends when an agent is offered the chat, and the offer then rings
# (`ringing_s`, timed by the polls) before it is answered: a chat answered within the target
# waited that much less.

# %%
source = ahead if ahead is not None and ahead.forecast.max() > 0 else None
if source is not None:
    top = source.loc[source.forecast.astype(float).idxmax()]
    rate = top.forecast / (PARAMS.interval_min * 60)
    aht, by_chats = slot_handling(recent(summed, top.group, next_day, PARAMS),
                                  PARAMS)(top.interval_start)
    patience, ringing = float(top.patience_s), float(top.ringing_s)
    title = f"busiest interval planned: {top.group}, {top.interval_start:%Y-%m-%d %H:%M}"
else:
    rate, aht, by_chats, patience = 100 / 1800, 360.0, [300.0, 360.0, 420.0], 240.0
    ringing = 0.0
    title = "textbook example (no plan)"
within = wait_target(PARAMS.target_s, ringing)  # the models' wait ends at the offer
slots = len(by_chats)
load = rate * aht
agents = range(max(1, int(load / slots) - 2), int(load / slots) + 8)
models = {
    "Erlang C (slots as servers)": [erlang.service_level(n * slots, load, aht, within)
                                    for n in agents],
    "Erlang A (slots as servers)": [erlang.erlang_a(n * slots, load, aht, patience,
                                                    within).service_level for n in agents],
    "concurrency model": [concurrency.outcome(n, rate, by_chats, patience,
                                              within).service_level for n in agents],
}
fig, ax = plt.subplots()
for name, levels in models.items():
    ax.plot(list(agents), levels, "o-", label=name)
ax.axhline(PARAMS.target_sl, color="grey", lw=1)
ax.set_xlabel(f"agents ({slots} chats each)")
ax.set_ylabel(f"answered within {PARAMS.target_s:.0f} s")
ax.set_title(title)
ax.legend(loc="lower right", fontsize="small")
fig.tight_layout()
pd.DataFrame({"agents": list(agents), **models}).round(3)

# %% [markdown]
# ## What to keep in mind
#
# - The forecast needs two of every weekday before the day it plans; a day type's shape
#   is pooled over its days (weekdays, Saturdays, Sundays).
# - Patience is exponential, estimated from abandonment with the waits of the answered as
#   censored observations; with few abandonments it is uncertain, and where the data do not
#   separate an agent's offer from the answer, the offer counts as waiting.
# - The concurrency model spreads chats evenly over agents (least-loaded routing) and
#   treats handling as exponential at a rate that depends on the chats an agent holds.
