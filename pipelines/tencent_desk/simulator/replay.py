"""Replay: the same customers (arrivals, patience, offer and work times) run again under
another staffing schedule, so two plans are compared on exactly the same day. Pure and
deterministic: no randomness is drawn here.

Per interval, the customers are counted in the interval they queued in (offered, answered,
abandoned, waits: what a plan for that interval had to absorb); staffing and agent busy time
by the clock.

Service level: answered within T / (answered + abandoned after T), the reference's
definition; the wait is from queuing to answered (the agent accepting: offer time included).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tencent_desk.core.spans import union
from tencent_desk.simulator.schedule import Schedule
from tencent_desk.simulator.service import serve_group

# What a day's customers are: one row per session that asked for a human.
CUSTOMER_COLUMNS = ("agent_group_id", "queued_at", "patience_s", "offer_s", "work_s")
DEFAULT_THRESHOLD_S = 60.0

OUTCOME_COLUMNS = (
    "agent_group_id", "interval_start", "interval_s", "offered", "answered",
    "answered_within", "abandoned", "abandoned_after", "service_level", "abandon_rate",
    "wait_answered_s", "asa_s", "max_wait_s", "agents", "staff_hours", "busy_s", "chat_s",
    "occupancy", "concurrency",
)


def serve_customers(customers: pd.DataFrame, schedule: Schedule,
                    slowdown: dict[str, float] | None = None) -> pd.DataFrame:
    """``customers`` with what happened to each under ``schedule``: started (slot taken,
    Unix s; NaN if left), answered_at, ended_at, agent (index in its group, -1: none),
    handle_s, wait_s (queued to answered, or to leaving), outcome (answered / abandoned)."""
    missing = set(CUSTOMER_COLUMNS) - set(customers.columns)
    if missing:
        raise ValueError(f"customers need the columns {', '.join(sorted(missing))}")
    parts = []
    for g, part in customers.groupby("agent_group_id", sort=True):
        g = str(g)
        if g not in schedule.agents:
            raise ValueError(f"the schedule has no agent group {g}")
        part = part.sort_values("queued_at", kind="stable")
        q = part["queued_at"].to_numpy(float)
        served = serve_group(q, part["patience_s"].to_numpy(float),
                             part["offer_s"].to_numpy(float), part["work_s"].to_numpy(float),
                             np.asarray(schedule.agents[g]), schedule.start, schedule.interval_s,
                             schedule.slots_per_agent[g], (slowdown or {}).get(g, 0.0))
        ok = served.agent >= 0
        answered = np.where(ok, served.start + part["offer_s"].to_numpy(float), np.nan)
        left = q + part["patience_s"].to_numpy(float)
        parts.append(part.assign(
            started=served.start, answered_at=answered,
            ended_at=np.where(ok, answered + served.handle_s, left), agent=served.agent,
            handle_s=served.handle_s, wait_s=np.where(ok, answered, left) - q,
            outcome=np.where(ok, "answered", "abandoned")))
    if not parts:
        return customers.assign(started=[], answered_at=[], ended_at=[], agent=[],
                                handle_s=[], wait_s=[], outcome=[])
    return pd.concat(parts, ignore_index=True)


def replay(customers: pd.DataFrame, schedule: Schedule, *,
           threshold_s: float = DEFAULT_THRESHOLD_S, interval_s: float | None = None,
           slowdown: dict[str, float] | None = None) -> pd.DataFrame:
    """Per group and interval (``interval_s``, default the schedule's), what ``customers``
    get under ``schedule``: columns :data:`OUTCOME_COLUMNS`, over the schedule's span.

    ``slowdown`` per group: the concurrency slowdown of the group's agents (the weeks model's
    ``GroupProfile.slowdown_per_chat``; :func:`~tencent_desk.simulator.weeks.slowdowns`)."""
    step = float(interval_s or schedule.interval_s)
    served = serve_customers(customers, schedule, slowdown)
    span = schedule.n_intervals * schedule.interval_s
    edges = schedule.start + step * np.arange(int(np.ceil(span / step)) + 1)
    frames = [_per_interval(served[served["agent_group_id"].astype(str) == g], schedule, g,
                            edges, threshold_s) for g in schedule.groups]
    return pd.concat(frames, ignore_index=True)[list(OUTCOME_COLUMNS)]


def _per_interval(served: pd.DataFrame, schedule: Schedule, group: str, edges: np.ndarray,
                  threshold_s: float) -> pd.DataFrame:
    step = edges[1] - edges[0]
    n = len(edges) - 1
    k = np.floor((served["queued_at"].to_numpy(float) - edges[0]) / step).astype(int)
    keep = (k >= 0) & (k < n)
    s, k = served[keep], k[keep]
    ans = (s["outcome"] == "answered").to_numpy()
    wait = s["wait_s"].to_numpy(float)

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(k[mask], weights=None if weights is None else weights[mask],
                           minlength=n)[:n]

    offered = count(np.ones(len(s), bool))
    answered = count(ans)
    within = count(ans & (wait <= threshold_s))
    abandoned = count(~ans)
    after = count(~ans & (wait > threshold_s))
    wait_sum = count(ans, wait)
    max_wait = np.zeros(n)
    np.maximum.at(max_wait, k, np.nan_to_num(wait))
    # Staffing by the clock: the schedule's agents over each output interval.
    sched_t = schedule.start + schedule.interval_s * np.arange(schedule.n_intervals + 1)
    agent_s = _spread(sched_t[:-1], sched_t[1:], edges,
                      np.asarray(schedule.agents[group], dtype=float))
    chats = served[served["agent"] >= 0]
    t0, t1 = chats["started"].to_numpy(float), chats["ended_at"].to_numpy(float)
    busy = np.zeros(n)
    for _, idx in chats.groupby("agent").indices.items():
        a0, a1 = union(t0[idx], t1[idx])
        busy += _spread(a0, a1, edges)
    chat_s = _spread(t0, t1, edges)
    denom = answered + after
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "agent_group_id": group,
            "interval_start": pd.to_datetime(edges[:-1], unit="s", utc=True),
            "interval_s": step, "offered": offered, "answered": answered,
            "answered_within": within, "abandoned": abandoned, "abandoned_after": after,
            "service_level": np.where(denom > 0, within / denom, np.nan),
            "abandon_rate": np.where(offered > 0, abandoned / offered, np.nan),
            "wait_answered_s": wait_sum, "asa_s": np.where(answered > 0, wait_sum / answered,
                                                           np.nan),
            "max_wait_s": max_wait, "agents": agent_s / step, "staff_hours": agent_s / 3600.0,
            "busy_s": busy, "chat_s": chat_s,
            "occupancy": np.where(agent_s > 0, busy / agent_s, np.nan),
            "concurrency": np.where(busy > 0, chat_s / busy, np.nan)})


def _spread(start: np.ndarray, end: np.ndarray, edges: np.ndarray,
            weight: np.ndarray | None = None) -> np.ndarray:
    """Per bin of ``edges``, the sum of each span's overlap with it (times ``weight``)."""
    w = np.ones(len(start)) if weight is None else weight
    if not len(start):
        return np.zeros(len(edges) - 1)
    # Time covered before x: sum over spans of clip(x, s, e) - s = (sum of e < x) +
    # x * (#s < x - #e < x) - (sum of s < x), from sorted starts and ends; relative to the
    # first edge so the sums keep their precision.
    x, s, e = edges - edges[0], start - edges[0], end - edges[0]
    so, eo = np.argsort(s, kind="stable"), np.argsort(e, kind="stable")
    s_sum = np.concatenate(([0.0], np.cumsum(w[so] * s[so])))
    s_n = np.concatenate(([0.0], np.cumsum(w[so])))
    e_sum = np.concatenate(([0.0], np.cumsum(w[eo] * e[eo])))
    e_n = np.concatenate(([0.0], np.cumsum(w[eo])))
    i, j = np.searchsorted(s[so], x), np.searchsorted(e[eo], x)
    return np.diff(e_sum[j] + x * (s_n[i] - e_n[j]) - s_sum[i])
