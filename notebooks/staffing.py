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
# # Staffing: Erlang C and Erlang A from the timeline
#
# How many agents does each hour need? Erlang C answers from three inputs: arrivals per hour,
# average handling time (AHT) and a service-level target ("80% answered within 60 s"). Erlang A
# adds customers who give up after a while, which chat customers do.
#
# The inputs come from `session_timeline`: arrivals are the sessions that asked for a human,
# AHT the time from answer to end. With callbacks or records both are exact; with polls
# alone sessions shorter than a poll interval are mostly unseen (arrivals come out low) and
# handling times are bounded between polls. The load the polls saw (mean chats in progress)
# needs no timing and is a check on their product.
#
# `DESK_FROM`, `DESK_TO` choose the window (ISO dates or date-times; default the latest day
# with data; see the queue notebook), `DESK_DUCKDB` the database (default `demo.duckdb`),
# `DESK_DATASET` its dataset, `DESK_CHATS_PER_AGENT` the capacity (default 3).

# %%
# %matplotlib inline
import os
import sys

# `python notebooks/queue.py` puts this folder first on the import path, where queue.py
# would stand in for the standard library's queue module: drop it (the package is installed).
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("notebooks")]

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from tencent_desk.analysis import erlang
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.notebook import (
    describe,
    open_desk,
    overview,
    plottable,
    shade_gaps,
    time_axis,
)
from tencent_desk.simulator import truth

desk = open_desk()
con, DATASET, HAS_TRUTH = desk.con, desk.dataset, desk.has_truth
POLLS_ONLY = desk.polls_only
CHATS_PER_AGENT = float(os.environ.get("DESK_CHATS_PER_AGENT", "3"))
TARGET_S, TARGET_SL, SHRINKAGE = 60.0, 0.8, 0.3
print(describe(desk))
print(f"target {TARGET_SL:.0%} within {TARGET_S:.0f} s; shrinkage {SHRINKAGE:.0%}; "
      f"{CHATS_PER_AGENT:g} chats per agent")

# %% [markdown]
# ## The period, for a window longer than five days
#
# A window longer than five days (a week, a month, a quarter) is read from the interval
# tables (`queue_intervals`, `agent_intervals`, `interval_sketches`: 15-minute sums kept by
# every load; see docs/intervals.md), at the cost of a day whatever its length; the
# per-session figures below are then of its latest day with data. A shorter window says so
# in one line.

# %%
overview(desk, "trend", "heatmap")

# %% [markdown]
# ## Erlang C, checked against the textbook
#
# 100 contacts per 30 minutes with a 3-minute AHT is 10 Erlangs. For 80% within 20 s it needs
# 14 agents (P(wait) 0.1741, service level 0.8884; 13 reach only 0.7956), and 20 on the
# schedule once 30% shrinkage (breaks, training, absence) is added.

# %%
load = erlang.offered_load(100, 180, 1800)
pd.DataFrame([
    {"agents": n, "P(wait)": erlang.erlang_c(n, load),
     "service level (20 s)": erlang.service_level(n, load, 180, 20),
     "ASA (s)": erlang.average_speed_of_answer(n, load, 180),
     "occupancy": erlang.occupancy(n, load)}
    for n in range(11, 17)
]).round(4)

# %%
needed = erlang.agents_needed(load, 180, 20, 0.8)
print(f"agents needed: {needed}; scheduled with 30% shrinkage: "
      f"{erlang.agents_needed(load, 180, 20, 0.8, shrinkage=0.3)}")

# %% [markdown]
# ## Demand per hour, from the timeline
#
# Arrivals: sessions that asked for a human (queued), by the hour they did. AHT: the mean
# handling time (answer to end) of the chats answered that hour and now over, with its
# bounds; `exact_share` says how much of it rests on exact times (callbacks, records) rather
# than polls. With polls alone an hour without a complete run is a gap, shaded grey.

# %%
HOUR = pd.Timedelta(hours=1)
sessions = tm.sessions(con, desk.since, desk.until, DATASET)
demand = tm.demand(sessions, "1h", until=desk.until)
demand["offered_erlangs"] = demand.arrivals * demand.aht_s / demand.interval_s
if tm.all_exact(sessions):  # the offered load is exact: what the polls saw adds nothing
    print(tm.POLLS_SKIPPED)
else:
    polls = metrics.load_per_interval(con, DATASET, "1h")
    demand["load_erlangs"] = demand.interval_start.map(
        polls.set_index("interval_start").load_erlangs.astype(float))
hours = demand.interval_start.dt.strftime("%m-%d %H:%M")
shown = plottable(demand)
mid = shown.interval_start + HOUR / 2
upper = shown.aht_hi_s.where(shown.aht_hi_s < float("inf"), shown.aht_s)  # open: no bar

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
ax1.bar(shown.interval_start, shown.arrivals, width=0.9 * HOUR, align="edge",
        label="timeline")
ax1.set_title("Arrivals per hour (asked for a human)")
ax2.errorbar(mid, shown.aht_s / 60,
             yerr=[(shown.aht_s - shown.aht_lo_s).clip(lower=0) / 60,
                   (upper - shown.aht_s).clip(lower=0) / 60],
             fmt="o", capsize=4, label="timeline, with its bounds")
ax2.set_title("Average handling time (minutes)")
if HAS_TRUTH:
    true_demand = truth.truth_demand_per_interval(con, "1h")
    # the hours the data covers whole: the truth of a last, partly seen hour is no check
    true_demand = true_demand[true_demand.interval_start.isin(demand.interval_start)
                              & (true_demand.interval_start + HOUR <= desk.until)]
    mid_true = true_demand.interval_start + HOUR / 2
    ax1.plot(mid_true, true_demand.arrivals, "k_", ms=12, mew=2, label="truth")
    ax2.plot(mid_true, true_demand.aht_s / 60, "k_", ms=12, mew=2, label="truth")
for ax in (ax1, ax2):
    if POLLS_ONLY:
        shade_gaps(ax, polls.interval_start[polls.n_polls == 0], HOUR)
    time_axis(ax, pd.concat([shown.interval_start, shown.interval_start + HOUR])
              if len(shown) else pd.Series([desk.since, desk.until]))
    ax.legend(loc="best", fontsize="small", framealpha=0.6)
fig.tight_layout()

# %%
demand.assign(hour=hours).reindex(columns=[
    "hour", "arrivals", "answered", "aht_s", "aht_lo_s", "aht_hi_s", "exact_share",
    "offered_erlangs", *(["load_erlangs"] if "load_erlangs" in demand else [])]).round(2)

# %% [markdown]
# `offered_erlangs` (arrivals x AHT) and `load_erlangs` (chats the polls saw in progress,
# averaged; needs no timing; left out where every time is exact) should be close. The first
# and last hours of the window may hold chats begun or ended outside it. Arrivals count in
# the hour a session asked for a human, answered chats and their AHT in the hour an agent
# accepted them, in the timeline as in the truth (each event in the interval where it
# happened), so exact times give the truth's AHT.
#
# ## Agents needed per hour
#
# Each chat slot is a server; an agent takes `CHATS_PER_AGENT` chats at once (the measured
# AHT already includes the slowdown of concurrent chats). `agents_seen` is how many agents
# held at least one chat that hour, a lower bound on who was working.

# %%
table = erlang.staffing_table(
    demand, TARGET_S, TARGET_SL, shrinkage=SHRINKAGE, chats_per_agent=CHATS_PER_AGENT
)
seen = tm.occupancy_per_interval(sessions, desk.since, desk.until, "1h", CHATS_PER_AGENT)
table["agents_seen"] = table.interval_start.map(
    seen.groupby("interval_start").agent_id.nunique()).fillna(0).astype(int)
table.assign(hour=hours)[
    ["hour", "arrivals", "aht_s", "offered_load", "slots", "agents", "scheduled", "agents_seen",
     "service_level", "asa_s", "occupancy"]
].round(2)

# %% [markdown]
# ## Per agent group
#
# The same for each agent group (from session records), for the busiest hour of each.

# %%
by_group = tm.demand(sessions, "1h", by="agent_group_name", until=desk.until)
by_group = by_group[by_group.arrivals > 0]
if by_group.empty:
    print("no arrival in the window")
else:
    groups = erlang.staffing_table(by_group, TARGET_S, TARGET_SL, shrinkage=SHRINKAGE,
                                   chats_per_agent=CHATS_PER_AGENT)
    groups[["group", "exact_share"]] = by_group[["group", "exact_share"]]
    sized = groups.dropna(subset=["offered_load"])
    busiest_per_group = sized.loc[sized.groupby("group").offered_load.idxmax()]
    # in a branch a table is no cell's last value: Jupyter shows it through display() only
    display(busiest_per_group.assign(
        hour=busiest_per_group.interval_start.dt.strftime("%m-%d %H:%M"))[
        ["group", "hour", "arrivals", "aht_s", "exact_share", "offered_load", "agents",
         "scheduled", "service_level"]].round(2))

# %% [markdown]
# ## Erlang A: when customers give up
#
# Erlang C assumes everyone waits as long as it takes, so near full load it asks for many
# agents. Erlang A lets each waiting customer leave after an exponential patience (its mean is
# not in this data: below, a few assumed values). It needs fewer agents for the same target,
# but part of the "service level" it reaches comes from customers who left.

# %%
offered = demand.offered_erlangs.where(demand.offered_erlangs > 0)
busiest = demand.loc[offered.idxmax()] if offered.notna().any() else None
if busiest is None:
    print("no hour with both arrivals and a measured AHT: no load to size for")
else:
    busy_load = busiest.offered_erlangs
    slots = range(max(1, int(busy_load) - 3), int(busy_load) + 10)
    fig, ax = plt.subplots()
    ax.plot(slots, [erlang.service_level(n, busy_load, busiest.aht_s, TARGET_S) for n in slots],
            "o-", label="Erlang C (endless patience)")
    for patience in (120, 600, 1800):
        ax.plot(
            slots,
            [erlang.erlang_a(n, busy_load, busiest.aht_s, patience, TARGET_S).service_level
             for n in slots],
            ".--", label=f"Erlang A, mean patience {patience // 60} min",
        )
    ax.axhline(TARGET_SL, color="grey", lw=1)
    ax.set_xlabel("chat slots (agents x chats per agent)")
    ax.set_ylabel(f"answered within {TARGET_S:.0f} s")
    ax.set_title(f"Busiest hour, {busiest.interval_start:%Y-%m-%d %H:%M}: "
                 f"{busy_load:.1f} Erlangs offered")
    ax.legend(loc="lower right")
    fig.tight_layout()

# %%
pd.DataFrame([
    {"mean patience (min)": patience / 60,
     "slots": (n := erlang.agents_needed(busy_load, busiest.aht_s, TARGET_S, TARGET_SL,
                                         patience_s=patience)),
     "P(abandon)": erlang.erlang_a(n, busy_load, busiest.aht_s, patience, TARGET_S).p_abandon}
    for patience in (120, 600, 1800)
] if busiest is not None else []).round(3)

# %% [markdown]
# ## What to keep in mind
#
# - Arrivals and AHT are seen through the poll interval: short sessions are missed, AHT is
#   known to within about one interval per chat. Check `offered_erlangs` against `load_erlangs`.
# - The service-level target here is a planning target; whether the desk met it cannot be
#   measured from polls further apart than the target (see the queue notebook).
# - Erlang models assume steady Poisson arrivals within the hour and agents who are free the
#   moment a chat ends; treating an agent as several independent chat slots is optimistic.
# - Shrinkage is a parameter: the API does not show breaks or absence, nor idle agents.
