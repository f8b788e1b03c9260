"""The simulated population: one day of Desk sessions, simulated up front from a seed.

A session goes Chatbot -> (ended | Queuing) -> WaitingForAgentAnswering -> Agent -> ended,
or leaves the queue when its patience runs out. The whole day is a discrete-event simulation
run once at construction, so the true state at any instant is a lookup, not a replay.

Agent groups (skill groups): each customer-service account belongs to one group, each
agent to one group, and each group has its own FIFO queue. Once a session has ended it has
a session record (``describe_im_cdr_list``) with its group, agent, channel, end status and
rating; those extra attributes come from a second seeded generator, so adding them changed
nothing of the sessions' times.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
from tencent_desk.api import states
from tencent_desk.api.record_fields import record_times

DAY_START = 1_767_571_200.0  # 2026-01-05 00:00 UTC, a Monday

# Relative arrival rate at the middle of each UTC hour: a quiet night, a mid-morning and a
# mid-afternoon peak, a lunch dip.
HOURLY_PROFILE = (
    0.06, 0.04, 0.03, 0.03, 0.03, 0.05, 0.12, 0.35, 0.75, 1.0, 1.0, 0.85,
    0.6, 0.7, 0.95, 1.0, 0.9, 0.65, 0.45, 0.4, 0.35, 0.28, 0.18, 0.1,
)
_BIN_S = 60.0  # arrivals are Poisson with a rate constant over each minute


@dataclass(frozen=True)
class PopulationConfig:
    seed: int = 0
    day_start: float = DAY_START
    hours: float = 24.0
    sessions_per_day: int = 3000
    agents: int = 8  # 24 chat slots: short queues and some abandonment at the peaks
    chats_per_agent: int = 3
    chatbot_mean_s: float = 90.0
    bot_only_share: float = 0.35
    offer_min_s: float = 5.0
    offer_max_s: float = 40.0
    handling_mean_s: float = 360.0
    handling_sigma: float = 0.7      # shape of the lognormal handling time
    patience_mean_s: float = 240.0   # exponential; the queue is left when it runs out
    repeat_share: float = 0.25       # sessions opened by a user who had one earlier that day
    customer_service_ids: tuple[str, ...] = ("@cs_sales", "@cs_support", "@cs_billing")
    # Agent groups: account k and agent k belong to group k % len(agent_groups).
    agent_groups: tuple[str, ...] = ("Online customer service",)
    web_share: float = 0.3           # sessions on the H5 page (ChannelType Web), else SDK
    rated_share: float = 0.5         # served sessions whose customer gave a rating
    # How a served session ends: the agent closes it, the user does, or the user times out.
    agent_ended_share: float = 0.6
    user_ended_share: float = 0.3

    def __post_init__(self) -> None:
        if self.hours <= 0 or self.sessions_per_day < 0:
            raise ValueError("hours must be > 0 and sessions_per_day >= 0")
        if self.agents < 1 or self.chats_per_agent < 1:
            raise ValueError("agents and chats_per_agent must be >= 1")
        if not 0 <= self.bot_only_share <= 1 or not 0 <= self.repeat_share <= 1:
            raise ValueError("shares must be in [0, 1]")
        if not 0 <= self.offer_min_s <= self.offer_max_s:
            raise ValueError("need 0 <= offer_min_s <= offer_max_s")
        if min(self.chatbot_mean_s, self.handling_mean_s, self.patience_mean_s) <= 0:
            raise ValueError("mean durations must be > 0")
        if not self.customer_service_ids:
            raise ValueError("at least one customer service account is needed")
        if not 1 <= len(self.agent_groups) <= self.agents:
            raise ValueError("need at least one agent group, and an agent for each")
        if not 0 <= self.agent_ended_share + self.user_ended_share <= 1:
            raise ValueError("agent_ended_share + user_ended_share must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a session in one state, ``start <= t < end``."""

    session_id: str
    state: str
    start: float
    end: float
    agent_id: str | None  # set in waiting_for_agent and agent only


class SessionKey(NamedTuple):
    session_id: str
    client_user_id: str
    customer_service_id: str


# Segment states in order; a session's boundaries are (arrive, queue, offer, answer, end).
_ORDER = (states.CHATBOT, states.QUEUING, states.WAITING_FOR_AGENT, states.AGENT)

# The simulator's EndStatus names (record_fields.END_STATUS_KINDS maps them to meanings).
AGENT_ENDED, USER_ENDED, USER_TIMEOUT = "AgentEndedSession", "UserEndedSession", "UserTimeout"
QUEUE_ABANDONED, CHATBOT_ENDED = "QueueAbandoned", "ChatbotEnded"
RATINGS = (1, 2, 3, 4, 5)
RATING_WEIGHTS = (0.05, 0.05, 0.15, 0.35, 0.40)


@dataclass(frozen=True, slots=True)
class SessionTruth:
    """What really happened in one ended session: what its record must say."""

    session_id: str
    client_user_id: str
    arrived_at: float
    ended_at: float
    agent_id: str | None
    agent_group_id: str | None
    agent_group_name: str | None
    channel_type: str
    end_status: str
    satisfaction: int | None


@dataclass(frozen=True)
class SessionArrays:
    """Every session's times and draws, one array entry per session in arrival order.

    Times are Unix seconds: arrive (chatbot), queue (asks for a human), offer (an agent's
    slot taken), answer (accepted), end; an unserved session has offer = answer = end.
    agent: global agent index or -1; group: group index (bot-only sessions too: their
    account's); the rest are the draws the records and user ids are made from."""

    arrive: np.ndarray
    queue: np.ndarray
    offer: np.ndarray
    answer: np.ndarray
    end: np.ndarray
    agent: np.ndarray
    group: np.ndarray
    cs_pick: np.ndarray
    bot_only: np.ndarray
    repeat: np.ndarray
    pick: np.ndarray
    id_bytes: bytes


class Population:
    """A day of sessions: built at once from ``config``, then only queried."""

    def __init__(self, config: PopulationConfig | None = None) -> None:
        cfg = config or PopulationConfig()
        rng = np.random.default_rng(cfg.seed)
        arrive = _arrivals(cfg, rng)
        n = len(arrive)
        # Every draw is made for every session, so one path's choices never shift another's.
        bot_only = rng.random(n) < cfg.bot_only_share
        chatbot = rng.exponential(cfg.chatbot_mean_s, n)
        offer = rng.uniform(cfg.offer_min_s, cfg.offer_max_s, n)
        mu = math.log(cfg.handling_mean_s) - cfg.handling_sigma**2 / 2
        handle = rng.lognormal(mu, cfg.handling_sigma, n)
        patience = rng.exponential(cfg.patience_mean_s, n)
        cs_pick = rng.integers(len(cfg.customer_service_ids), size=n)
        repeat = rng.random(n) < cfg.repeat_share
        pick = rng.random(n)
        id_bytes = rng.bytes(16 * n)

        queue = arrive + chatbot
        busy = offer + handle  # a slot is held this long; ends reuse the sum so capacity holds
        n_groups = len(cfg.agent_groups)
        group = cs_pick % n_groups
        start = np.full(n, np.nan)
        agent = np.full(n, -1, dtype=np.int64)
        for g in range(n_groups):  # one FIFO queue per group, served by its own agents
            s_g, a_g = _serve_fifo(cfg, queue, ~bot_only & (group == g), patience, busy,
                                   range(g, cfg.agents, n_groups))
            mine = a_g >= 0
            start[mine], agent[mine] = s_g[mine], a_g[mine]
        served = agent >= 0
        abandoned = ~bot_only & ~served
        gone = np.where(abandoned, queue + patience, queue)  # when an unserved session ends
        self._assemble(cfg, SessionArrays(
            arrive=arrive, queue=queue, offer=np.where(served, start, gone),
            answer=np.where(served, start + offer, gone),
            end=np.where(served, start + busy, gone), agent=agent, group=group,
            cs_pick=cs_pick, bot_only=bot_only, repeat=repeat, pick=pick, id_bytes=id_bytes),
            [k % n_groups for k in range(cfg.agents)])

    @classmethod
    def from_sessions(cls, config: PopulationConfig, sessions: SessionArrays,
                      agent_group: Sequence[int]) -> Population:
        """A population of sessions simulated elsewhere (the weeks model), in arrival order;
        ``agent_group[k]`` is the group index of agent k."""
        self = cls.__new__(cls)
        self._assemble(config, sessions, agent_group)
        return self

    def _assemble(self, cfg: PopulationConfig, s: SessionArrays,
                  agent_group: Sequence[int]) -> None:
        self.config = cfg
        n = len(s.arrive)
        served = s.agent >= 0
        abandoned = ~s.bot_only & ~served
        self.agent_ids = [f"agent{k:02d}@example.com" for k in range(1, len(agent_group) + 1)]
        self._agent_group = list(agent_group)
        self._ids = _uuid4s(s.id_bytes, n)
        self._users = _assign_users(s.arrive, s.end, s.repeat, s.pick)
        cs_ids = cfg.customer_service_ids
        self._cs = [cs_ids[k] for k in s.cs_pick.tolist()]
        self._times = list(zip(s.arrive.tolist(), s.queue.tolist(), s.offer.tolist(),
                               s.answer.tolist(), s.end.tolist(), strict=True))
        self._agent = [self.agent_ids[a] if a >= 0 else None for a in s.agent.tolist()]
        self._index = {sid: i for i, sid in enumerate(self._ids)}
        # (user, account) -> start times and indexes; a user's sessions never overlap.
        self._by_pair: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
        pairs = zip(self._users, self._cs, strict=True)
        for i, pair, t in zip(range(n), pairs, s.arrive.tolist(), strict=True):
            starts, idx = self._by_pair.setdefault(pair, ([], []))
            starts.append(t)
            idx.append(i)
        self._served, self._abandoned = int(served.sum()), int(abandoned.sum())
        self._records_model(cfg, s.group, served, abandoned, s.bot_only)

    def _records_model(self, cfg: PopulationConfig, group: np.ndarray, served: np.ndarray,
                       abandoned: np.ndarray, bot_only: np.ndarray) -> None:
        """Group, channel, end status and rating per session, from their own generator."""
        n = len(self._ids)
        rng = np.random.default_rng([cfg.seed, 0x5EC0]) # not the day's: its draws stay put
        web = rng.random(n) < cfg.web_share
        how = rng.random(n)
        rated = rng.random(n) < cfg.rated_share
        rating = rng.choice(RATINGS, size=n, p=RATING_WEIGHTS)
        end_status = np.where(
            bot_only, CHATBOT_ENDED, np.where(
                abandoned, QUEUE_ABANDONED, np.where(
                    how < cfg.agent_ended_share, AGENT_ENDED, np.where(
                        how < cfg.agent_ended_share + cfg.user_ended_share, USER_ENDED,
                        USER_TIMEOUT))))
        self.group_ids = [str(3000 + g) for g in range(len(cfg.agent_groups))]
        self._group = [None if b else int(g) for b, g in zip(bot_only.tolist(),
                                                              group.tolist(), strict=True)]
        self._channel = ["Web" if w else "SDK" for w in web.tolist()]
        self._end_status = end_status.tolist()
        self._rating = [int(r) if ok else None
                        for r, ok in zip(rating.tolist(), (served & rated).tolist(), strict=True)]
        # Records in order of their Timestamp, for window queries.
        times = np.array(self._times, dtype=np.float64).reshape(n, 5)  # (0, 5): no session
        ts_dur = [record_times(a, e) for a, e in zip(times[:, 0].tolist(),
                                                     times[:, 4].tolist(), strict=True)]
        self._record_ts = np.array([t for t, _ in ts_dur], dtype=np.int64)
        self._record_dur = [d for _, d in ts_dur]
        self._ends = times[:, 4]
        self._by_ts = np.argsort(self._record_ts, kind="stable")
        self._ts_sorted = self._record_ts[self._by_ts]

    def agent_group(self, agent_id: str) -> str:
        """The group id an agent belongs to."""
        return self.group_ids[self._agent_group[self.agent_ids.index(agent_id)]]

    def session_ids(self) -> list[str]:
        """Every session id, in order of arrival."""
        return list(self._ids)

    def session_truth(self, session_id: str) -> SessionTruth:
        i = self._index[session_id]
        g = self._group[i]
        return SessionTruth(
            session_id, self._users[i], self._times[i][0], self._times[i][4], self._agent[i],
            None if g is None else self.group_ids[g],
            None if g is None else self.config.agent_groups[g], self._channel[i],
            self._end_status[i], self._rating[i])

    def records_between(self, start: int, end: int, t: float) -> list[int]:
        """Indexes of the sessions whose record has a Timestamp in ``[start, end]`` and that
        have ended by ``t``, in order of arrival (so a session ending while a window is
        paged lands in the middle of it, as an unordered API would do)."""
        lo = int(np.searchsorted(self._ts_sorted, start, side="left"))
        hi = int(np.searchsorted(self._ts_sorted, end, side="right"))
        idx = self._by_ts[lo:hi]
        idx = idx[self._ends[idx] <= t]
        return np.sort(idx).tolist()

    def record(self, i: int) -> dict[str, object]:
        """Session ``i``'s record, as ``describe_im_cdr_list`` lists it."""
        g = self._group[i]
        return {"SessionId": self._ids[i],
                "AgentGroupId": "" if g is None else self.group_ids[g],
                "AgentGroupName": "" if g is None else self.config.agent_groups[g],
                "AgentId": self._agent[i] or "", "ChannelType": self._channel[i],
                "ClientUserId": self._users[i], "ClientUserNickName": f"nick-{self._users[i]}",
                "Duration": self._record_dur[i], "EndStatus": self._end_status[i],
                "SatisfactionSelected": self._rating[i] or 0,
                "Timestamp": int(self._record_ts[i])}

    def __len__(self) -> int:
        return len(self._ids)

    def state_at(self, session_id: str, t: float) -> Segment | None:
        """The segment in force at ``t``; None for an unknown, not yet started or ended session."""
        i = self._index.get(session_id)
        return None if i is None else self._segment_at(i, t)

    def current_session(self, client_user_id: str, customer_service_id: str,
                        t: float) -> Segment | None:
        """The segment of the user's session with that account in progress at ``t``, if any."""
        entry = self._by_pair.get((client_user_id, customer_service_id))
        if entry is None:
            return None
        starts, idx = entry
        k = bisect_right(starts, t) - 1
        return None if k < 0 else self._segment_at(idx[k], t)

    def _segment_at(self, i: int, t: float) -> Segment | None:
        bounds = self._times[i]
        if t < bounds[0] or t >= bounds[4]:
            return None
        k = bisect_right(bounds, t, 1, 4) - 1  # last boundary <= t; empty segments skipped
        state = _ORDER[k]
        agent = self._agent[i] if state in states.WITH_AGENT else None
        return Segment(self._ids[i], state, bounds[k], bounds[k + 1], agent)

    def segments(self, session_id: str) -> list[Segment]:
        """Every non-empty segment of a session, in order."""
        i = self._index[session_id]
        bounds = self._times[i]
        return [Segment(self._ids[i], state, bounds[k], bounds[k + 1],
                        self._agent[i] if state in states.WITH_AGENT else None)
                for k, state in enumerate(_ORDER) if bounds[k] < bounds[k + 1]]

    @property
    def last_end(self) -> float:
        """When the last session ends (the day start if there is none)."""
        return float(self._ends.max()) if len(self._ends) else self.config.day_start

    def ended_at(self, session_id: str) -> float:
        return self._times[self._index[session_id]][4]

    def session_keys(self) -> list[SessionKey]:
        """Every session with its user and account, in order of arrival."""
        return [SessionKey(*k) for k in zip(self._ids, self._users, self._cs, strict=True)]

    def session_keys_between(self, start: float, end: float) -> list[SessionKey]:
        """The sessions that began in ``[start, end)``, in order of arrival."""
        # (t,) sorts before every (t, ...) boundary tuple: the first session arriving >= t.
        lo, hi = bisect_left(self._times, (start,)), bisect_left(self._times, (end,))
        return [SessionKey(*k) for k in zip(self._ids[lo:hi], self._users[lo:hi],
                                            self._cs[lo:hi], strict=True)]

    def truth_rows(self) -> Iterator[dict[str, object]]:
        """The true state history, one row per segment, times as UTC datetimes."""
        for i, sid in enumerate(self._ids):
            for seg in self.segments(sid):
                yield {
                    "session_id": sid,
                    "client_user_id": self._users[i],
                    "customer_service_id": self._cs[i],
                    "state": seg.state,
                    "agent_id": seg.agent_id,
                    "started_at": datetime.fromtimestamp(seg.start, UTC),
                    "ended_at": datetime.fromtimestamp(seg.end, UTC),
                }

    def summary(self) -> dict[str, int]:
        n = len(self._ids)
        return {"sessions": n, "users": len(set(self._users)), "served": self._served,
                "abandoned": self._abandoned, "bot_only": n - self._served - self._abandoned}


def _uuid4s(raw: bytes, n: int) -> list[str]:
    """``n`` version-4 UUID strings from ``16 * n`` random bytes (uuid.UUID is slow in bulk)."""
    b = np.frombuffer(raw, dtype=np.uint8).reshape(n, 16).copy()
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    h = b.tobytes().hex()
    return [f"{h[k:k + 8]}-{h[k + 8:k + 12]}-{h[k + 12:k + 16]}-{h[k + 16:k + 20]}-"
            f"{h[k + 20:k + 32]}" for k in range(0, 32 * n, 32)]


def _arrivals(cfg: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Sorted arrival times: Poisson with the daily profile, piecewise constant per minute."""
    span = cfg.hours * 3600.0
    edges = np.append(np.arange(0.0, span, _BIN_S), span)
    widths = np.diff(edges)
    hour_of_day = ((cfg.day_start + edges[:-1] + widths / 2) % 86400.0) / 3600.0
    # Interpolate between hour midpoints, wrapping around midnight.
    xp = np.arange(-0.5, 25.0)  # -0.5, 0.5, ..., 24.5
    fp = np.array((HOURLY_PROFILE[-1], *HOURLY_PROFILE, HOURLY_PROFILE[0]))
    profile = np.interp(hour_of_day, xp, fp)
    day_mean = np.interp((np.arange(1440) + 0.5) / 60.0, xp, fp).mean()
    rate = cfg.sessions_per_day / 86400.0 * profile / day_mean
    counts = rng.poisson(rate * widths)
    offsets = np.repeat(edges[:-1], counts) + rng.random(counts.sum()) * np.repeat(widths, counts)
    return np.sort(cfg.day_start + offsets)


def _serve_fifo(cfg: PopulationConfig, enter: np.ndarray, queued: np.ndarray,
                patience: np.ndarray, busy: np.ndarray,
                agents: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """FIFO queue over ``agents`` (their ``chats_per_agent`` slots each), with reneging.

    In FIFO order each customer takes the slot that frees first (service starts never go
    backwards), unless the wait exceeds their patience; a leaver takes no slot. Returns per
    session the service start and the agent index (-1: not served).
    """
    start = np.full(len(enter), np.nan)
    agent = np.full(len(enter), -1, dtype=np.int64)
    # (free at, slot number, agent): ties go to slot 0 of every agent first, spreading load.
    slots = [(-math.inf, s, a) for a in agents for s in range(cfg.chats_per_agent)]
    heapq.heapify(slots)
    idx = np.flatnonzero(queued)
    order = idx[np.argsort(enter[idx], kind="stable")].tolist()
    enter_l, patience_l, busy_l = enter.tolist(), patience.tolist(), busy.tolist()
    for i in order:
        free, s, a = slots[0]
        t = max(enter_l[i], free)
        if t - enter_l[i] > patience_l[i]:
            continue
        heapq.heapreplace(slots, (t + busy_l[i], s, a))
        start[i] = t
        agent[i] = a
    return start, agent


def _assign_users(arrive: np.ndarray, end: np.ndarray, repeat: np.ndarray,
                  pick: np.ndarray) -> list[str]:
    """User ids: a repeat session goes to a random earlier user with nothing in progress."""
    users: list[str] = []
    idle: list[str] = []
    busy: list[tuple[float, str]] = []  # (session end, user)
    n_users = 0
    for t, e, rep, x in zip(arrive.tolist(), end.tolist(), repeat.tolist(), pick.tolist(),
                            strict=True):
        while busy and busy[0][0] <= t:
            idle.append(heapq.heappop(busy)[1])
        if rep and idle:
            k = int(x * len(idle))
            user = idle[k]
            idle[k] = idle[-1]
            idle.pop()
        else:
            n_users += 1
            user = f"user{n_users:06d}"
        users.append(user)
        heapq.heappush(busy, (e, user))
    return users
