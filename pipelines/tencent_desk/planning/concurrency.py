"""Chat concurrency: ``agents`` agents, each holding up to ``slots`` chats at once, where a
chat's handling rate depends on how many chats its agent holds (Tezcan & Zhang, Operations
Research 62(4), 2014: an agent with j chats serves each at rate mu_j).

The model is a birth-death chain on the chats in the system (:func:`erlang.birth_death`):
with n <= agents x slots chats in service, routing to the least-loaded agent keeps them
spread evenly (q = n // agents chats for every agent, one more for n % agents of them), so
the total rate is r (q + 1) mu_{q+1} + (agents - r) q mu_q. Above that, customers wait in
one FIFO queue and abandon at rate 1 / patience. With one rate for every j it is exactly
Erlang A with agents x slots servers. The spread is exact on arrival and only approximate
after departures; tests/test_planning.py checks it against a simulation of the real routing.

No open library models this: pyworkforce (0.5.1, the last for Python 3.11) has Erlang C
only, not even Erlang A.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tencent_desk.analysis import erlang


@dataclass(frozen=True)
class Outcome:
    """What a staffing level gives, per arrival and per agent."""

    agents: int
    # answered within the target / (answered + abandoned after it): the field's definition
    service_level: float
    asa_s: float  # mean wait of the answered
    p_abandon: float
    occupancy: float  # chats held / chat slots (the load each agent carries)
    busy_share: float  # agents with at least one chat (time busy / time logged in)
    concurrency: float  # mean chats held by a busy agent


def total_rates(agents: int, aht_by_chats: Sequence[float]) -> np.ndarray:
    """Total service rate with n = 1 .. agents x slots chats in service, spread evenly.
    ``aht_by_chats[j - 1]``: mean handling time of a chat while its agent holds j chats."""
    slots = len(aht_by_chats)
    # per chat at j = 0 .. slots chats held, and 0 past the last (never reached: r = 0)
    per_chat = np.concatenate([[0.0], 1.0 / np.asarray(aht_by_chats, dtype=float), [0.0]])
    q, r = np.divmod(np.arange(1, agents * slots + 1), agents)
    return (agents - r) * q * per_chat[q] + r * (q + 1) * per_chat[q + 1]


def outcome(agents: int, arrivals_per_s: float, aht_by_chats: Sequence[float],
            patience_s: float, target_s: float) -> Outcome:
    """Steady state of ``agents`` agents with ``len(aht_by_chats)`` slots each."""
    if not aht_by_chats or min(aht_by_chats) <= 0 or patience_s <= 0:
        raise ValueError("need handling times > 0 for 1..slots chats and a patience > 0")
    return _outcome(agents, arrivals_per_s, tuple(aht_by_chats), patience_s, target_s)


# A plan asks for the same chain again and again: the per-interval search, the day's trim
# and the agents needed given the actuals all try the agents next to the answer.
@functools.lru_cache(maxsize=8192)
def _outcome(agents: int, arrivals_per_s: float, aht_by_chats: tuple[float, ...],
             patience_s: float, target_s: float) -> Outcome:
    rates = total_rates(agents, aht_by_chats)
    q = erlang.birth_death(arrivals_per_s, rates, 1.0 / patience_s, target_s)
    slots = agents * len(aht_by_chats)
    dist = np.asarray(q.in_service_dist)
    busy = float((np.minimum(np.arange(len(dist)), agents) * dist).sum())
    return Outcome(
        agents=agents, service_level=q.service_level, asa_s=q.asa_s, p_abandon=q.p_abandon,
        occupancy=q.in_service / slots if slots else 1.0,
        busy_share=busy / agents if agents else 1.0,
        concurrency=q.in_service / busy if busy > 0 else 0.0)


def agents_required(arrivals_per_s: float, aht_by_chats: Sequence[float], patience_s: float,
                    target_s: float, target_sl: float, max_occupancy: float = 1.0) -> Outcome:
    """The fewest agents whose service level reaches ``target_sl`` within ``target_s`` with
    an occupancy at most ``max_occupancy``; both improve with every agent added."""
    if not 0 < target_sl < 1 or not 0 < max_occupancy <= 1:
        raise ValueError("target_sl must be in (0, 1) and max_occupancy in (0, 1]")
    if arrivals_per_s <= 0:
        return Outcome(0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def at(n: int) -> Outcome:  # cached (_outcome): the search's answer is not solved twice
        return outcome(n, arrivals_per_s, aht_by_chats, patience_s, target_s)

    def meets(n: int) -> bool:
        o = at(n)
        return o.service_level >= target_sl and o.occupancy <= max_occupancy + 1e-12

    # a start near the answer: the load at full concurrency, in agents
    load = arrivals_per_s * aht_by_chats[-1] / len(aht_by_chats)
    return at(erlang.smallest(meets, 1, erlang.square_root_staffing(load)))
