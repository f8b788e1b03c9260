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
# # Agent occupancy, seen through snapshots
#
# `get_session_state` names an agent only through a session: `AgentId` is set while a session
# is offered to an agent (`waiting_for_agent`) or chatting with one (`agent`). So at each
# complete run we know, per agent, how many chats it had: its **concurrency**. From that:
#
# - **busy share**: the share of polls where the agent had at least one chat;
# - **occupancy**: chats against a capacity (chats an agent can take at once).
#
# What the API never shows is an agent with no chat. Idle time cannot be told from time off
# shift, and an agent idle all day does not exist in this data. Only a roster (who was on shift,
# with what capacity) makes idle time visible: pass one as a CSV in `DESK_ROSTER` (columns
# agent_id, capacity, shift_start, shift_end).
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
from tencent_desk.analysis import metrics
from tencent_desk.analysis.notebook import describe, heatmap, open_desk, time_axis, with_breaks

desk = open_desk()
con, DB, DATASET = desk.con, desk.path, desk.dataset
HAS_TRUTH, POLL_S = desk.has_truth, desk.poll_s
CHATS_PER_AGENT = float(os.environ.get("DESK_CHATS_PER_AGENT", "3"))
print(describe(desk))
print(f"capacity {CHATS_PER_AGENT:g} chats per agent")

# %% [markdown]
# ## Chats per agent at each poll
#
# Each band is one agent's chats in `agent` state. The top line is the desk's total: the
# number of chats in progress, which is also the carried load in Erlangs. Runs that did not
# complete, nights and outages are gaps.

# %%
per_poll = metrics.agent_concurrency_per_poll(con, DATASET)
snapshots = metrics.complete_runs(con, DATASET).snapshot_at
chats = (per_poll.pivot(index="snapshot_at", columns="agent_id", values="chats")
         .reindex(snapshots).sort_index())
print(f"{chats.shape[1]} agents seen with at least one chat")
shown = with_breaks(chats.assign(total=chats.sum(axis=1)),
                    metrics.incomplete_runs(con, DATASET).started_at, POLL_S)

fig, ax = plt.subplots()
if chats.shape[1]:
    ax.stackplot(shown.index, shown[chats.columns].T.to_numpy(), labels=chats.columns,
                 step="post", alpha=0.8)
ax.step(shown.index, shown.total, "k-", where="post", lw=0.8, label="desk total")
if HAS_TRUTH:
    true_chats = metrics.truth_agent_concurrency_at(con, chats.index)
    true_total = true_chats.groupby("snapshot_at").chats.sum()
    ax.plot(true_total.index, true_total.to_numpy(), "k.", ms=4, label="truth (total)")
ax.set_ylabel("chats with an agent")
ax.set_title("Concurrent chats per agent at each complete run")
time_axis(ax, shown.index)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## Per agent and hour
#
# Without a roster, every poll of an hour counts for an agent seen in that hour, and hours
# where an agent was never seen are missing: a zero may be idle time or time off shift, and a
# fully idle agent is absent altogether. Occupancy = mean chats / capacity.

# %%
hourly = metrics.agent_occupancy(con, DATASET, "1h", chats_per_agent=CHATS_PER_AGENT)
grid = hourly.pivot(index="agent_id", columns="interval_start", values="occupancy")
fig, ax = plt.subplots(figsize=(11, 0.35 * len(grid) + 1.5))
if grid.empty:
    ax.text(0.5, 0.5, "no agent seen with a chat", ha="center", transform=ax.transAxes)
else:
    mesh = heatmap(ax, grid, pd.Timedelta(hours=1), cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(mesh, label=f"occupancy (chats / {CHATS_PER_AGENT:g})")
ax.set_title("Occupancy per agent and hour (blank: agent not seen that hour)")
fig.tight_layout()

# %%
hourly.assign(hour=hourly.interval_start.dt.strftime("%m-%d %H:%M"))[
    ["agent_id", "hour", "n_polls", "mean_chats", "max_chats", "busy_share", "occupancy"]
].round(2)

# %% [markdown]
# ## The desk as a whole
#
# Averaged over agents seen in each hour. `busy share` is an upper bound on how busy the desk
# was: agents who were on shift but never had a chat are not in the denominator.

# %%
desk = hourly.groupby("interval_start").agg(
    agents_seen=("agent_id", "nunique"), mean_chats=("mean_chats", "sum"),
    busy_share=("busy_share", "mean"), occupancy=("occupancy", "mean"),
)
desk.index = desk.index.strftime("%m-%d %H:%M")
desk.round(2)

# %% [markdown]
# ## With a roster
#
# A roster turns invisible idle time into zeros. With `DESK_ROSTER` set, it is read from that
# CSV. Without one, this section shows what the roster would change under a stated
# *assumption*: every agent seen was on shift for the whole observed window. Compare busy
# share and occupancy with the table above: hours where an agent had no chat now count as idle.

# %%
if os.environ.get("DESK_ROSTER"):
    roster = pd.read_csv(os.environ["DESK_ROSTER"], parse_dates=["shift_start", "shift_end"])
    roster_note = f"roster from {os.environ['DESK_ROSTER']}"
else:
    window = per_poll.snapshot_at
    roster = pd.DataFrame({
        "agent_id": chats.columns,
        "capacity": CHATS_PER_AGENT,
        "shift_start": window.min(),
        "shift_end": window.max() + pd.Timedelta(seconds=1),
    })
    roster_note = "ASSUMED roster: every agent seen, on shift for the whole window"
rostered = metrics.agent_occupancy(
    con, DATASET, "1h", chats_per_agent=CHATS_PER_AGENT, roster=roster
)
print(roster_note)


def per_agent(frame: pd.DataFrame) -> pd.DataFrame:
    """Busy share and occupancy over the whole window: hourly values weighted by polls."""
    weighted = frame[["busy_share", "occupancy"]].mul(frame.n_polls, axis=0)
    totals = weighted.assign(n_polls=frame.n_polls, agent_id=frame.agent_id).groupby("agent_id")
    summed = totals.sum()
    return summed[["busy_share", "occupancy"]].div(summed.n_polls, axis=0).assign(
        polls=summed.n_polls
    )


pd.concat({"with roster": per_agent(rostered), "without": per_agent(hourly)}, axis=1).round(2)

# %% [markdown]
# ## Estimate against the simulator's truth
#
# The polls sample each agent's concurrency at one instant every interval. The truth can be
# sampled as finely as we like: here every 30 seconds, close to the true time average.

# %%
if HAS_TRUTH:
    lo, hi = chats.index.min(), chats.index.max()
    fine = pd.date_range(lo, hi, freq="30s")
    true_fine = metrics.truth_agent_concurrency_at(con, fine)
    check = pd.DataFrame({
        "polls: mean chats": chats.mean(),
        "truth at the polls": true_chats.groupby("agent_id").chats.mean(),
        "truth, time average": true_fine.groupby("agent_id").chats.mean(),
    })
    exact = (true_chats.pivot(index="snapshot_at", columns="agent_id", values="chats")
             .reindex_like(chats).eq(chats).to_numpy().mean())
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
# - Capacity is a parameter (`DESK_CHATS_PER_AGENT`) or comes from the roster; the API does
#   not report it.
