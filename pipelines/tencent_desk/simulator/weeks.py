"""Weeks of a desk: several agent groups, weekly seasonality, day-to-day variation, served
under a staffing schedule. Pure and seeded; what it makes is the truth the planner is judged
against.

- **Expected rate.** Each group's sessions that ask for a human arrive as a Poisson process
  whose rate is the group's weekday volume x its factor for the day of the week x an intraday
  profile (weekdays and weekends have their own), constant over each minute.
  :func:`expected_rates` gives it per interval: the truth before the day's draw.
- **The day's draw.** Each (day, group) multiplies that rate by a gamma draw of mean 1 and CV
  ``day_cv`` (about 10%, as contact centres show), so a day is busier or quieter as a whole.
- **Customers.** Per session asking for a human: when it queued, its patience (exponential,
  the group's mean), its offer (ringing) time and its work (lognormal handling time, the
  group's mean and shape, before the concurrency slowdown). Sessions that end with the chatbot
  come on top (``bot_only_share`` of all). Every (day, group) has its own random streams, so
  a day's customers do not depend on how many weeks are simulated.
- **Service**: :mod:`.service` under a :class:`~.schedule.Schedule`, continuously over the
  whole span (chats carry over midnight). :func:`population` makes the sessions the simulator
  serves (states, records, callbacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tencent_desk.simulator.model import (
    DAY_START,
    HOURLY_PROFILE,
    Population,
    PopulationConfig,
    SessionArrays,
)
from tencent_desk.simulator.replay import serve_customers
from tencent_desk.simulator.schedule import Schedule

DAY_S = 86_400.0
INTERVAL_S = 900  # the expected rates' and the default schedule's interval
# Weekends: a later, flatter day.
WEEKEND_PROFILE = (
    0.10, 0.06, 0.04, 0.03, 0.03, 0.04, 0.06, 0.12, 0.30, 0.55, 0.75, 0.85,
    0.85, 0.85, 0.85, 0.80, 0.75, 0.65, 0.55, 0.50, 0.45, 0.35, 0.25, 0.15,
)
_MINUTE = 60.0


@dataclass(frozen=True)
class GroupProfile:
    """One agent group: its volume, weekly shape, handling time, patience and chat slots."""

    name: str
    weekday_offered: float  # sessions asking for a human on a day of factor 1, before the draw
    weekly: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 0.4, 0.3)  # Monday .. Sunday
    handling_mean_s: float = 360.0
    handling_sigma: float = 0.7  # lognormal shape
    patience_mean_s: float = 240.0  # exponential
    slots_per_agent: int = 3
    slowdown_per_chat: float = 0.1  # handling x (1 + this x (chats held - 1))
    offer_min_s: float = 3.0
    offer_max_s: float = 15.0

    def __post_init__(self) -> None:
        if len(self.weekly) != 7 or min(self.weekly) < 0:
            raise ValueError(f"{self.name}: weekly needs 7 factors >= 0, Monday first")
        if self.weekday_offered < 0 or self.slots_per_agent < 1 or self.slowdown_per_chat < 0:
            raise ValueError(f"{self.name}: volume >= 0, slots >= 1, slowdown >= 0")
        if min(self.handling_mean_s, self.patience_mean_s) <= 0:
            raise ValueError(f"{self.name}: handling and patience means must be > 0")
        if not 0 <= self.offer_min_s <= self.offer_max_s:
            raise ValueError(f"{self.name}: need 0 <= offer_min_s <= offer_max_s")


DEFAULT_GROUPS = (
    GroupProfile("Sales", 900.0, (1.05, 1.0, 0.95, 0.95, 0.9, 0.45, 0.3), 300.0, 0.6, 150.0),
    GroupProfile("Support", 1500.0, (1.1, 1.0, 1.0, 0.95, 0.9, 0.35, 0.25), 420.0, 0.8, 300.0),
    GroupProfile("Billing", 450.0, (1.0, 0.95, 0.95, 0.95, 1.1, 0.2, 0.1), 360.0, 0.7, 240.0,
                 slots_per_agent=2),
)


@dataclass(frozen=True)
class WeeksConfig:
    seed: int = 0
    start: float = DAY_START  # midnight UTC of the first day (2026-01-05, a Monday)
    days: int = 70
    groups: tuple[GroupProfile, ...] = DEFAULT_GROUPS
    day_cv: float = 0.10  # of the gamma multiplier of each (day, group)
    bot_only_share: float = 0.25  # of all sessions: end with the chatbot, never queue
    chatbot_mean_s: float = 60.0
    population: PopulationConfig = field(default_factory=PopulationConfig)  # records' shares

    def __post_init__(self) -> None:
        if self.days < 1 or not self.groups:
            raise ValueError("need at least one day and one agent group")
        if self.start % DAY_S:
            raise ValueError("start must be a midnight UTC")
        if not 0 <= self.day_cv < 1 or not 0 <= self.bot_only_share < 1:
            raise ValueError("day_cv and bot_only_share must be in [0, 1)")
        if len({g.name for g in self.groups}) != len(self.groups):
            raise ValueError("agent group names must differ")

    @property
    def group_ids(self) -> list[str]:
        """The groups' AgentGroupId values, as the records carry them."""
        return [str(3000 + g) for g in range(len(self.groups))]

    def day_start(self, day: int) -> float:
        return self.start + day * DAY_S


def _profile_per_minute(weekend: bool) -> np.ndarray:
    """The intraday shape at each minute's middle, scaled to a mean of 1 over the day."""
    hours = HOURLY_PROFILE if not weekend else WEEKEND_PROFILE
    xp = np.arange(-0.5, 25.0)
    fp = np.array((hours[-1], *hours, hours[0]))
    prof = np.interp((np.arange(1440) + 0.5) / 60.0, xp, fp)
    return prof / prof.mean()


def minute_rates(cfg: WeeksConfig, day: int, group: int) -> np.ndarray:
    """Expected sessions asking for a human in each minute of ``day``, before the day's draw."""
    weekday = int((cfg.day_start(day) // DAY_S + 3) % 7)  # 1970-01-01 was a Thursday
    g = cfg.groups[group]
    return g.weekday_offered * g.weekly[weekday] / 1440.0 * _profile_per_minute(weekday >= 5)


def day_multiplier(cfg: WeeksConfig, day: int, group: int) -> float:
    """The (day, group)'s gamma draw: mean 1, CV ``day_cv``."""
    if cfg.day_cv == 0:
        return 1.0
    shape = 1.0 / cfg.day_cv**2
    return float(np.random.default_rng([cfg.seed, day, group, 1]).gamma(shape, 1.0 / shape))


def expected_rates(cfg: WeeksConfig, interval_s: int = INTERVAL_S) -> pd.DataFrame:
    """The truth before each day's draw, per group and interval: ``expected_offered`` (sessions
    asking for a human), with the day's ``day_multiplier`` and the rate it made
    (``drawn_offered``, what the day's Poisson arrivals were drawn around)."""
    if 86400 % interval_s or interval_s % 60:
        raise ValueError("interval_s must be whole minutes dividing a day")
    per = interval_s // 60
    rows = []
    for day in range(cfg.days):
        starts = cfg.day_start(day) + interval_s * np.arange(86400 // interval_s)
        for gi, (gid, g) in enumerate(zip(cfg.group_ids, cfg.groups, strict=True)):
            expected = minute_rates(cfg, day, gi).reshape(-1, per).sum(axis=1)
            m = day_multiplier(cfg, day, gi)
            rows.append(pd.DataFrame({
                "agent_group_id": gid, "agent_group_name": g.name,
                "interval_start": pd.to_datetime(starts, unit="s", utc=True),
                "interval_s": interval_s, "expected_offered": expected,
                "day_multiplier": m, "drawn_offered": expected * m}))
    return pd.concat(rows, ignore_index=True)


def day_customers(cfg: WeeksConfig, day: int) -> pd.DataFrame:
    """The customers of ``day`` who ask for a human: columns
    :data:`~.replay.CUSTOMER_COLUMNS` plus day and chatbot_s, by group then queued_at."""
    frames = []
    for gi, (gid, g) in enumerate(zip(cfg.group_ids, cfg.groups, strict=True)):
        rng = np.random.default_rng([cfg.seed, day, gi, 2])
        queued = _poisson_times(rng, minute_rates(cfg, day, gi) * day_multiplier(cfg, day, gi),
                                cfg.day_start(day))
        drawn = _customer_draws(rng, g, gid, queued)
        frames.append(drawn.assign(chatbot_s=rng.exponential(cfg.chatbot_mean_s, len(queued)),
                                   day=day))
    return pd.concat(frames, ignore_index=True)


def steady_customers(group: GroupProfile, per_hour: float, hours: float, *, seed: int = 0,
                     group_id: str = "3000", start: float = DAY_START) -> pd.DataFrame:
    """Customers of one group arriving at a constant rate (Poisson, ``per_hour``) for
    ``hours``, with the group's patience, offer and work draws: to check a staffing model
    (Erlang A, the concurrency model) against simulation with :func:`~.replay.replay`."""
    rng = np.random.default_rng([seed, 5])
    minutes = round(hours * 60)
    return _customer_draws(rng, group, group_id,
                           _poisson_times(rng, np.full(minutes, per_hour / 60.0), start))


def _customer_draws(rng: np.random.Generator, g: GroupProfile, group_id: str,
                    queued: np.ndarray) -> pd.DataFrame:
    """Each customer's patience, offer and work, drawn in that order."""
    n = len(queued)
    mu = math.log(g.handling_mean_s) - g.handling_sigma**2 / 2
    return pd.DataFrame({
        "agent_group_id": group_id, "queued_at": queued,
        "patience_s": rng.exponential(g.patience_mean_s, n),
        "offer_s": rng.uniform(g.offer_min_s, g.offer_max_s, n),
        "work_s": rng.lognormal(mu, g.handling_sigma, n)})


def all_customers(cfg: WeeksConfig) -> pd.DataFrame:
    return pd.concat([day_customers(cfg, d) for d in range(cfg.days)], ignore_index=True)


def _poisson_times(rng: np.random.Generator, per_minute: np.ndarray, day_start: float
                   ) -> np.ndarray:
    counts = rng.poisson(per_minute)
    edges = day_start + _MINUTE * np.arange(len(per_minute))
    return np.sort(np.repeat(edges, counts) + rng.random(counts.sum()) * _MINUTE)


def slowdowns(cfg: WeeksConfig) -> dict[str, float]:
    """Each group's concurrency slowdown, as :func:`~.replay.replay` takes it."""
    return {gid: g.slowdown_per_chat for gid, g in zip(cfg.group_ids, cfg.groups, strict=True)}


def default_schedule(cfg: WeeksConfig, beta: float = 0.0, interval_s: int = INTERVAL_S
                     ) -> Schedule:
    """The staffing the history is served by: square-root staffing of chat slots on the
    expected rate (the desk does not know the day's draw), ``a + beta * sqrt(a)`` slots for an
    offered load of ``a`` chats, at least one agent. A plausible desk, not an optimal one:
    with the default groups over 10 weeks (seed 1, measured from the truth per group; see
    docs/simulator-weeks.md) a service level of 82-90% within 60 s (answered within 60 s
    over answered plus abandoned after 60 s) and 6.9-10.7% abandonment, worse on days drawn
    busy: abandonment enough to estimate patience from."""
    rates = expected_rates(cfg, interval_s)
    agents, slots = {}, {}
    for gid, g in zip(cfg.group_ids, cfg.groups, strict=True):
        lam = rates.loc[rates["agent_group_id"] == gid, "expected_offered"].to_numpy()
        held = (g.offer_min_s + g.offer_max_s) / 2 + g.handling_mean_s * (
            1 + g.slowdown_per_chat * (g.slots_per_agent - 1))
        load = lam / interval_s * held
        agents[gid] = np.maximum(1, np.ceil((load + beta * np.sqrt(load))
                                            / g.slots_per_agent)).astype(np.int64)
        slots[gid] = g.slots_per_agent
    return Schedule(cfg.start, float(interval_s), agents, slots)


@dataclass(frozen=True)
class Weeks:
    """What happened over the span: every human-asking customer with its outcome
    (:func:`~.replay.serve_customers`'s columns, plus session_id) and the population the
    simulator serves."""

    config: WeeksConfig
    schedule: Schedule
    customers: pd.DataFrame
    population: Population


def simulate(cfg: WeeksConfig, schedule: Schedule | None = None) -> Weeks:
    """Serve every day's customers under ``schedule`` (default :func:`default_schedule`)."""
    schedule = schedule or default_schedule(cfg)
    customers = serve_customers(all_customers(cfg), schedule, slowdowns(cfg))
    return Weeks(cfg, schedule, *_population(cfg, customers, schedule))


def _population(cfg: WeeksConfig, customers: pd.DataFrame, schedule: Schedule
                ) -> tuple[pd.DataFrame, Population]:
    """The sessions (human-asking and chatbot-only), in arrival order, as a Population."""
    n_groups = len(cfg.groups)
    gidx = customers["agent_group_id"].map({g: i for i, g in enumerate(cfg.group_ids)})
    gidx = gidx.to_numpy(np.int64)
    # Global agent numbers: the groups' agents one after the other.
    sizes = [int(np.max(schedule.agents[g])) for g in cfg.group_ids]
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    agent_group = [g for g in range(n_groups) for _ in range(sizes[g])]
    local = customers["agent"].to_numpy(np.int64)
    agent = np.where(local >= 0, offsets[gidx] + local, -1)
    queued = customers["queued_at"].to_numpy(float)
    ok = agent >= 0
    left = customers["ended_at"].to_numpy(float)
    # Chatbot-only sessions: Poisson at bot_only_share of all, over each day, per group.
    bot_t, bot_g, bot_len = [], [], []
    share = cfg.bot_only_share / (1 - cfg.bot_only_share)
    for day in range(cfg.days):
        for gi in range(n_groups):
            rng = np.random.default_rng([cfg.seed, day, gi, 3])
            rate = minute_rates(cfg, day, gi) * day_multiplier(cfg, day, gi) * share
            t = _poisson_times(rng, rate, cfg.day_start(day))
            bot_t.append(t)
            bot_g.append(np.full(len(t), gi))
            bot_len.append(rng.exponential(cfg.chatbot_mean_s, len(t)))
    b_t, b_len = np.concatenate(bot_t), np.concatenate(bot_len)
    arrive = np.concatenate((queued - customers["chatbot_s"].to_numpy(float), b_t))
    queue = np.concatenate((queued, b_t + b_len))
    offer = np.concatenate((np.where(ok, customers["started"].to_numpy(float), left),
                            b_t + b_len))
    answer = np.concatenate((np.where(ok, customers["answered_at"].to_numpy(float), left),
                             b_t + b_len))
    end = np.concatenate((left, b_t + b_len))
    n_h, n = len(queued), len(arrive)
    order = np.argsort(arrive, kind="stable")
    rng = np.random.default_rng([cfg.seed, 4])
    group = np.concatenate((gidx, np.concatenate(bot_g)))
    sessions = SessionArrays(
        arrive=arrive[order], queue=queue[order], offer=offer[order], answer=answer[order],
        end=end[order], agent=np.concatenate((agent, np.full(n - n_h, -1)))[order],
        group=group[order], cs_pick=group[order],
        bot_only=(np.arange(n) >= n_h)[order], repeat=rng.random(n) < cfg.population.repeat_share,
        pick=rng.random(n), id_bytes=rng.bytes(16 * n))
    pcfg = PopulationConfig(
        seed=cfg.seed, day_start=cfg.start, hours=cfg.days * 24.0,
        agents=max(n_groups, len(agent_group)),
        customer_service_ids=tuple(f"@cs_{g.name.lower().replace(' ', '_')}"
                                   for g in cfg.groups),
        agent_groups=tuple(g.name for g in cfg.groups),
        web_share=cfg.population.web_share, rated_share=cfg.population.rated_share,
        agent_ended_share=cfg.population.agent_ended_share,
        user_ended_share=cfg.population.user_ended_share)
    population = Population.from_sessions(pcfg, sessions, agent_group)
    ids = np.empty(n, dtype=object)
    ids[order] = population.session_ids()
    return customers.assign(session_id=ids[:n_h]), population


def group_table(cfg: WeeksConfig) -> pd.DataFrame:
    """Each group's true parameters, one row per group."""
    return pd.DataFrame([{
        "agent_group_id": gid, "agent_group_name": g.name,
        "weekday_offered": g.weekday_offered, **{f"weekly_{d}": f for d, f in zip(
            ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), g.weekly, strict=True)},
        "handling_mean_s": g.handling_mean_s, "handling_sigma": g.handling_sigma,
        "patience_mean_s": g.patience_mean_s, "slots_per_agent": g.slots_per_agent,
        "slowdown_per_chat": g.slowdown_per_chat, "offer_min_s": g.offer_min_s,
        "offer_max_s": g.offer_max_s, "day_cv": cfg.day_cv, "seed": cfg.seed}
        for gid, g in zip(cfg.group_ids, cfg.groups, strict=True)])


def truth_tables(weeks: Weeks) -> dict[str, pd.DataFrame]:
    """The truth of a weeks history, table name -> frame (schema ``desk_simulator``):
    ``expected_rates`` (per group and 15-minute interval, before and after the day's draw),
    ``customers`` (every session that asked for a human: its draws, patience included, and
    outcome), ``schedule`` (the staffing it was served by) and ``agent_groups``."""
    c = weeks.customers
    ts = {k: pd.to_datetime(c[k], unit="s", utc=True)
          for k in ("queued_at", "started", "answered_at", "ended_at")}
    customers = c.assign(**ts, date=(ts["queued_at"].dt.floor("D")).dt.date)[[
        "session_id", "agent_group_id", "date", "queued_at", "patience_s", "offer_s",
        "work_s", "chatbot_s", "outcome", "started", "answered_at", "ended_at", "agent",
        "handle_s", "wait_s"]]
    return {"expected_rates": expected_rates(weeks.config), "customers": customers,
            "schedule": weeks.schedule.to_frame(), "agent_groups": group_table(weeks.config)}
