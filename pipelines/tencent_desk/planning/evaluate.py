"""A plan against the day it was made for: forecast error, agents planned against agents
needed given what really came, and the service level reached against the target."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tencent_desk.planning import forecast as fc
from tencent_desk.planning.plan import Params, staff


def actuals(sessions: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Per group and interval (by when sessions asked for a human): ``arrivals``, and the
    ``service_level`` reached, answered within the target of all who asked (those still
    waiting or unanswered count as misses, as in Erlang A)."""
    # the columns read, not a copy of every one: the planning notebook passes weeks of them
    q = sessions.loc[sessions.queued_at.notna(),
                     ["queued_at", "assigned_at", "abandoned", fc.GROUP]]
    q["group"] = q[fc.GROUP].fillna(fc.NO_GROUP).astype(str)
    q["interval_start"] = pd.to_datetime(q.queued_at, utc=True).dt.floor(params.freq)
    wait = (pd.to_datetime(q.assigned_at, utc=True)
            - pd.to_datetime(q.queued_at, utc=True)).dt.total_seconds()
    q["in_time"] = wait.le(params.target_s).fillna(False)
    out = q.groupby(["group", "interval_start"]).agg(
        arrivals=("in_time", "size"), in_time=("in_time", "sum"),
        abandoned=("abandoned", "sum")).reset_index()
    out["service_level_actual"] = out.in_time / out.arrivals
    out["abandonment_actual"] = out.abandoned / out.arrivals
    return out.drop(columns=["in_time", "abandoned"])


def plan_vs_actual(plan: pd.DataFrame, sessions: pd.DataFrame, history: pd.DataFrame,
                   params: Params) -> pd.DataFrame:
    """Each planned interval with what came: ``arrivals``, ``error`` (forecast - actual),
    ``inside`` (the actual within the 80% interval), ``agents_needed`` (the same model
    fed the actual arrivals, under the same rule: ``params.target_per``), and the
    service level and abandonment reached."""
    got = plan.merge(actuals(sessions, params), on=["group", "interval_start"], how="left")
    got["arrivals"] = got.arrivals.fillna(0.0)
    got["service_level_actual"] = got.service_level_actual.astype(float)
    got["error"] = got.forecast - got.arrivals
    got["inside"] = (got.arrivals >= got.forecast_lo) & (got.arrivals <= got.forecast_hi)
    # the plan's staffing model and rule (per day or per interval) fed what came
    origin = pd.Timestamp(got.interval_start.min()).normalize()
    needed = pd.Series(np.nan, index=got.index)
    for group, g in got.groupby("group"):
        came = pd.DataFrame({"forecast": g.arrivals.to_numpy(), "lo": np.nan, "hi": np.nan},
                            index=pd.DatetimeIndex(g.interval_start))
        needed[g.index] = staff(history, str(group), came, params, origin).agents.to_numpy()
    got["agents_needed"] = needed
    return got


def summary(frame: pd.DataFrame, busy: float = 20.0) -> pd.DataFrame:
    """Per group, over intervals with at least ``busy`` arrivals: WAPE, bias, coverage of
    the 80% interval, agents planned and needed (sums), and mean service level reached."""
    rows = []
    for group, g in frame.groupby("group"):
        b = g[g.arrivals >= busy]
        total = float(b.arrivals.sum())
        rows.append({"group": group, "busy_intervals": len(b),
                     "wape": float(b.error.abs().sum()) / total if total else np.nan,
                     "bias": float(b.error.sum()) / total if total else np.nan,
                     "coverage_80": float(b.inside.mean()) if len(b) else np.nan,
                     "agents_planned": float(b.agents.sum()),
                     "agents_needed": float(b.agents_needed.sum()),
                     "service_level_actual": float(b.service_level_actual.mean())
                     if len(b) else np.nan})
    return pd.DataFrame(rows)
