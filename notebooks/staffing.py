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
# # Staffing from snapshots: Erlang C and Erlang A
#
# How many agents does each hour need? Erlang C answers from three inputs: arrivals per hour,
# average handling time (AHT) and a service-level target ("80% answered within 60 s"). Erlang A
# adds customers who give up after a while, which chat customers do.
#
# The inputs come from the snapshots: arrivals are sessions first seen waiting or with an
# agent, AHT the length of chats with an agent (bounded by the poll interval, estimated by the
# middle of the bounds). Both are biased the same way: sessions shorter than a poll interval
# are mostly unseen, so arrivals come out low and AHT high. The measured load (mean chats in
# progress) needs no timing and is a check on their product.
#
# Set `DESK_DUCKDB` (default `demo.duckdb` at the repository root), `DESK_DATASET` (default
# `tencent_desk`) and `DESK_CHATS_PER_AGENT` (default 3).

# %%
# %matplotlib inline
import os
import sys

# `python notebooks/queue.py` puts this folder first on the import path, where queue.py
# would stand in for the standard library's queue module: drop it (the package is installed).
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("notebooks")]

import matplotlib.pyplot as plt
import pandas as pd
from tencent_desk.analysis import erlang, metrics
from tencent_desk.analysis.notebook import describe, open_desk, plottable, shade_gaps, time_axis

desk = open_desk()
con, DB, DATASET = desk.con, desk.path, desk.dataset
HAS_TRUTH, POLL_S = desk.has_truth, desk.poll_s
CHATS_PER_AGENT = float(os.environ.get("DESK_CHATS_PER_AGENT", "3"))
TARGET_S, TARGET_SL, SHRINKAGE = 60.0, 0.8, 0.3
print(describe(desk))
print(f"target {TARGET_SL:.0%} within {TARGET_S:.0f} s; shrinkage {SHRINKAGE:.0%}; "
      f"{CHATS_PER_AGENT:g} chats per agent")

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
# ## Demand per hour, measured from the snapshots
#
# Hours without a complete run (nights, weekends, outages) are gaps, shaded grey; an hour
# with polls but no chat bounded on both sides has no AHT.

# %%
HOUR = pd.Timedelta(hours=1)
demand = metrics.demand_per_interval(con, DATASET, "1h")
demand["offered_erlangs"] = demand.arrivals * demand.aht_s / demand.interval_s
polled = demand[demand.n_polls > 0].reset_index(drop=True)  # for the tables
hours = polled.interval_start.dt.strftime("%m-%d %H:%M")
demand = plottable(demand)
mid = demand.interval_start + HOUR / 2

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
ax1.bar(demand.interval_start, demand.arrivals, width=0.9 * HOUR, align="edge",
        label="estimated")
ax1.set_title("Arrivals per hour")
ax2.errorbar(mid, demand.aht_s / 60,
             yerr=[(demand.aht_s - demand.aht_lower_s) / 60,
                   (demand.aht_upper_s - demand.aht_s) / 60],
             fmt="o", capsize=4, label="estimated, with mean bounds")
ax2.set_title("Average handling time (minutes)")
if HAS_TRUTH:
    truth = metrics.truth_demand_per_interval(con, "1h")
    truth = truth[truth.interval_start.isin(polled.interval_start)]
    ax1.plot(truth.interval_start + HOUR / 2, truth.arrivals, "k_", ms=12, mew=2, label="truth")
    ax2.plot(truth.interval_start + HOUR / 2, truth.aht_s / 60, "k_", ms=12, mew=2,
             label="truth")
for ax in (ax1, ax2):
    shade_gaps(ax, demand.interval_start[demand.n_polls == 0], HOUR)
    time_axis(ax)
    ax.legend(loc="best", fontsize="small", framealpha=0.6)
fig.tight_layout()

# %%
polled.assign(hour=hours)[
    ["hour", "n_polls", "arrivals", "aht_s", "aht_lower_s", "aht_upper_s", "offered_erlangs",
     "load_erlangs"]
].round(1)

# %% [markdown]
# `offered_erlangs` (arrivals x AHT) and `load_erlangs` (chats seen in progress, averaged) should
# be close: the undercount of arrivals and the overestimate of AHT largely cancel. The first and
# last hours (of the data, and of each stretch of polling) may be partly observed. Hours
# without a complete run are left out of the tables.
#
# ## Agents needed per hour
#
# Each chat slot is a server; an agent takes `CHATS_PER_AGENT` chats at once (the AHT measured
# from snapshots already includes the slowdown of concurrent chats). `agents_seen` is how many
# agents had at least one chat that hour, a lower bound on who was working.

# %%
table = erlang.staffing_table(
    polled, TARGET_S, TARGET_SL, shrinkage=SHRINKAGE, chats_per_agent=CHATS_PER_AGENT
)
seen = metrics.agent_occupancy(con, DATASET, "1h", chats_per_agent=CHATS_PER_AGENT)
seen_per_hour = seen.groupby("interval_start").agent_id.nunique()
table["agents_seen"] = table.interval_start.map(seen_per_hour).fillna(0).astype(int)
table.assign(hour=hours)[
    ["hour", "arrivals", "aht_s", "offered_load", "slots", "agents", "scheduled", "agents_seen",
     "service_level", "asa_s", "occupancy"]
].round(2)

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
