"""Erlang C and Erlang A: how many agents a queue needs for a service level.

Erlang C (M/M/N): Poisson arrivals, exponential handling times with mean ``aht_s``, ``agents``
servers, and customers who wait as long as it takes. It has no steady state when agents <=
load: every arrival waits and the queue grows without end.

Erlang A (M/M/N+M): the same, but a waiting customer abandons after an exponential patience
with mean ``patience_s``. The queue then stays finite for any number of agents, so it fits
chat queues where people give up; as patience grows it tends to Erlang C. Its service level is
the share of *all* arrivals answered within the target: an abandonment counts as a miss.

``load`` is the offered traffic in Erlangs: arrival rate x mean handling time, e.g. 100
contacts in 30 minutes with a 3-minute AHT is 10 Erlangs. Times are in seconds.

Numerics: Erlang B by its recurrence B(n) = A B(n-1) / (n + A B(n-1)), which never overflows;
Erlang A in log space, with the time to answer from the regularized incomplete beta function
(summed as positive negative-binomial terms), so large agent counts stay exact.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _check(agents: int, load: float) -> None:
    if agents < 0 or load < 0:
        raise ValueError(f"agents and load must be >= 0, got {agents} and {load}")


def offered_load(arrivals: float, aht_s: float, interval_s: float = 3600.0) -> float:
    """Erlangs offered by ``arrivals`` per ``interval_s`` with mean handling time ``aht_s``."""
    return arrivals * aht_s / interval_s


def erlang_b(agents: int, load: float) -> float:
    """Probability that all ``agents`` are busy in a loss system (M/M/N/N)."""
    _check(agents, load)
    b = 1.0
    for n in range(1, agents + 1):
        b = load * b / (n + load * b)
    return b


def erlang_c(agents: int, load: float) -> float:
    """Probability that an arrival waits (M/M/N); 1 when agents <= load."""
    _check(agents, load)
    if load == 0:
        return 0.0
    if agents <= load:
        return 1.0
    b = erlang_b(agents, load)
    return agents * b / (agents - load * (1 - b))


def service_level(agents: int, load: float, aht_s: float, target_s: float) -> float:
    """Share of arrivals answered within ``target_s``: 1 - C e^(-(N - A) t / AHT)."""
    if load == 0:
        return 1.0
    if agents <= load:
        return 0.0
    return 1.0 - erlang_c(agents, load) * math.exp(-(agents - load) * target_s / aht_s)


def average_speed_of_answer(agents: int, load: float, aht_s: float) -> float:
    """Mean wait over all arrivals, zero waits included: C AHT / (N - A); inf when N <= A."""
    if load == 0:
        return 0.0
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * aht_s / (agents - load)


def occupancy(agents: int, load: float) -> float:
    """Share of agent time spent handling: load / agents, at most 1."""
    if load == 0:
        return 0.0
    return min(1.0, load / agents) if agents else 1.0


@dataclass(frozen=True)
class ErlangA:
    """Steady state of M/M/N+M (or of any birth-death queue: :func:`birth_death`)."""

    p_wait: float  # an arrival finds every server busy
    p_abandon: float  # an arrival gives up before being answered
    answered_in_time: float  # an arrival is answered within the target
    asa_s: float  # mean wait of the answered
    mean_queue: float  # customers waiting, time average
    in_service: float = 0.0  # customers being served, time average (chats held)
    # P(n customers in service) for n = 0..N: what occupancy per agent is computed from
    in_service_dist: tuple[float, ...] = ()
    abandoned_in_time: float = 0.0  # an arrival gives up within the target

    @property
    def service_level(self) -> float:
        """The field's service level, the one the product measures and plans for:
        answered within the target / (answered + abandoned after it). An arrival that
        leaves within the target counts neither way."""
        kept = 1.0 - self.abandoned_in_time
        return self.answered_in_time / kept if kept > 0 else 1.0


def _logsumexp(values: Sequence[float] | np.ndarray) -> float:
    arr = np.asarray(values, dtype=float)
    top = float(arr.max())
    if top == -math.inf:
        return top
    return top + math.log(float(np.exp(arr - top).sum()))


# A plan asks for the same queue again: the search for the agents needed, then the day's
# trim, try the agents next to the answer.
@functools.lru_cache(maxsize=8192)
def erlang_a(
    agents: int, load: float, aht_s: float, patience_s: float, target_s: float
) -> ErlangA:
    """Erlang A for ``agents`` agents: waiting, abandonment, service level and ASA
    (:func:`birth_death` with departure rate n mu while n <= N customers are served)."""
    _check(agents, load)
    if patience_s <= 0 or aht_s <= 0:
        raise ValueError("aht_s and patience_s must be > 0")
    if load == 0:
        return ErlangA(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, (1.0,))
    mu = 1.0 / aht_s
    return birth_death(load * mu, np.arange(1, agents + 1) * mu, 1.0 / patience_s,
                       target_s)


def birth_death(lam: float, rates: Sequence[float] | np.ndarray, theta: float,
                target_s: float) -> ErlangA:
    """A FIFO queue with Poisson arrivals ``lam`` (per s), ``len(rates)`` = N servers whose
    total service rate is ``rates[n - 1]`` while n of them are busy, and exponential
    patience of rate ``theta`` while waiting. Erlang A is rates n mu; chat concurrency
    (:mod:`tencent_desk.planning.concurrency`) is a rate that depends on chats per agent.

    States n = 0, 1, ... customers in the system form a birth-death chain (arrivals lambda,
    departures rates[min(n, N)] + max(n - N, 0) theta). An arrival finding j customers queued
    ahead is answered with probability S / (S + (j + 1) theta), S = rates[N], after a wait
    that is a sum of exponentials with rates S + i theta, i = 1..j+1.
    """
    servers = len(rates)
    if lam <= 0:
        return ErlangA(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, (1.0,) + (0.0,) * servers)
    rate = np.asarray(rates, dtype=float)
    if theta <= 0 or (rate <= 0).any():
        raise ValueError("service rates and the abandonment rate must be > 0")
    # log pi_n / pi_N for n = 0..N, built down from N: sum of log(lam / rates) above n.
    log_low = np.append(-np.cumsum(np.log(lam / rate)[::-1])[::-1], 0.0)
    served_rate = float(rate[-1]) if servers else 0.0
    # log pi_{N+j} / pi_N for j = 0, 1, ...: once past the peak, stop when negligible. In
    # NumPy, a block of states at a time: a busy desk's chains run to thousands of states,
    # and a plan solves thousands of chains.
    peak = (lam - served_rate) / theta
    log_q = np.zeros(1)
    while True:
        j = np.arange(len(log_q), 2 * len(log_q) + max(64, int(2 * max(peak, 0.0))))
        log_q = np.concatenate([log_q, log_q[-1] + np.cumsum(
            np.log(lam / (served_rate + j * theta)))])
        top = np.maximum.accumulate(np.maximum(log_q, 0.0))
        done = np.flatnonzero((np.arange(len(log_q)) > peak) & (log_q < top - 60))
        if len(done):
            log_q = log_q[:done[0] + 1]
            break
        if len(log_q) > 1_000_000:
            raise ValueError("patience too long for a load above the agents: no steady state")
    log_z = _logsumexp([_logsumexp(log_low),
                        _logsumexp(log_q[1:]) if len(log_q) > 1 else -math.inf])
    queued = np.exp(log_q - log_z)  # pi_{N+j}, j = 0, 1, ...
    low = np.exp(log_low - log_z)  # pi_n, n = 0..N
    states = np.arange(len(queued))
    p_wait = float(queued.sum())
    mean_queue = float((states * queued).sum())
    p_abandon = theta * mean_queue / lam
    in_service_dist = (*low[:-1].tolist(), p_wait)
    in_service = float((np.arange(servers) * low[:-1]).sum()) + servers * p_wait

    # an arrival with j ahead is answered with probability S / (S + m theta), m = j + 1,
    # after a wait that is a sum of Exp(S + i theta), i = 1..m
    m = states + 1
    p_answer = served_rate / (served_rate + m * theta)
    answered_by_t = p_answer * _sum_within(served_rate / theta + 1.0, m, theta, target_s)
    answered_in_time = float((queued * answered_by_t).sum())
    # Abandoned within the target: of an arrival that waits, whatever is neither answered
    # within it nor still waiting at it. Still waiting: its patience outlasts the target
    # (e^(-theta t)) and so does its virtual wait, the time until it would be answered were
    # it endlessly patient: a sum of Exp(S + i theta), i = 0..j for the j ahead.
    waiting_at_t = math.exp(-theta * target_s) * (
        1.0 - _sum_within(served_rate / theta, m, theta, target_s))
    abandoned_in_time = float((queued * np.maximum(
        0.0, 1.0 - answered_by_t - waiting_at_t)).sum())
    # E[wait | answered, j ahead] = sum of 1 / (S + i theta), i = 1..j+1
    served_wait = float((queued * p_answer * np.cumsum(1.0 / (served_rate + m * theta))).sum())
    p_answered = 1.0 - p_abandon
    return ErlangA(
        p_wait=p_wait,
        p_abandon=p_abandon,
        answered_in_time=(1.0 - p_wait) + answered_in_time,
        asa_s=served_wait / p_answered if p_answered > 0 else math.inf,
        mean_queue=mean_queue,
        in_service=in_service,
        in_service_dist=in_service_dist,
        abandoned_in_time=min(abandoned_in_time, p_wait),
    )


def _sum_within(b: float, m: np.ndarray, theta: float, target_s: float) -> np.ndarray:
    """P(a sum of Exp(theta (b + i)), i = 0..m-1, <= t) for m = 1, 2, ...: I_p(m, b),
    p = 1 - e^(-theta t), one minus the first m negative-binomial terms, whose logs are
    -b theta t + j log p + lgamma(b + j) - lgamma(b) - lgamma(j + 1) (the lgammas as running
    sums of log((b + i) / (i + 1)))."""
    if target_s <= 0 or b <= 0:  # b = 0: no agent, nobody is ever answered
        return np.zeros(len(m))
    j = m - 1
    log_p = math.log(-math.expm1(-theta * target_s))
    ratios = np.concatenate([[0.0], np.cumsum(np.log((b + j[:-1]) / m[:-1]))])
    return np.maximum(0.0, 1.0 - np.cumsum(np.exp(-b * theta * target_s + j * log_p + ratios)))


def smallest(meets: Callable[[int], bool], lo: int, guess: int | None = None) -> int:
    """The smallest n >= lo with meets(n), for a monotone ``meets``: doubling, then
    bisection. From a ``guess`` (a likely answer), the doubling runs down from it when it
    already meets: the chains of a queue far below its load run to thousands of states,
    so the search should not start there."""
    hi = max(lo, 1)
    if guess is not None and guess > hi and meets(guess):
        hi, step = guess, 1  # the answer is in [lo, hi]: narrow it from above
        while hi - step >= lo:
            if not meets(hi - step):
                lo = hi - step + 1
                break
            hi, step = hi - step, step * 2
    else:
        if guess is not None and guess > hi:  # it fails at guess: the answer lies above
            lo, hi = guess + 1, 2 * guess
        while not meets(hi):
            lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def square_root_staffing(load: float, beta: float = 0.5) -> int:
    """load + beta sqrt(load) servers, rounded up (Halfin & Whitt's square-root rule): where
    a search for the servers a target needs starts. With beta 0.5 it asked 4.7 queues a
    search on random intervals, against 6.5 from the load alone."""
    return math.ceil(load + beta * math.sqrt(load))


def with_shrinkage(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that ``agents`` are on the queue after ``shrinkage`` (0..1)."""
    if not 0 <= shrinkage < 1:
        raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage}")
    # Rounded first: 14 / 0.7 is 20.000000000000004 in floating point, not 21 agents.
    return math.ceil(round(agents / (1 - shrinkage), 9))


def agents_needed(
    load: float,
    aht_s: float,
    target_s: float,
    target_sl: float = 0.8,
    *,
    shrinkage: float = 0.0,
    patience_s: float | None = None,
    servers_per_agent: int = 1,
) -> int:
    """Fewest agents meeting ``target_sl`` within ``target_s``, then grossed up for shrinkage.

    Erlang C by default; Erlang A when ``patience_s`` is given. ``servers_per_agent``: the
    chats an agent holds at once, each a server (a whole agent's worth searched at a time).
    """
    if not 0 < target_sl < 1:
        raise ValueError(f"target_sl must be in (0, 1), got {target_sl}")
    if load == 0:
        return 0
    per = servers_per_agent
    if patience_s is None:
        on_queue = smallest(
            lambda n: service_level(n * per, load, aht_s, target_s) >= target_sl,
            math.floor(load / per) + 1)
    else:
        on_queue = smallest(
            lambda n: erlang_a(n * per, load, aht_s, patience_s, target_s).service_level
            >= target_sl, 1, math.ceil(square_root_staffing(load) / per))
    return with_shrinkage(on_queue, shrinkage)


def staffing_table(
    demand: pd.DataFrame,
    target_s: float = 20.0,
    target_sl: float = 0.8,
    *,
    shrinkage: float = 0.0,
    chats_per_agent: float = 1.0,
    patience_s: float | None = None,
) -> pd.DataFrame:
    """Agents needed per interval, from ``demand`` (interval_start, interval_s, arrivals, aht_s).

    ``metrics.demand_per_interval`` makes such a frame. The model sees chat slots as servers:
    ``slots`` is what Erlang C (A with ``patience_s``) asks for, ``agents`` those slots spread
    over agents taking ``chats_per_agent`` chats at once, ``scheduled`` that grossed up for
    shrinkage. Concurrent chats slow each other down, so with ``chats_per_agent`` > 1 this is
    optimistic unless aht_s was measured at that concurrency (it is, from snapshots).
    Rows without arrivals or aht_s (gaps, no measured chat) get NaN.
    """
    rows = []
    for arrivals, aht_s, interval_s in demand[["arrivals", "aht_s", "interval_s"]].itertuples(
        index=False
    ):
        if pd.isna(arrivals) or (arrivals > 0 and pd.isna(aht_s)):
            rows.append({})
            continue
        load = offered_load(arrivals, aht_s, interval_s) if arrivals else 0.0
        slots = agents_needed(load, aht_s, target_s, target_sl, patience_s=patience_s)
        agents = math.ceil(round(slots / chats_per_agent, 9))
        if patience_s is None:
            p_wait, sl = erlang_c(slots, load), service_level(slots, load, aht_s, target_s)
            asa = average_speed_of_answer(slots, load, aht_s)
        else:
            result = erlang_a(slots, load, aht_s, patience_s, target_s)
            p_wait, sl, asa = result.p_wait, result.service_level, result.asa_s
        rows.append({
            "offered_load": load, "slots": slots, "agents": agents,
            "scheduled": with_shrinkage(agents, shrinkage),
            "p_wait": p_wait, "service_level": sl, "asa_s": asa,
            "occupancy": occupancy(slots, load),
        })
    columns = ["offered_load", "slots", "agents", "scheduled", "p_wait", "service_level",
               "asa_s", "occupancy"]
    added = pd.DataFrame(rows, columns=columns, index=demand.index)
    keep = [c for c in ("interval_start", "interval_s", "arrivals", "aht_s") if c in demand]
    return pd.concat([demand[keep], added], axis=1)
