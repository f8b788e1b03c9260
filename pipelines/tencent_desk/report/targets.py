"""The targets a report holds the figures to, from dlt config ``[sources.tencent_desk.report]``
(env SOURCES__TENCENT_DESK__REPORT__<KEY>); each has a default, and ``none`` drops it."""

from __future__ import annotations

from dataclasses import dataclass, fields

from tencent_desk.core.apps import setting
from tencent_desk.core.errors import JobError
from tencent_desk.models.intervals import WAIT_EDGES_S

SECTION = "sources.tencent_desk.report"


@dataclass(frozen=True)
class Targets:
    """Shares are fractions (0.8 = 80 %), times seconds. ``None``: no target."""

    service_level_s: float = 60.0          # the service level counts answers within this
    service_level: float | None = 0.80     # at least
    speed_of_answer_s: float | None = 30.0  # mean, at most
    abandonment: float | None = 0.05       # at most
    handling_time_s: float | None = 600.0  # mean, at most
    arrivals: float | None = None          # per period: a forecast, no default
    occupancy: float | None = 0.85         # at most (over the hours with a chat)
    # an agent's capacity; None: each group's, read from the data (timeline_metrics.
    # chats_per_agent, the planner's rule); a number: that for every group
    chats_per_agent: float | None = None


def from_config() -> Targets:
    """The defaults, overridden by what config sets."""
    values: dict[str, float | None] = {}
    for f in fields(Targets):
        raw = setting(f"report.{f.name}")
        if raw is None:
            continue
        if str(raw).strip().lower() in ("none", "") and f.name != "service_level_s":
            values[f.name] = None
            continue
        try:
            values[f.name] = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise JobError(f"[{SECTION}] {f.name} = {str(raw)[:40]!r} is not a number") from None
    level = values.get("service_level_s", Targets.service_level_s)
    if level not in WAIT_EDGES_S:  # the interval tables count waits within these only
        raise JobError(f"[{SECTION}] service_level_s = {level:g}: the interval tables count "
                       f"answers within {', '.join(map(str, WAIT_EDGES_S))} s; give one of "
                       "those")
    per_agent = values.get("chats_per_agent")
    if per_agent is not None and not per_agent > 0:  # a capacity of 0 divides by zero
        raise JobError(f"[{SECTION}] chats_per_agent = {per_agent:g}: give a number above 0, "
                       "or none to read each group's from the data")
    return Targets(**values)  # type: ignore[arg-type]
