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
# # Agent occupancy: concurrency per agent and per agent group
#
# From `session_timeline`, an agent holds a chat from its answer to its end: at any instant
# we know how many chats each agent had (its **concurrency**), and over any span the share
# of its capacity it used (**occupancy** = chat-seconds held / (capacity x span)). With
# callbacks or records those times are exact; with polls alone they are the best estimates
# between two polls (each figure says which it rests on). The agent group comes from
# session records.
#
# What the data never shows is an agent with no chat: idle time cannot be told from time
# off shift. Only a roster (who was on shift, with what capacity) makes idle time visible:
# pass one as a CSV in `DESK_ROSTER` (columns agent_id, capacity, shift_start, shift_end).
#
# `DESK_FROM`, `DESK_TO` choose the window (ISO dates or date-times; default the latest day
# with data; see the queue notebook), `DESK_DUCKDB` the database (default `demo.duckdb`),
# `DESK_DATASET` its dataset, `DESK_CHATS_PER_AGENT` the capacity: by default each agent
# group's chats per agent, read from the data (the planner's rule: the 99th percentile of the
# chats an agent of the group held just after answering one); set, it is every group's.

# %%
# %matplotlib inline
import os
import sys

# `python notebooks/queue.py` puts this folder first on the import path, where queue.py
# would stand in for the standard library's queue module: drop it (the package is installed).
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("notebooks")]

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.notebook import (
    describe,
    heatmap,
    instants,
    open_desk,
    overview,
    plottable,
    source_note,
    time_axis,
    top_columns,
)
from tencent_desk.simulator import truth

desk = open_desk()
con, DATASET, HAS_TRUTH = desk.con, desk.dataset, desk.has_truth
SET_CHATS = os.environ.get("DESK_CHATS_PER_AGENT", "").strip()
print(describe(desk))
# chats begun the day before may still be held at the window's start
around = tm.sessions(con, desk.since - pd.Timedelta(days=1), desk.until, DATASET)
served = around[around.answered_at.notna() & around.agent_id.notna()]
in_window = served[(served.answered_at < desk.until)
                   & (served.ended_at.isna() | (served.ended_at > desk.since))]
print(f"{in_window.agent_id.nunique()} agents held {len(in_window)} chats in the window; "
      f"their times rest on: {source_note(in_window.handle_exact.astype(float).mean())}")
# each group's capacity (the report's too), and so each agent's: its group's
GROUP_CHATS = tm.chats_per_agent(in_window, override=float(SET_CHATS) if SET_CHATS else None)
AGENT_CHATS = tm.agent_chats_per_agent(in_window, GROUP_CHATS)
print("chats per agent, " + ("as set (DESK_CHATS_PER_AGENT)" if SET_CHATS else
                             "read from the data") + ": "
      + (", ".join(f"{g} {v:g}" for g, v in GROUP_CHATS.items()) or "no chat"))
EXACT_ALL = tm.all_exact(in_window)  # nothing rests on polls: their cross-checks are skipped
if EXACT_ALL:
    print(tm.POLLS_SKIPPED)

# %% [markdown]
# ## The period, for a window longer than five days
#
# A window longer than five days (a week, a month, a quarter) is read from the interval
# tables (`queue_intervals`, `agent_intervals`, `interval_sketches`: 15-minute sums kept by
# every load; see docs/intervals.md), at the cost of a day whatever its length; the
# per-session figures below are then of its latest day with data. A shorter window says so
# in one line.

# %%
overview(desk, "agents")

# %% [markdown]
# ## Chats per agent over time
#
# Each band is one agent's chats, for the ten who held the most; one band sums the other
# agents. The top is the desk's total, the carried load in Erlangs.
# Where some times rest on polls, the dots are the totals the complete polls saw, the
# polls-only view of the same thing.

# %%
at = instants(desk.shown)
chats = tm.agent_concurrency(around, at).pivot(index="at", columns="agent_id",
                                                values="chats")
chats = chats.reindex(at).fillna(0)
per_poll = (pd.DataFrame(columns=["snapshot_at", "agent_id", "chats"]) if EXACT_ALL
            else metrics.agent_concurrency_per_poll(con, DATASET))
fig, ax = plt.subplots()
if chats.shape[1]:
    # dates as numbers once, not once per band (the axis still gets the date units)
    shown = top_columns(chats, 10, "other agents")
    colors = ["lightgrey" if str(name).startswith("other agents") else f"C{i % 10}"
              for i, name in enumerate(shown.columns)]
    ax.xaxis.update_units(shown.index)
    ax.stackplot(mdates.date2num(shown.index), shown.T.to_numpy(), labels=shown.columns,
                 colors=colors, step="post", alpha=0.8)
else:
    ax.text(0.5, 0.5, "no chat in the window", ha="center", transform=ax.transAxes)
if len(per_poll):
    at_polls = per_poll.groupby("snapshot_at").chats.sum()
    ax.plot(at_polls.index, at_polls.to_numpy(), "k.", ms=4, label="desk total at a poll")
if HAS_TRUTH and len(at):
    true_total = truth.truth_agent_concurrency_at(con, at).groupby("snapshot_at").chats.sum()
    ax.plot(true_total.index, true_total.to_numpy(), "r-", lw=0.8, label="truth (total)")
ax.set_ylabel("chats with an agent")
ax.set_title(f"Concurrent chats per agent, {desk.window}")
time_axis(ax, pd.Series([desk.since, desk.until]))
if chats.shape[1] or len(per_poll):
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", ncol=1)
fig.tight_layout()

# %% [markdown]
# ## Per agent group
#
# Chats per group over time (without records every chat is in `(none)`).

# %%
by_group = tm.agent_concurrency(around, at, by="agent_group_name")
groups = by_group.pivot(index="at", columns="agent_group_name", values="chats")
groups = groups.reindex(at).fillna(0)
fig, ax = plt.subplots()
for name in groups.columns:
    ax.step(groups.index, groups[name], where="post", label=name)
if not groups.shape[1]:
    ax.text(0.5, 0.5, "no chat in the window", ha="center", transform=ax.transAxes)
else:
    ax.legend(loc="upper left", fontsize="small")
ax.set_ylabel("chats")
ax.set_title("Concurrent chats per agent group")
time_axis(ax, pd.Series([desk.since, desk.until]))
fig.tight_layout()

# %% [markdown]
# ## Occupancy per agent and hour
#
# Chat-seconds held in each hour over the capacity for the hour. Blank: the agent held no
# chat that hour, idle or off shift (the data cannot tell which). With more than 40 agents,
# the 20 most and the 20 least occupied over the window (the table below has them all).

# %%
HOUR = pd.Timedelta(hours=1)
hourly = tm.occupancy_per_interval(around, desk.since, desk.until, "1h", AGENT_CHATS)
grid = hourly.pivot(index="agent_id", columns="interval_start", values="occupancy")
MOST = 40  # rows one can read (and draw in a blink): the busiest and the idlest
agents = len(grid)
if agents > MOST:
    order = grid.fillna(0).mean(axis=1).sort_values(ascending=False, kind="stable").index
    grid = grid.loc[order[: MOST // 2].append(order[-(MOST // 2):])]
fig, ax = plt.subplots(figsize=(11, 0.35 * len(grid) + 1.5))
if grid.empty:
    ax.text(0.5, 0.5, "no agent held a chat", ha="center", transform=ax.transAxes)
else:
    mesh = heatmap(ax, grid, HOUR, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(mesh, label="occupancy (chats / the group's chats per agent)")
    if agents > MOST:
        ax.axhline(MOST // 2, color="white", lw=4)
ax.set_title("Occupancy per agent and hour (blank: no chat that hour)" + (
    f"\nthe {MOST // 2} most and {MOST // 2} least occupied of {agents} agents"
    if agents > MOST else ""))
fig.tight_layout()

# %% [markdown]
# ## Over the window: per agent and per agent group
#
# Occupancy over the hours each agent (group) held at least one chat: hours with no chat at
# all are left out, since they may be off shift. `agents`: agents with a chat in those hours;
# `chats_per_agent`: the capacity of each of them, their group's.

# %%
def over_window(by: str, hours: pd.DataFrame, chats: pd.Series) -> pd.DataFrame:
    """Occupancy over the hours with a chat (``hours``: occupancy_per_interval by ``by``),
    per agent or group, over its chats per agent (``chats``), with what it rests on."""
    if hours.empty:
        return pd.DataFrame()
    out = tm.occupancy_over_intervals(hours, "1h", chats, by).set_index(by).rename(
        columns={"intervals": "hours"})
    exact = in_window.groupby(in_window[by].fillna("(none)")).handle_exact.agg(
        lambda x: x.astype(float).mean())
    return out.assign(chats_per_agent=chats.reindex(out.index),
                      rests_on=exact.reindex(out.index).map(source_note)).round(3)


per_agent_hours = over_window("agent_id", hourly, AGENT_CHATS)
display(per_agent_hours)
display(over_window("agent_group_name", tm.occupancy_per_interval(
    around, desk.since, desk.until, "1h", GROUP_CHATS, by="agent_group_name"), GROUP_CHATS))

# %% [markdown]
# ## From the polls alone: busy share per hour
#
# Polls see each agent's chats at an instant: the share of polls where an agent had at
# least one chat (**busy share**), averaged per hour. It needs no callbacks or records, and
# checks the timeline where some of its times rest on polls (skipped where all are exact).

# %%
if EXACT_ALL:
    print(tm.POLLS_SKIPPED)
else:
    snapshots = metrics.complete_runs(con, DATASET).snapshot_at
    polled = (per_poll.pivot(index="snapshot_at", columns="agent_id", values="chats")
              .reindex(snapshots).sort_index())
    busy = metrics.agent_occupancy(con, DATASET, "1h")
    # over each agent's group's chats per agent (one per agent: the mean's ratio is exact)
    busy["capacity"] = busy.agent_id.map(AGENT_CHATS).fillna(tm.DEFAULT_CHATS_PER_AGENT)
    busy["occupancy"] = busy.mean_chats / busy.capacity
    whole = busy.groupby("interval_start").agg(
        agents_seen=("agent_id", "nunique"), mean_chats=("mean_chats", "sum"),
        busy_share=("busy_share", "mean"), occupancy=("occupancy", "mean"),
    )
    whole.index = whole.index.strftime("%m-%d %H:%M")
    display(plottable(whole).round(2))

# %% [markdown]
# ## With a roster
#
# A roster turns invisible idle time into zeros. With `DESK_ROSTER` set, it is read from that
# CSV. Without one, this section shows what the roster would change under a stated
# *assumption*: every agent seen was on shift for the whole observed window. Compare busy
# share and occupancy with the tables above: hours where an agent had no chat now count as
# idle. Where every time is exact they come from each chat's own times, else from the polls.

# %%
if os.environ.get("DESK_ROSTER"):
    roster = pd.read_csv(os.environ["DESK_ROSTER"], parse_dates=["shift_start", "shift_end"])
    roster_note = f"roster from {os.environ['DESK_ROSTER']}"
else:
    seen = (sorted(in_window.agent_id.unique()), desk.since, desk.until) if EXACT_ALL else (
        polled.columns, per_poll.snapshot_at.min(),
        per_poll.snapshot_at.max() + pd.Timedelta(seconds=1))
    roster = pd.DataFrame({"agent_id": seen[0], "shift_start": seen[1],
                           "shift_end": seen[2]})
    roster.insert(1, "capacity", roster.agent_id.map(AGENT_CHATS).fillna(
        tm.DEFAULT_CHATS_PER_AGENT))
    roster_note = "ASSUMED roster: every agent seen, on shift for the whole window"
print(roster_note)


def per_agent(frame: pd.DataFrame) -> pd.DataFrame:
    """Busy share and occupancy over the whole window: hourly values weighted by polls."""
    weighted = frame[["busy_share", "occupancy"]].mul(frame.n_polls, axis=0)
    totals = weighted.assign(n_polls=frame.n_polls, agent_id=frame.agent_id).groupby("agent_id")
    summed = totals.sum()
    return summed[["busy_share", "occupancy"]].div(summed.n_polls, axis=0).assign(
        polls=summed.n_polls
    )


if EXACT_ALL:
    display(pd.concat({"with roster": tm.rostered(in_window, roster)[["busy_share", "occupancy"]],
                       "without (hours with a chat)": per_agent_hours.reindex(
                           columns=["occupancy"])}, axis=1).round(2))
else:
    display(pd.concat({"with roster": per_agent(metrics.agent_occupancy(
        con, DATASET, "1h", chats_per_agent=tm.DEFAULT_CHATS_PER_AGENT, roster=roster)),
        "without": per_agent(busy)}, axis=1).round(2))

# %% [markdown]
# ## Estimate against the simulator's truth
#
# The polls sample each agent's concurrency at one instant every interval. The truth can be
# sampled as finely as we like: here every 30 seconds, close to the true time average. Where
# every time is exact, the timeline's chats per agent are checked against the truth's at
# each instant drawn instead.

# %%
if HAS_TRUTH and EXACT_ALL and len(at):
    true_at = truth.truth_agent_concurrency_at(con, at).pivot(
        index="snapshot_at", columns="agent_id", values="chats")
    # the agents with a chat at an instant drawn: the truth names every simulated day's
    true_at = true_at.loc[:, true_at.gt(0).any()]
    agents_either = chats.columns.union(true_at.columns)
    same = (chats.reindex(columns=agents_either, fill_value=0).to_numpy() == true_at.reindex(
        index=at, columns=agents_either).fillna(0).to_numpy()).mean()
    print(f"chats per agent from the timeline equal the truth in {same:.1%} of "
          f"{len(at)} instants x {len(agents_either)} agents")
elif HAS_TRUTH and not EXACT_ALL and len(polled):
    lo, hi = polled.index.min(), polled.index.max()
    fine = pd.date_range(lo, hi, freq="30s")
    true_fine = truth.truth_agent_concurrency_at(con, fine)
    true_chats = truth.truth_agent_concurrency_at(con, polled.index)
    check = pd.DataFrame({
        "timeline: mean chats": chats.loc[lo:hi].mean(),
        "polls: mean chats": polled.mean(),
        "truth at the polls": true_chats.groupby("agent_id").chats.mean(),
        "truth, time average": true_fine.groupby("agent_id").chats.mean(),
    })
    exact = (true_chats.pivot(index="snapshot_at", columns="agent_id", values="chats")
             .reindex_like(polled).eq(polled).to_numpy().mean())
    print(f"chats per agent at the polls equal the truth in {exact:.1%} of cases "
          "(failed calls hide a chat)")
    print(check.round(2).to_string())
else:
    print("no simulator truth in this database: nothing to check against")

# %% [markdown]
# ## What to keep in mind
#
# - Agents exist here only while they have chats: without a roster, idle agents and idle time
#   are invisible, busy share is overstated and staffing looks tighter than it is.
# - Concurrency is sampled once per poll; a chat shorter than the interval is mostly missed,
#   but the *average* concurrency over many polls is unbiased.
# - Capacity is each group's chats per agent as the data show it (a quiet window, where an
#   agent never fills every slot, reads it low), a parameter (`DESK_CHATS_PER_AGENT`) or the
#   roster's; the API does not report it.
