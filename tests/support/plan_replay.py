"""The glue between a staffing plan and the weeks simulator, for the plan-replay test and
benchmark: a plan's agents as a simulator schedule, the oracle's plan (the same staffing
model fed the simulator's expected rates), and replayed customers as the sessions the
planner reads. Here, not in the package: production never imports the simulator, and the
simulator knows nothing of planning."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tencent_desk.planning import plan as pl
from tencent_desk.planning.summary import COLUMNS, Summary
from tencent_desk.simulator import weeks as wk
from tencent_desk.simulator.schedule import Schedule


def group_ids(cfg: wk.WeeksConfig) -> dict[str, str]:
    """Group name (as the plan names groups) -> AgentGroupId (as the simulator does)."""
    return {g.name: gid for gid, g in zip(cfg.group_ids, cfg.groups, strict=True)}


def schedule_of(plan: pd.DataFrame, column: str, day: pd.Timestamp, cfg: wk.WeeksConfig,
                params: pl.Params) -> Schedule:
    """A plan's agents (``column``: agents, erlang_c_agents, ...) for ``day`` as the
    simulator's staffing schedule; slots per agent are the desk's (the simulator's truth)."""
    at = pd.date_range(day, periods=24 * 60 // params.interval_min, freq=params.freq)
    agents = {gid: plan[plan.group == name].set_index("interval_start")[column]
              .reindex(at).fillna(0).to_numpy(np.int64)
              for name, gid in group_ids(cfg).items()}
    slots = {gid: g.slots_per_agent for gid, g in zip(cfg.group_ids, cfg.groups, strict=True)}
    return Schedule(day.timestamp(), params.interval_min * 60.0, agents, slots)


def oracle_plan(history: Summary, rates: pd.DataFrame, day: pd.Timestamp,
                params: pl.Params) -> pd.DataFrame:
    """The plan's staffing model (:func:`plan.staff`, same history) fed each interval's
    expected rate before the day's draw (``rates``: :func:`weeks.expected_rates` at the
    plan's interval) instead of the forecast."""
    out = []
    for name in rates.agent_group_name.unique():
        r = rates[(rates.agent_group_name == name) & (rates.interval_start >= day)
                  & (rates.interval_start < day + pd.Timedelta(days=1))]
        pred = pd.DataFrame({"forecast": r.expected_offered.to_numpy(), "lo": np.nan,
                             "hi": np.nan}, index=pd.DatetimeIndex(r.interval_start))
        out.append(pl.staff(history, name, pred, params, day))
    return pd.concat(out, ignore_index=True)


def as_sessions(served: pd.DataFrame, cfg: wk.WeeksConfig) -> pd.DataFrame:
    """Served customers (:func:`replay.serve_customers`, with ``chatbot_s``) as the plan
    reads sessions (:data:`summary.COLUMNS`): what the desk would have recorded. Its
    callbacks time the answer, not the offer (simulator/callbacks.py), so the wait runs to
    the answer and the handling from it, as in the history."""
    names = {gid: name for name, gid in group_ids(cfg).items()}
    ok = served.agent.to_numpy() >= 0

    def ts(values: pd.Series) -> pd.Series:
        return pd.to_datetime(values, unit="s", utc=True)
    return pd.DataFrame({
        "began_at": ts(served.queued_at - served.chatbot_s), "queued_at": ts(served.queued_at),
        "assigned_at": ts(served.answered_at.where(ok)),
        "answered_at": ts(served.answered_at.where(ok)), "ended_at": ts(served.ended_at),
        "agent_id": np.where(ok, served.agent_group_id + "-" + served.agent.astype(str), None),
        "agent_group_name": served.agent_group_id.map(names),
        "hold_s": (served.ended_at - served.answered_at).where(ok),
        "abandoned": ~ok})[COLUMNS]
