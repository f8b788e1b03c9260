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
# # The queue, seen through snapshots
#
# The pipeline asks Tencent Cloud Desk's `get_session_state` for the state of every session
# key, once per run. Each **complete** run is a snapshot of the desk: who is with the chatbot,
# queuing, waiting for an agent to accept, or chatting with an agent. Failed runs are ignored.
#
# Snapshots show states, not events. This notebook turns them into queue length, time in
# queue (speed of answer) and abandonment, each with the uncertainty the poll interval leaves:
# a wait first seen at one poll and last seen at another lasted at least the time between them
# and at most the time between the polls just outside them.
#
# Set `DESK_DUCKDB` to the database (default: `demo.duckdb` at the repository root, made by
# `make demo`) and `DESK_DATASET` to its dataset (default `tencent_desk`).

# %%
# %matplotlib inline
import sys

# `python notebooks/queue.py` puts this folder first on the import path, where queue.py
# would stand in for the standard library's queue module: drop it (the package is installed).
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("notebooks")]

import matplotlib.pyplot as plt
import pandas as pd
from tencent_desk.analysis import metrics
from tencent_desk.analysis.notebook import (
    describe,
    open_desk,
    plottable,
    shade_gaps,
    time_axis,
    with_breaks,
)

desk = open_desk()
con, DB, DATASET = desk.con, desk.path, desk.dataset
HAS_TRUTH, POLL_S = desk.has_truth, desk.poll_s
print(describe(desk))

# %% [markdown]
# ## The snapshots
#
# Every number below is only as fine as the gap between complete runs. A run that is not
# complete (failed, interrupted, or cut short because the Desk API could not be reached:
# `outage`) is a gap, listed here with its reason, never an empty queue.

# %%
runs = con.execute(
    f'SELECT status, count(*) AS runs FROM "{DATASET}".runs GROUP BY status ORDER BY status'
).df()
snapshots = metrics.complete_runs(con, DATASET)
seen = metrics.state_islands(con, DATASET).groupby("session_id").state.agg(set)
only_ended = int(seen.map(lambda states: states <= {"ended", "not_in_session"}).sum())
print(runs.to_string(index=False))
longest = pd.to_timedelta(snapshots.gap_s, unit="s").max()  # NaT with a single snapshot
print(f"longest gap between snapshots: {longest.round('s')}")
stopped = metrics.incomplete_runs(con, DATASET)
if len(stopped):
    print("runs that are gaps, with their reason:")
    print(stopped.to_string(index=False, max_colwidth=160))
print(f"{len(seen)} sessions; {only_ended} of them were only ever seen ended: "
      "their whole life fell between two polls")

# %% [markdown]
# ## Queue length at each poll
#
# `queuing`: waiting for the desk to offer the chat; `waiting_for_agent`: offered to an agent
# who has not accepted yet. A poll with nobody waiting counts as zero. A run that did not
# complete (failed, interrupted, ...) is not a poll: the area breaks there, as it does where
# polls are missing for longer than two usual gaps (nights, weekends, outages).

# %%
per_poll = metrics.queue_per_poll(con, DATASET)
shown = with_breaks(per_poll.set_index("snapshot_at")[["queuing", "waiting_for_agent"]],
                    stopped.started_at, POLL_S)

fig, ax = plt.subplots()
ax.stackplot(shown.index, shown.queuing, shown.waiting_for_agent,
             labels=["queuing", "waiting for agent"], step="post", alpha=0.7)
ax.plot(shown.index, shown.queuing + shown.waiting_for_agent, ".", color="C1", ms=4)
for n, t in enumerate(stopped.started_at):
    ax.axvline(t, color="red", lw=0.8, ls=":", label="run not complete" if n == 0 else None)
if HAS_TRUTH:
    true_queue = metrics.truth_queue_at(con, per_poll.snapshot_at)
    ax.plot(true_queue.snapshot_at, true_queue.waiting, "k.", ms=4, label="truth (waiting)")
ax.set_title("Sessions waiting at each complete run (red dotted: runs that did not complete)")
ax.set_ylabel("sessions")
time_axis(ax, shown.index)
ax.legend(loc="upper left", fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## Per 15 minutes: average, peak, longest wait
#
# The average is time-weighted: each snapshot stands for the time until the next complete
# run (at most two usual gaps). The peak is the highest count *at a poll*: the queue may have
# been longer between polls. An interval without a complete run is a gap, not a zero.

# %%
QUARTER = pd.Timedelta(minutes=15)
per_15 = plottable(metrics.queue_per_interval(con, DATASET, "15min"))
width = 0.85 * QUARTER
fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(11, 6))
ax1.bar(per_15.interval_start, per_15.avg_waiting, width=width, align="edge",
        label="time-weighted average")
ax1.plot(per_15.interval_start + width / 2, per_15.peak_waiting, "v", color="C3",
         label="peak at a poll")
ax1.set_ylabel("sessions waiting")
ax1.set_title("Queue per 15 minutes (grey: no complete run, a gap)")
mid = per_15.interval_start + width / 2
upper = per_15.longest_wait_upper_s
ax2.vlines(mid, per_15.longest_wait_lower_s / 60, upper.fillna(upper.max()) / 60, lw=6,
           alpha=0.6, label="longest wait: between these bounds")
unbounded = upper.isna() & (per_15.n_polls > 0)
ax2.plot(mid[unbounded], per_15.longest_wait_lower_s[unbounded] / 60, "^", color="C3",
         label="no upper bound (waiting since before its stretch of polls)")
ax2.set_ylabel("minutes")
for ax in (ax1, ax2):
    shade_gaps(ax, per_15.interval_start[per_15.n_polls == 0], QUARTER)
    ax.legend(loc="best", fontsize="small", framealpha=0.6)
time_axis(ax2, per_15.interval_start + QUARTER / 2)
fig.tight_layout()

# %%
def minutes(lower: float, upper: float) -> str:
    """A bounded duration in minutes: "2.0–7.0", or "≥ 2.0" without an upper bound."""
    if pd.isna(lower):
        return ""
    return f"≥ {lower / 60:.1f}" if pd.isna(upper) else f"{lower / 60:.1f}–{upper / 60:.1f}"


hourly = metrics.queue_per_interval(con, DATASET, "1h").query("n_polls > 0")
hourly.assign(
    hour=hourly.interval_start.dt.strftime("%m-%d %H:%M"),
    longest_wait_min=[minutes(lo, hi) for lo, hi in
                      zip(hourly.longest_wait_lower_s, hourly.longest_wait_upper_s, strict=True)],
)[["hour", "n_polls", "avg_queuing", "avg_waiting", "peak_waiting", "longest_wait_min"]].round(2)

# %% [markdown]
# ## Time in queue and speed of answer
#
# Each wait (queuing and waiting for the agent, merged) is an interval of possible lengths.
# A session seen with an agent that no poll saw waiting still waited, somewhere between 0 and
# the gap since its previous poll: leaving those out would make answers look slow. Speed of
# answer uses each session's first answer; waits that began before the first complete run, or
# before the first after a night or an outage, have no upper bound and are left out.
#
# The true mean, median and 90th percentile lie between the bounds. Waits that ended unseen
# without an answer (short abandons) cannot be counted at all.

# %%
waits = metrics.waits(con, DATASET)
answered = waits[waits.first_answer & waits.upper_s.notna()]
stats = metrics.wait_stats(answered)
unseen = int((answered.n_polls == 0).sum())
print(f"{len(answered)} answered sessions, {unseen} of them never seen waiting")
print("all waits by how they ended:", waits.outcome.value_counts().to_dict())
(stats[["lower_s", "upper_s"]] / 60).round(1).rename(
    columns={"lower_s": "at least (min)", "upper_s": "at most (min)"}
)

# %% [markdown]
# **Service level** (share answered within a target) is a range: surely within when the upper
# bound meets the target, possibly within when the lower bound does. With polls further apart
# than the target it is unknowable: a wait between two polls could be on either side.

# %%
levels = [metrics.service_level(answered, target, POLL_S) for target in (20, 60, 300, 600)]
pd.DataFrame([
    {"target (s)": sl.target_s, "at least": sl.lower, "at most": sl.upper,
     "why unknown": sl.reason or ""}
    for sl in levels
])

# %%
fig, ax = plt.subplots()
for column, label in (("upper_s", "every wait at its upper bound"),
                      ("lower_s", "every wait at its lower bound")):
    values = answered[column].astype(float).sort_values() / 60
    ax.step(values, (pd.RangeIndex(len(values)) + 1) / len(values), where="post", label=label)
if HAS_TRUTH:
    true_waits = metrics.truth_waits(con)
    lo, hi = snapshots.snapshot_at.min(), snapshots.snapshot_at.max()
    true_answered = true_waits[true_waits.first_answer & true_waits.answered_at.between(lo, hi)]
    values = true_answered.wait_s.sort_values() / 60
    ax.step(values, (pd.RangeIndex(len(values)) + 1) / len(values), where="post", color="k",
            label="truth")
ax.axvline(1, color="grey", ls="--", lw=1)
ax.set_xlabel("wait before the first answer (minutes); dashed: the 60 s target")
ax.set_ylabel("share answered within")
ax.set_title("Speed of answer: the true distribution lies between the two bound curves")
ax.legend(loc="lower right")
fig.tight_layout()

# %% [markdown]
# ## Abandonment
#
# A session abandons when it ends (state `ended`, or it vanishes from the polls) while last
# seen queuing, never having been seen with an agent. One last seen *offered* to an agent
# (`waiting_for_agent`) and then gone is counted apart: most likely its chat was shorter than
# the poll interval, but it may have left during the offer. `ongoing` sessions were still
# waiting at the last complete run; `left_queue` ones went back, e.g. to the chatbot.
#
# The rate needs care, because what the polls see depends on how long things last:
# - among sessions *seen waiting* it is too high: a short wait is rarely seen, and short waits
#   are mostly answered ones;
# - against *every answered session* (answered sessions are seen with their agent whether or
#   not their wait was seen) it is too low: an abandon shorter than the interval is never seen.
#
# The truth usually lies between the two.

# %%
abandon = metrics.abandonment(con, DATASET)
outcomes = abandon.outcome.value_counts()
n_abandoned = outcomes.get("abandoned", 0)
rate_all, rate_seen = (
    "n/a" if pd.isna(rate) else f"{rate:.1%}"
    for rate in metrics.abandonment_rates(abandon, waits)
)
print(outcomes.to_string())
print(f"abandonment rate: {rate_all} against every answered session, "
      f"{rate_seen} among sessions seen waiting")
print("how they ended:", abandon.ended_by.replace({"absent": "vanished"}).value_counts().to_dict())

# %% [markdown]
# ## Estimate against the simulator's truth
#
# Only for demo databases: the simulator records every state change, so the numbers above can
# be checked. The truth counts every session, also those no poll saw.

# %%
if HAS_TRUTH:
    queue_check = per_poll[["snapshot_at", "waiting"]].merge(
        true_queue[["snapshot_at", "waiting"]], on="snapshot_at", suffixes=("", "_true")
    )
    off = (queue_check.waiting - queue_check.waiting_true).abs()
    true_stats = metrics.wait_stats(true_answered)
    true_abandon = metrics.truth_abandonment(con)
    true_abandon = true_abandon[true_abandon.started_waiting.between(lo, hi)]
    true_outcomes = true_abandon.outcome.value_counts()
    true_rate = true_outcomes.get("abandoned", 0) / (
        true_outcomes.get("answered", 0) + true_outcomes.get("abandoned", 0)
    )
    print(f"queue length at polls: off by {off.mean():.2f} sessions on average "
          f"(failed calls hide a session), at most {off.max():.0f}")
    check = pd.DataFrame({
        "estimate: at least": stats.lower_s, "estimate: at most": stats.upper_s,
        "truth": true_stats.lower_s,
    }) / 60
    print(f"sessions answered: {len(answered)} estimated, {len(true_answered)} true")
    print(f"abandonment: {rate_all}–{rate_seen} estimated, {true_rate:.1%} true "
          f"({true_outcomes.get('abandoned', 0)} true abandons, {n_abandoned} seen)")
    print(check.round(2).to_string())
else:
    print("no simulator truth in this database: nothing to check against")

# %% [markdown]
# ## Exact times from session events
#
# With `desk-sessions listen` receiving Desk's session event callbacks, every session's start
# (its first event) and the moment an agent took it (its first event naming an agent) are
# known to the millisecond: no poll-interval bounds, and sessions too short for any poll
# are counted too.

# %%
if metrics.has_events(con, DATASET):
    per_hour = metrics.events_per_interval(con, DATASET, interval="1h")
    per_hour["time_to_agent_min"] = (per_hour.time_to_agent_s / 60).round(2)
    print(per_hour[["interval_start", "began", "reached_agent", "time_to_agent_min"]]
          .to_string(index=False))
else:
    print("no session events in this database (desk-sessions listen was not running)")

# %% [markdown]
# ## What to keep in mind
#
# - Every duration is known only to within about one poll interval at each end; shorten the
#   interval to tighten the bounds, and never read a service level for a target shorter than it.
# - Sessions shorter than the interval are mostly unseen: abandonment and arrivals are
#   undercounted, and the share of "unseen" answered waits grows as the interval grows.
# - Peaks are peaks at polls; the true peak between polls can be higher.
# - Intervals without a complete run are gaps, not zeros.
