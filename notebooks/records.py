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
# # Session records: what really happened to each ended session
#
# Polls see a session only at poll instants. Desk's session records
# (`describe_im_cdr_list`, table `session_records`) say, for every ended session, when it
# started and ended, who served it in which agent group, on which channel, how it ended and
# how the customer rated it. This notebook puts the figures records give next to the
# polled estimates and, on a simulated day, the truth.
#
# Times rest on one reading of the docs (`RECORD_TIMES` in
# `pipelines/tencent_desk/job/record_rows.py`: `Timestamp` is the end, `Duration` the whole
# session). Set `DESK_DUCKDB` to the database (default `demo.duckdb`, made by `make demo`);
# `DESK_FROM` and `DESK_TO` choose the window (sessions that started in it, and the polls
# made in it; default the latest day with data; see the queue notebook).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from tencent_desk.analysis import poll_metrics as metrics
from tencent_desk.analysis import record_metrics
from tencent_desk.notebook import describe, open_desk, plottable, time_axis
from tencent_desk.simulator import truth

desk = open_desk()
con, ds = desk.con, desk.dataset
print(describe(desk))
sessions = (record_metrics.recorded_sessions(con, ds) if record_metrics.has_records(con, ds)
            else None)
HAS_RECORDS = sessions is not None and len(sessions) > 0
if HAS_RECORDS:
    print(f"{len(sessions)} recorded sessions, "
          f"{sessions.started_at.min():%Y-%m-%d %H:%M} to "
          f"{sessions.ended_at.max():%Y-%m-%d %H:%M} UTC")
else:  # every cell below waits for records
    print("no session_records in the window: load them with "
          "`desk-sessions records --database ...` or `desk-sessions run ... --records`")

# %% [markdown]
# ## How sessions end
#
# `end_status` is kept raw; `end_kind` groups the known values (an unknown one is `other`).

# %%
if HAS_RECORDS:
    mix = record_metrics.end_status_mix(con, ds)
    display(mix)
    fig, ax = plt.subplots()
    ax.barh(mix.end_status, mix.sessions)
    ax.set_xlabel("sessions")
    ax.set_title("End status")
    plt.show()

# %% [markdown]
# ## Arrivals, abandonment and handling time: records, polls, truth
#
# Arrivals: sessions that asked for a human, by the hour they started. Polls count only the
# sessions they happened to see waiting or with an agent.

# %%
if HAS_RECORDS:
    arrivals = record_metrics.arrivals_per_interval(con, ds).set_index("interval_start")
    polled = metrics.demand_per_interval(con, ds).set_index("interval_start")
    table = pd.DataFrame({"records": arrivals.arrivals, "polls": polled.arrivals})
    if desk.has_truth:
        true_demand = truth.truth_demand_per_interval(con).set_index("interval_start")
        # the window's hours the data saw whole (the truth holds every simulated day): its
        # arrivals here, its handling time below
        true_demand = true_demand[(true_demand.index >= desk.since)
                                  & (true_demand.index + pd.Timedelta(hours=1) <= desk.until)]
        table["truth"] = true_demand.arrivals
    # the hours polled, records against polls; without a poll, the records' hours (and no
    # polls' bars to name)
    table = plottable(table.drop(columns="polls") if polled.empty
                      else table.dropna(subset=["polls"]))
    HOUR = pd.Timedelta(hours=1)
    fig, ax = plt.subplots()
    for i, column in enumerate(table.columns):
        ax.bar(table.index + i * 0.9 * HOUR / len(table.columns), table[column],
               width=0.9 * HOUR / len(table.columns), align="edge", label=column)
    ax.set_title("Arrivals per hour")
    ax.legend()
    time_axis(ax, table.index.append(table.index + HOUR))
    plt.show()

# %%
if HAS_RECORDS:
    handled = record_metrics.handling_times(con, ds)
    by_load = record_metrics.handling_time_from_load(con, ds)
    abandoned = record_metrics.recorded_abandonment(con, ds)

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")  # nothing served yet: no figure

    rows = {
        "handling time, mean (s)": [ratio(by_load.agent_seconds.sum(), by_load.served.sum()),
                                    ratio((polled.aht_s * polled.answered).sum(),
                                          polled.answered[polled.aht_s.notna()].sum())],
        "abandonment rate": [abandoned.rate.iloc[0],
                             (metrics.wait_outcomes(con, ds).outcome == "abandoned").mean()],
    }
    if desk.has_truth:
        t_ab = truth.truth_abandonment(con)
        t_ab = t_ab[t_ab.started_waiting.between(desk.since, desk.until, inclusive="left")]
        rows["handling time, mean (s)"].append(ratio(
            (true_demand.aht_s * true_demand.answered).sum(),
            true_demand.answered[true_demand.aht_s.notna()].sum()))
        rows["abandonment rate"].append(t_ab.outcome.isin(["abandoned", "offered"]).mean())
    sources = ["records", "polls", "truth"][:len(rows["abandonment rate"])]
    display(pd.DataFrame(rows, index=sources).T)

# %% [markdown]
# Handling time is the agent part of a session, not a field of a record. Its mean comes from
# Little's law: the polls' mean number of chats with an agent (unbiased, even for chats
# shorter than a poll) times the time, over the served sessions the records count exactly.
# Per session, the record gives the end exactly and the polls bound the start (after the
# last poll that saw the session before an agent had it, at or before the first that saw it
# with one); sessions never polled keep wide bounds, so these midpoints run low.

# %%
if HAS_RECORDS:
    fig, ax = plt.subplots()
    ax.hist(handled.handling_s / 60, bins=40)
    ax.set_xlabel("handling time (minutes, midpoint of the bounds)")
    ax.set_ylabel("sessions")
    plt.show()

# %% [markdown]
# ## Ratings by agent and by agent group

# %%
if HAS_RECORDS:
    by_agent = record_metrics.ratings(con, ds, "agent_id")
    by_group = record_metrics.ratings(con, ds, "agent_group_name")
    display(by_group)
    # lowest first, at most 30 bars: the agents to look at, with labels one can read
    rated = by_agent[by_agent.rated > 0].sort_values(["mean_rating", "rated"],
                                                     ascending=[True, False], kind="stable")
    shown = rated.head(30)
    fig, ax = plt.subplots()
    ax.bar(shown.agent_id.str.split("@").str[0], shown.mean_rating)
    ax.set_ylabel("mean rating (1-5)")
    ax.set_title("Rating by agent, lowest first" + (
        f" (the {len(shown)} lowest of {len(rated)} rated agents)" if len(rated) > len(shown)
        else ""))
    ax.tick_params(axis="x", rotation=45)
    plt.show()

# %%
if HAS_RECORDS:
    display(record_metrics.recorded_abandonment(con, ds, by="agent_group_name"))
    display(record_metrics.end_status_mix(con, ds, by="agent_group_name"))

