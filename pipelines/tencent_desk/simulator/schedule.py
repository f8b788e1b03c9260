"""A staffing schedule: agents logged in per agent group and interval, and chat slots per
agent. The simulator's input for weeks of history and for replaying a day under a plan.

Outside the schedule's span the nearest interval's staffing holds (the first before it, the
last after it), so a customer who queues just before the end is still served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SCHEDULE_COLUMNS = ("agent_group_id", "interval_start", "interval_s", "agents",
                    "slots_per_agent")


@dataclass(frozen=True)
class Schedule:
    """``agents[g][k]``: agents of group ``g`` logged in over ``[start + k * interval_s,
    start + (k + 1) * interval_s)``; ``slots_per_agent[g]``: chats one agent holds at most."""

    start: float
    interval_s: float
    agents: Mapping[str, np.ndarray]
    slots_per_agent: Mapping[str, int]

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        lengths = {len(a) for a in self.agents.values()}
        if len(lengths) > 1 or 0 in lengths:
            raise ValueError("every group needs the same number of intervals, at least one")
        for g, a in self.agents.items():
            if np.any(np.asarray(a) < 0):
                raise ValueError(f"group {g}: agents must be >= 0")
            if self.slots_per_agent.get(g, 0) < 1:
                raise ValueError(f"group {g}: slots_per_agent must be >= 1")

    @property
    def groups(self) -> list[str]:
        return list(self.agents)

    @property
    def n_intervals(self) -> int:
        return len(next(iter(self.agents.values())))

    def staff_hours(self, group: str) -> float:
        return float(np.sum(self.agents[group])) * self.interval_s / 3600.0

    def to_frame(self) -> pd.DataFrame:
        """One row per group and interval, columns :data:`SCHEDULE_COLUMNS`."""
        starts = pd.to_datetime(self.start + self.interval_s * np.arange(self.n_intervals),
                                unit="s", utc=True)
        return pd.concat([pd.DataFrame({
            "agent_group_id": g, "interval_start": starts, "interval_s": self.interval_s,
            "agents": np.asarray(a, dtype=np.int64), "slots_per_agent": self.slots_per_agent[g]})
            for g, a in self.agents.items()], ignore_index=True)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Schedule:
        """The inverse of :meth:`to_frame`: every group on the same contiguous intervals."""
        missing = set(SCHEDULE_COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"a schedule needs the columns {', '.join(sorted(missing))}")
        steps = frame["interval_s"].unique()
        if len(steps) != 1:
            raise ValueError("a schedule has one interval length")
        step = float(steps[0])
        t = (pd.to_datetime(frame["interval_start"], utc=True)
             - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        start, end = float(t.min()), float(t.max()) + step
        n = round((end - start) / step)
        agents: dict[str, np.ndarray] = {}
        slots: dict[str, int] = {}
        for g, part in frame.assign(_t=t).groupby("agent_group_id", sort=True):
            k = np.rint((part["_t"].to_numpy() - start) / step).astype(int)
            if len(set(k.tolist())) != n or len(k) != n:
                raise ValueError(f"group {g}: the schedule must cover every interval once")
            row = np.zeros(n, dtype=np.int64)
            row[k] = part["agents"].to_numpy()
            agents[str(g)] = row
            slots[str(g)] = int(part["slots_per_agent"].iloc[0])
        return cls(start, step, agents, slots)

    def scaled(self, factor: float, minimum: int = 0) -> Schedule:
        """Every interval's agents times ``factor``, rounded up (for what-if plans)."""
        return Schedule(self.start, self.interval_s,
                        {g: np.maximum(np.ceil(a * factor - 1e-9), minimum).astype(np.int64)
                         for g, a in self.agents.items()}, dict(self.slots_per_agent))

    def window(self, start: float, end: float) -> Schedule:
        """The intervals overlapping ``[start, end)`` (e.g. one day of a weeks schedule)."""
        k0 = max(0, int(np.floor((start - self.start) / self.interval_s)))
        k1 = min(self.n_intervals, int(np.ceil((end - self.start) / self.interval_s)))
        if k1 <= k0:
            raise ValueError("the window does not overlap the schedule")
        return Schedule(self.start + k0 * self.interval_s, self.interval_s,
                        {g: np.asarray(a[k0:k1]) for g, a in self.agents.items()},
                        dict(self.slots_per_agent))
