"""A plan against the day it was made for: forecast error, agents planned against agents
needed given what really came, and the service level reached against the target."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tencent_desk.planning.plan import Params, staff
from tencent_desk.planning.summary import Summary


def plan_vs_actual(plan: pd.DataFrame, history: Summary, params: Params) -> pd.DataFrame:
    """Each planned interval with what came (``history``: the days planned and the weeks
    before them): ``arrivals``, ``error`` (forecast - actual), ``inside`` (the actual
    within the 80% interval), ``agents_needed`` (the same model fed the actual arrivals,
    under the same rule: ``params.target_per``), and the service level (answered within
    the target / (answered + abandoned after it)) and abandonment reached."""
    got = plan.merge(history.actuals(params.freq, params.target_s),
                     on=["group", "interval_start"], how="left")
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
        needed[g.index] = staff(history, str(group), came, params, origin,
                                erlang_too=False).agents.to_numpy()
    got["agents_needed"] = needed
    return got


def summary(frame: pd.DataFrame, busy: float = 20.0) -> pd.DataFrame:
    """Per group, over intervals with at least ``busy`` arrivals: WAPE, bias, coverage of
    the 80% interval, agents planned and needed (sums), and the service level those
    intervals reached together (their counts summed, as the target is over the day)."""
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
                     "service_level_actual": float(b.in_time.sum() / b.kept.sum())
                     if b.kept.sum() > 0 else np.nan})
    return pd.DataFrame(rows)
