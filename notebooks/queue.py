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
# # The queue: waits, speed of answer and abandonment
#
# Every figure here comes from `session_timeline`: one row per session with the times it
# began, queued, was offered, answered and ended, each from the best source the database
# has. Callbacks (`desk-sessions listen`) and session records make them **exact**; polls
# alone (`get_session_state` at each run) **bound** them between two polls. Each figure
# says which it rests on (`exact_share`: the share of its sessions whose times are exact)
# and carries `lo`/`hi` bounds, equal where exact.
#
# Choose what to read with `DESK_FROM` and `DESK_TO` (ISO dates or date-times, UTC unless an
# offset is given; a `DESK_TO` date means through the end of that day; default: the latest
# day with data) and `DESK_COMPARE` (`auto`: day over day, week over week for a week or
# longer; `day`, `week`, `none`). Only that window of the snapshot is read.
# `DESK_DUCKDB` names the database (default `demo.duckdb`, made by `make demo`),
# `DESK_DATASET` its dataset (default `tencent_desk`).

# %%
# %matplotlib inline
import sys

# `python notebooks/queue.py` puts this folder first on the import path, where queue.py
# would stand in for the standard library's queue module: drop it (the package is installed).
sys.path[:] = [p for p in sys.path if p and not p.rstrip("/").endswith("notebooks")]

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.analysis import timeline_metrics as tm
from tencent_desk.notebook import (
    compared,
    describe,
    instants,
    open_desk,
    overview,
    plottable,
    shade_gaps,
    source_note,
    time_axis,
)
from tencent_desk.simulator import truth

desk = open_desk()
con, DATASET, HAS_TRUTH = desk.con, desk.dataset, desk.has_truth
TARGET_S = 60.0
print(describe(desk))
# the window's sessions; those begun the day before too, for who was still waiting at its start
around = tm.sessions(con, desk.since - pd.Timedelta(days=1), desk.until, DATASET)
sessions = around[around.began_at >= desk.since].reset_index(drop=True)
POLLS_ONLY = desk.polls_only
EXACT_ALL = tm.all_exact(sessions)  # nothing rests on polls: their cross-checks are skipped
stopped = metrics.incomplete_runs(con, DATASET)
GROUPS = sessions.agent_group_name.dropna().nunique()
print(f"{len(sessions)} sessions began in the window; times rest on: "
      f"{source_note(sessions.began_source.isin(tm.EXACT).mean())}"
      + ("; polls only (no callbacks, no records)" if POLLS_ONLY else "")
      + f"; {GROUPS} agent group(s) named")
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
overview(desk, "trend", "heatmap", "groups")

# %% [markdown]
# ## Key figures, against the comparison window
#
# `lo`/`hi`: the bounds (equal when exact; an open upper bound is `inf`). A comparison
# window without any session is a gap (NaN), not a quiet desk.

# %%
key = compared(desk, TARGET_S, sessions)
key.round(3)

# %% [markdown]
# ## Apps side by side
#
# With several Desk apps in one database (see the README, "Several apps in one place") and
# no `DESK_APP` set, the window's figures of each app (`sdkappid`) next to each other.

# %%
if sessions.sdkappid.nunique(dropna=False) > 1:
    display(tm.compare_apps(sessions, TARGET_S).round(3))
else:
    print(f"one app in the window ({sessions.sdkappid.dropna().unique().tolist() or 'none'}); "
          "set DESK_APP to choose one of several")

# %% [markdown]
# ## Arrivals per hour
#
# Sessions that began, and those that asked for a human (queued), per hour of the window.
# The darker part of each bar is the sessions whose start is exact. With polls alone an
# hour without a complete run is shaded: a gap, not a quiet hour.

# %%
HOUR = pd.Timedelta(hours=1)
began = tm.arrivals(sessions, "1h")
queued = tm.demand(sessions, "1h", until=desk.until)
fig, ax = plt.subplots()
if began.empty:
    ax.text(0.5, 0.5, "no session in the window", ha="center", transform=ax.transAxes)
else:
    ax.bar(began.interval_start, began.n, width=0.9 * HOUR, align="edge", color="C0",
           alpha=0.35, label="began")
    ax.bar(began.interval_start, began.n_exact, width=0.9 * HOUR, align="edge", color="C0",
           label="began, exact start")
    ax.plot(queued.interval_start + HOUR / 2, queued.arrivals, "o", color="C3",
            label="asked for a human")
    ax.legend(loc="upper left", fontsize="small")
if POLLS_ONLY:
    per_hour = metrics.load_per_interval(con, DATASET, "1h")
    shade_gaps(ax, per_hour.interval_start[per_hour.n_polls == 0], HOUR)
ax.set_ylabel("sessions")
ax.set_title(f"Arrivals per hour, {desk.window}")
time_axis(ax, pd.concat([began.interval_start, began.interval_start + HOUR]) if len(began)
          else pd.Series([desk.since, desk.until]))
fig.tight_layout()

# %% [markdown]
# ## Queue length over time
#
# Customers waiting for a human (queued, not yet answered nor gone) every few minutes: the
# line from the best times, the band between those surely waiting and those that may have
# been. Where polls ran and some times rest on them, the dots are what each complete poll
# saw: a poll sees only who is waiting at its instant, and misses everyone who came and went
# in between.

# %%
at = instants(desk.shown)
queue = tm.queue_length(around, at)
per_poll = pd.DataFrame() if EXACT_ALL else metrics.waiting_per_poll(con, DATASET)
fig, ax = plt.subplots()
if queue.empty:
    ax.text(0.5, 0.5, "nobody queued in the window", ha="center", transform=ax.transAxes)
else:
    shown = plottable(queue.set_index("at")[["value", "lo", "hi"]])
    ax.fill_between(shown.index, shown.lo, shown.hi, step="post", alpha=0.3,
                    label="between surely and possibly waiting")
    ax.step(shown.index, shown.value, where="post", color="C0", label="timeline")
if len(per_poll):
    ax.plot(per_poll.snapshot_at, per_poll.waiting, ".", color="C1", ms=5,
            label="seen at a poll")
for n, t in enumerate(stopped.started_at):
    ax.axvline(t, color="red", lw=0.8, ls=":", label="run not complete" if n == 0 else None)
if HAS_TRUTH and len(at):
    true_queue = truth.truth_queue_at(con, at)
    ax.plot(true_queue.snapshot_at, true_queue.waiting, "k.", ms=3, label="truth")
ax.set_ylabel("sessions waiting")
ax.set_title("Queue length (red dotted: runs that did not complete)")
time_axis(ax, pd.Series([desk.since, desk.until]))
ax.legend(loc="upper left", fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## Longest wait per 15 minutes
#
# Of the sessions that queued in each quarter hour, the longest wait, answered or given up:
# the bar spans its bounds (a point when exact), a triangle marks a wait with no upper bound.

# %%
QUARTER = pd.Timedelta(minutes=15)
longest = plottable(tm.longest_wait(sessions, "15min"))
fig, ax = plt.subplots()
if longest.empty:
    ax.text(0.5, 0.5, "no wait in the window", ha="center", transform=ax.transAxes)
else:
    mid = longest.interval_start + QUARTER / 2
    bounded = longest.hi < float("inf")
    ax.vlines(mid, longest.lo / 60, longest.hi.where(bounded, longest.lo) / 60, lw=5,
              alpha=0.5, label="between its bounds")
    ax.plot(mid, longest.value / 60, "_", color="C0", ms=8, mew=2, label="best estimate")
    ax.plot(mid[~bounded], longest.lo[~bounded] / 60, "^", color="C3",
            label="no upper bound")
    ax.legend(loc="upper left", fontsize="small")
ax.set_ylabel("minutes")
ax.set_title("Longest wait of the sessions that queued in each 15 minutes")
time_axis(ax, pd.Series([desk.since, desk.until]))
fig.tight_layout()

# %% [markdown]
# ## Speed of answer, service level, abandonment and handling time, per agent group
#
# Speed of answer: queued to answered, over answered sessions. Service level: answered
# within the target ÷ (answered + abandoned after waiting longer than it), the field's
# definition, which the plan targets too (`lo` counts the answers surely within it and the
# abandons that may be after it, `hi` the opposite). Abandonment: of the sessions that
# queued and are over, those that ended unanswered. Handling time: answered to ended. The
# agent group comes from session records; without them every session is `(none)`.

# %%
def per_group(frame: pd.DataFrame) -> pd.DataFrame:
    """A figure overall and per agent group, with what it rests on."""
    both = pd.concat([frame(sessions), frame(sessions, by="agent_group_name")])
    if both.empty:
        return both
    both = both.drop_duplicates(subset=[c for c in both.columns if c != "group"], keep="first")
    return both.assign(rests_on=both.exact_share.map(source_note)).round(3)


for title, figure in (
    ("speed of answer (s)", tm.speed_of_answer),
    (f"service level ({TARGET_S:g} s)",
     lambda df, by=None: tm.measured_service_level(df, TARGET_S, by)),
    ("abandonment", tm.abandonment_rate),
    ("handling time (s)", tm.handling_time),
):
    print(title)
    display(per_group(figure))

# %%
waits = sessions[sessions.wait_s.notna()]
true_waits = None  # the simulator's, for the chart and the check at the end
if HAS_TRUTH:
    true_waits = truth.truth_waits(con)
    true_waits = true_waits[true_waits.first_answer
                            & true_waits.answered_at.between(desk.since, desk.until)]
fig, ax = plt.subplots()
if waits.empty:
    ax.text(0.5, 0.5, "no answered session in the window", ha="center",
            transform=ax.transAxes)
else:
    for column, label in (("wait_hi_s", "every wait at its upper bound"),
                          ("wait_s", "best times"), ("wait_lo_s", "every wait at its lower bound")):
        values = waits[column].astype(float).sort_values() / 60
        ax.step(values, (pd.RangeIndex(len(values)) + 1) / len(values), where="post",
                label=label)
    if true_waits is not None:
        values = true_waits.wait_s.sort_values() / 60
        ax.step(values, (pd.RangeIndex(len(values)) + 1) / len(values), where="post",
                color="k", ls=":", label="truth")
    ax.axvline(TARGET_S / 60, color="grey", ls="--", lw=1)
    ax.legend(loc="lower right", fontsize="small")
ax.set_xlabel(f"wait before the answer (minutes); dashed: the {TARGET_S:g} s target")
ax.set_ylabel("share answered within")
ax.set_title("Speed of answer: the true distribution lies between the bound curves")
fig.tight_layout()

# %% [markdown]
# ## The snapshots behind the polls
#
# Polls bound what callbacks and records do not give. A run that is not complete (failed,
# interrupted, or cut short because the Desk API could not be reached: `outage`) is a gap,
# listed here with its reason, never an empty queue.

# %%
runs = con.execute(
    f'SELECT status, count(*) AS runs FROM "{DATASET}".runs GROUP BY status ORDER BY status'
).df()
snapshots = metrics.complete_runs(con, DATASET)
print(runs.to_string(index=False) if len(runs) else "no run in the window")
if len(snapshots) > 1:
    longest_gap = pd.to_timedelta(snapshots.gap_s, unit="s").max()
    print(f"longest gap between snapshots: {longest_gap.round('s')}")
else:  # no gap to measure
    print(f"{'one snapshot' if len(snapshots) else 'no snapshot'} in the window")
if len(stopped):
    print("runs that are gaps, with their reason:")
    print(stopped.to_string(index=False, max_colwidth=160))

# %% [markdown]
# ## Against the simulator's truth
#
# Only for demo databases: the simulator records every state change, so the timeline's
# figures can be checked.

# %%
if HAS_TRUTH:
    true_abandon = truth.truth_abandonment(con)
    true_abandon = true_abandon[true_abandon.started_waiting.between(desk.since, desk.until)]
    true_out = true_abandon.outcome.value_counts()
    true_rate = true_out.get("abandoned", 0) / max(
        true_out.get("answered", 0) + true_out.get("abandoned", 0), 1)
    figures = ["speed of answer, mean (s)", "abandonment"]  # NaN where nothing to rest on
    check = pd.DataFrame({"timeline": key.value.reindex(figures).to_numpy(),
                          "truth": [true_waits.wait_s.mean(), true_rate]}, index=figures)
    display(check.round(3))
else:
    print("no simulator truth in this database: nothing to check against")

# %% [markdown]
# ## What to keep in mind
#
# - Times from callbacks and records are exact; from polls they are only bounded, to about
#   one poll interval at each end: shorten the interval to tighten them, and never read a
#   polls-only service level for a target shorter than it.
# - With polls alone, sessions shorter than the interval are mostly unseen: arrivals and
#   abandonment are undercounted.
# - Intervals without a complete run are gaps, not zeros.
