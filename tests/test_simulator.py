"""The Desk simulator: the population model, and the app over real loopback HTTP with
Tencent's official signer as the oracle for UserSigs. Clocks are virtual; nothing sleeps."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx
import pytest
from tencent_desk.api import states, usersig
from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.settings import API_PATH
from tencent_desk.simulator import (
    CHAOS_SHAPES,
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    Stats,
    build_app,
    serve,
    serve_in_thread,
    write_seed_csv,
)
from tencent_desk.simulator.app import FAULT_HEADER
from TLSSigAPIv2 import TLSSigAPIv2

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

SDKAPPID = 1400000001
ADMIN = "administrator"
KEY = "0f3c9a1e5b7d2c4a6e8f0b1d3c5a7e9f1b3d5c7a9e0f2b4d6c8a0e1f3b5d7c9a"
SIG = TLSSigAPIv2(SDKAPPID, KEY).gen_sig(ADMIN)  # wall time, valid 180 days
URL_PATH = "/" + API_PATH
REQUEST_ID = re.compile(r"^Id-[0-9a-f]{32}-O-Seq-\d+$")
STATE_FIELDS = {"SessionId", "CurrentState", "AgentId"}


# ---------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def population() -> Population:
    return Population(PopulationConfig(seed=7))


def _served(pop: Population) -> list[tuple[str, list]]:
    return [(k.session_id, segs) for k in pop.session_keys()
            if (segs := pop.segments(k.session_id))[-1].state == states.AGENT]


def test_same_seed_same_day_other_seed_other_day() -> None:
    a, b = Population(PopulationConfig(seed=3)), Population(PopulationConfig(seed=3))
    assert a.session_keys() == b.session_keys()
    assert list(a.truth_rows()) == list(b.truth_rows())
    assert Population(PopulationConfig(seed=4)).session_keys() != a.session_keys()


def test_segments_are_contiguous_and_ordered(population: Population) -> None:
    order = [states.CHATBOT, states.QUEUING, states.WAITING_FOR_AGENT, states.AGENT]
    seen = Counter()
    for key in population.session_keys():
        segs = population.segments(key.session_id)
        assert segs[0].state == states.CHATBOT
        assert segs[-1].end == population.ended_at(key.session_id)
        ranks = [order.index(s.state) for s in segs]
        assert ranks == sorted(set(ranks))
        for prev, nxt in pairwise(segs):
            assert prev.end == nxt.start
        for s in segs:
            assert s.start < s.end
            assert (s.agent_id is not None) == (s.state in states.WITH_AGENT)
            seen[s.state] += 1
        # WaitingForAgentAnswering is always followed by Agent, with the same agent.
        if states.WAITING_FOR_AGENT in (s.state for s in segs):
            assert segs[-2].state == states.WAITING_FOR_AGENT and segs[-1].state == states.AGENT
            assert segs[-2].agent_id == segs[-1].agent_id
    assert set(seen) == set(order)


def test_agents_never_exceed_capacity(population: Population) -> None:
    cap = population.config.chats_per_agent
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for _, segs in _served(population):
        reserved = next(s for s in segs if s.state in states.WITH_AGENT)
        events[reserved.agent_id].extend([(reserved.start, 1), (segs[-1].end, -1)])
    assert len(events) == population.config.agents
    peak = 0
    for evs in events.values():
        load = 0
        for _, delta in sorted(evs):  # an end sorts before a start at the same instant
            load += delta
            assert 0 <= load <= cap
            peak = max(peak, load)
    assert peak == cap  # the busy hours do fill agents up


def test_queue_is_first_in_first_out(population: Population) -> None:
    # Served in order of joining the queue: offers never go backwards in that order.
    joined = []
    for _, segs in _served(population):
        bot_end = segs[0].end
        offer = next(s.start for s in segs if s.state == states.WAITING_FOR_AGENT)
        joined.append((bot_end, offer))
    offers = [offer for _, offer in sorted(joined)]
    assert offers == sorted(offers)


def test_abandonment_and_bot_only_sessions_exist() -> None:
    pop = Population(PopulationConfig(seed=1, agents=2))  # overloaded on purpose
    summary = pop.summary()
    assert summary["abandoned"] > 100 and summary["bot_only"] > 0
    left = [k for k in pop.session_keys() if pop.segments(k.session_id)[-1].state == states.QUEUING]
    assert len(left) == summary["abandoned"]
    assert sum(summary[k] for k in ("served", "abandoned", "bot_only")) == summary["sessions"]
    default = Population(PopulationConfig()).summary()
    assert 0 < default["abandoned"] < default["sessions"] * 0.05


def test_arrivals_follow_the_working_day(population: Population) -> None:
    start = population.config.day_start
    hours = Counter(int((population.segments(k.session_id)[0].start - start) // 3600)
                    for k in population.session_keys())
    night = sum(hours[h] for h in range(0, 6))
    morning = sum(hours[h] for h in range(9, 12))
    assert morning > 5 * night
    assert 2500 < len(population) < 3500


def test_users_never_have_two_sessions_at_once(population: Population) -> None:
    by_user: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for k in population.session_keys():
        segs = population.segments(k.session_id)
        by_user[k.client_user_id].append((segs[0].start, segs[-1].end))
    assert any(len(v) > 1 for v in by_user.values())  # repeat customers
    for spans in by_user.values():
        spans.sort()
        for (_, end), (start, _) in pairwise(spans):
            assert end <= start


def test_state_at_and_current_session_edges(population: Population) -> None:
    key = population.session_keys()[500]
    segs = population.segments(key.session_id)
    first, last = segs[0], segs[-1]
    assert population.state_at(key.session_id, first.start - 0.001) is None
    assert population.state_at(key.session_id, first.start) == first
    assert population.state_at(key.session_id, last.end - 0.001) == last
    assert population.state_at(key.session_id, last.end) is None
    assert population.state_at("no-such-session", first.start) is None
    pair = (key.client_user_id, key.customer_service_id)
    assert population.current_session(*pair, first.start) == first
    assert population.current_session(*pair, last.end) is None
    assert population.current_session("nobody", key.customer_service_id, first.start) is None
    assert population.current_session(key.client_user_id, "@other", first.start) is None


def test_truth_rows_are_the_segments(population: Population) -> None:
    rows = list(population.truth_rows())
    assert len(rows) == sum(len(population.segments(k.session_id))
                            for k in population.session_keys())
    assert set(rows[0]) == {"session_id", "client_user_id", "customer_service_id", "state",
                            "agent_id", "started_at", "ended_at"}
    assert all(r["started_at"] < r["ended_at"] for r in rows)
    assert {r["customer_service_id"] for r in rows} == set(
        population.config.customer_service_ids)


def test_bad_population_config_is_refused() -> None:
    with pytest.raises(ValueError):
        PopulationConfig(agents=0)
    with pytest.raises(ValueError):
        PopulationConfig(bot_only_share=1.5)
    with pytest.raises(ValueError):
        PopulationConfig(customer_service_ids=())


def test_a_day_without_a_session(tmp_path, population: Population) -> None:
    """A small --sessions may draw none at all (Poisson arrivals): an empty day, whose truth
    table has the columns of any other day's, not a crash (`desk-sessions demo --sessions 1
    --seed 4` once ended in an IndexError)."""
    import duckdb
    from tencent_desk.demo import write_truth

    empty = Population(PopulationConfig(seed=4, sessions_per_day=1))
    assert len(empty) == 0 and empty.session_keys() == [] and list(empty.truth_rows()) == []
    assert empty.summary()["sessions"] == 0
    columns = {}
    for name, pop in (("empty", empty), ("full", population)):
        write_truth(tmp_path / f"{name}.duckdb", pop)
        with duckdb.connect(str(tmp_path / f"{name}.duckdb"), read_only=True) as con:
            columns[name] = con.sql("DESCRIBE desk_simulator.truth").fetchall()
    assert columns["empty"] == columns["full"]


@pytest.mark.slow
def test_a_large_population_builds() -> None:
    pop = Population(PopulationConfig(sessions_per_day=100_000, agents=300))
    assert 95_000 < len(pop) < 105_000
    assert len({k.session_id for k in pop.session_keys()}) == len(pop)


# ---------------------------------------------------------------- the app over HTTP


class Switch:
    """One server for the module; each test plugs in its own app."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server(population: Population):
    switch = Switch()
    switch.app = SimulatorApp(population, _config())
    # One client: building an httpx.Client costs tens of milliseconds (TLS setup).
    with serve_in_thread(switch) as url, httpx.Client(base_url=url) as client:
        yield switch, client


def _config(**overrides: Any) -> SimulatorConfig:
    return SimulatorConfig(sdkappid=SDKAPPID, identifier=ADMIN, secret_key=KEY, **overrides)


@dataclass
class Sim:
    app: SimulatorApp
    client: httpx.Client
    model_clock: VirtualClock
    auth_clock: VirtualClock
    limit_clock: VirtualClock

    def post(self, body: Any = None, *, content: bytes | None = None, path: str = URL_PATH,
             method: str = "POST", timeout: float = 10.0, **query: Any) -> httpx.Response:
        params = {"sdkappid": SDKAPPID, "identifier": ADMIN, "usersig": SIG,
                  "random": 4242, "contenttype": "json"}
        params.update(query)
        params = {k: v for k, v in params.items() if v is not None}
        if content is None:
            content = json.dumps({"SessionId": "x"} if body is None else body).encode()
        return self.client.request(method, path, params=params, content=content,
                                   timeout=timeout)

    def answer(self, body: Any = None, **kw: Any) -> dict[str, Any]:
        r = self.post(body, **kw)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        doc = r.json()
        assert REQUEST_ID.match(doc["RequestId"])
        assert isinstance(doc["ErrorInfo"], str)
        if doc["ErrorCode"] == 0:
            assert doc["ActionStatus"] == "OK" and doc["ErrorInfo"] == ""
            assert doc.keys() >= STATE_FIELDS
        else:
            assert doc["ActionStatus"] == "FAIL" and doc["ErrorInfo"]
            assert not STATE_FIELDS & doc.keys()
        return doc

    def code(self, body: Any = None, **kw: Any) -> int:
        return self.answer(body, **kw)["ErrorCode"]


@pytest.fixture
def sim(server, population: Population):
    switch, client = server

    def make(model_at: float | None = None, **overrides: Any) -> Sim:
        model = VirtualClock(population.config.day_start + 9 * 3600 if model_at is None
                             else model_at)
        auth, limit = VirtualClock(time.time()), VirtualClock(1000.0)
        switch.app = SimulatorApp(population, _config(**overrides), model_clock=model,
                                  auth_clock=auth, limit_clock=limit)
        return Sim(switch.app, client, model, auth, limit)

    return make


def _in_progress_segments(pop: Population) -> dict[str, list]:
    found: dict[str, list] = defaultdict(list)
    for k in pop.session_keys():
        for s in pop.segments(k.session_id):
            found[s.state].append(s)
    return found


def test_answers_match_the_truth_across_the_day(sim, population: Population) -> None:
    by_state = _in_progress_segments(population)
    # Mid-segment instants of every state, plus instants where sessions are over or unborn.
    probes = [(s.start + (s.end - s.start) / 2, s.session_id)
              for segs in by_state.values() for s in segs[::40]]
    keys = population.session_keys()
    probes += [(population.ended_at(k.session_id), k.session_id) for k in keys[::300]]
    probes += [(population.config.day_start, k.session_id) for k in keys[::300]]
    probes.sort()
    s = sim(model_at=probes[0][0], spelling="english")
    seen = Counter()
    for t, sid in probes:
        s.model_clock.set(t)
        truth = population.state_at(sid, t)
        doc = s.answer({"SessionId": sid})
        if truth is None:
            assert doc["ErrorCode"] == 141005
            seen["ended"] += 1
            continue
        assert doc["SessionId"] == sid
        assert states.normalize(doc["CurrentState"]) == truth.state
        # AgentId exactly in WaitingForAgentAnswering and Agent.
        assert doc["AgentId"] == (truth.agent_id or "")
        assert bool(doc["AgentId"]) == (truth.state in states.WITH_AGENT)
        seen[truth.state] += 1
    assert set(seen) == {*states.WITH_AGENT, states.CHATBOT, states.QUEUING, "ended"}


def test_pair_form_names_the_current_session(sim, population: Population) -> None:
    # A user with two sessions with the same account: the pair follows them through the day.
    sessions: dict[tuple[str, str], list[str]] = defaultdict(list)
    for k in population.session_keys():
        sessions[(k.client_user_id, k.customer_service_id)].append(k.session_id)
    (user, cs), ids = next((p, v) for p, v in sessions.items() if len(v) > 1)
    first, second = population.segments(ids[0]), population.segments(ids[1])
    s = sim(model_at=first[0].start, spelling="english")
    pair = {"ClientUserId": user, "CustomerServiceId": cs}
    for seg in (first[0], first[-1], second[0], second[-1]):
        s.model_clock.set(seg.start)
        doc = s.answer(pair)
        assert (doc["SessionId"], states.normalize(doc["CurrentState"])) == (
            seg.session_id, seg.state)
        assert doc["AgentId"] == (seg.agent_id or "")
    s.model_clock.set(second[-1].end)
    doc = s.answer(pair)
    assert doc == {**doc, "ErrorCode": 0, "SessionId": "", "CurrentState": "Not in session",
                   "AgentId": ""}
    assert s.answer({"ClientUserId": "stranger", "CustomerServiceId": cs})["SessionId"] == ""


def test_session_id_wins_over_the_pair(sim, population: Population) -> None:
    a, b = population.session_keys()[1200], population.session_keys()[1201]
    seg = population.segments(a.session_id)[0]
    s = sim(model_at=seg.start)
    doc = s.answer({"SessionId": a.session_id, "ClientUserId": b.client_user_id,
                    "CustomerServiceId": b.customer_service_id})
    assert doc["SessionId"] == a.session_id


def _queuing(pop: Population):
    return next(s for k in pop.session_keys() for s in pop.segments(k.session_id)
                if s.state == states.QUEUING)


@pytest.mark.parametrize(("spelling", "queuing", "not_in_session"), [
    ("english", {"Queuing"}, {"Not in session"}),
    ("chinese", {"Queueing"}, {"NotInSession"}),
    ("mixed", {"Queuing", "Queueing"}, {"Not in session", "NotInSession"}),
])
def test_spellings(sim, population: Population, spelling: str, queuing: set[str],
                   not_in_session: set[str]) -> None:
    seg = _queuing(population)
    s = sim(model_at=seg.start, spelling=spelling)
    got_q = {s.answer({"SessionId": seg.session_id})["CurrentState"] for _ in range(16)}
    got_n = {s.answer({"ClientUserId": "nobody", "CustomerServiceId": "@cs_sales"})[
        "CurrentState"] for _ in range(16)}
    assert (got_q, got_n) == (queuing, not_in_session)


def _official(sdkappid: int = SDKAPPID, key: str = KEY, who: str = ADMIN) -> str:
    return TLSSigAPIv2(sdkappid, key).gen_sig(who)


@pytest.mark.parametrize(("query", "code"), [
    ({"path": "/v4/desk_http_svc/get_session_states"}, 60009),
    ({"path": "/"}, 60009),
    ({"method": "GET"}, 60002),
    ({"method": "PUT"}, 60002),
    ({"sdkappid": None}, 60012),
    ({"sdkappid": ""}, 60012),
    ({"sdkappid": 1400000002}, 60006),
    ({"sdkappid": "abc"}, 60006),
    ({"identifier": "someone"}, 60010),
    ({"identifier": None}, 60010),
    ({"usersig": None}, 70002),
    ({"usersig": ""}, 70002),
    ({"usersig": "not-a-sig"}, 70003),
    ({"usersig": SIG[: len(SIG) // 2]}, 70003),
    ({"usersig": _official(key="another key")}, 70009),
    ({"usersig": _official(who="someone")}, 70013),
    ({"usersig": _official(sdkappid=1400000002)}, 70014),
    ({"random": None}, 60002),
    ({"random": ""}, 60002),
    ({"random": -1}, 60002),
    ({"random": 4294967296}, 60002),
    ({"random": "12a"}, 60002),
    ({"random": "٣"}, 60002),  # a digit, but not an ASCII one
    ({"contenttype": None}, 60002),
    ({"contenttype": "JSON"}, 60002),
    ({"contenttype": "xml"}, 60002),
    ({"content": b"not json"}, 60003),
    ({"content": b""}, 60003),
    ({"content": b"[1, 2]"}, 60003),
    ({"content": b'"SessionId"'}, 60003),
    ({"content": b'{"SessionId": "\xff"}'}, 60003),
    ({"content": b"[" * 50_000}, 60003),
    ({"content": b'{"SessionId": "' + b"x" * 70_000 + b'"}'}, 60003),
])
def test_request_errors(sim, query: dict[str, Any], code: int) -> None:
    s = sim()
    assert s.code(**query) == code
    assert s.app.stats.codes == {code: 1}
    assert len(s.app.stats.admitted) == 0


def test_edge_values_that_pass(sim) -> None:
    s = sim()
    for rnd in (0, 4294967295, "0000000001"):
        assert s.code(random=rnd) == 141005
    assert s.code(usersig=_official(key=KEY)) == 141005


def test_checks_run_in_the_documented_order(sim) -> None:
    s = sim()
    bad_sig = "garbage"
    assert s.code(path="/x", method="GET") == 60009
    assert s.code(method="GET", sdkappid=None) == 60002
    assert s.code(sdkappid=1, identifier="x", usersig=bad_sig) == 60006
    assert s.code(identifier="x", usersig=bad_sig) == 60010
    assert s.code(usersig=bad_sig, random=-1) == 70003
    assert s.code(random=-1, contenttype="xml") == 60002
    assert s.code(content=b"nope", contenttype="xml") == 60002
    assert s.code(content=b"nope") == 60003


def test_expired_usersig_is_70001_and_verified_sigs_are_cached(sim, monkeypatch) -> None:
    calls = []
    real = usersig.verify

    def counting(*args: Any, **kw: Any) -> usersig.Verdict:
        calls.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(usersig, "verify", counting)
    s = sim()
    for _ in range(5):
        assert s.code() == 141005
    assert len(calls) == 1
    s.auth_clock.advance(181 * 86400)  # the official signer's sigs live 180 days
    assert s.code() == 70001
    assert s.code() == 70001
    assert len(calls) == 3  # an expired sig is not served from the cache


@pytest.mark.parametrize(("body", "code"), [
    ({}, 141004),
    ({"ClientUserId": "user000001"}, 141004),
    ({"CustomerServiceId": "@cs_sales"}, 141004),
    ({"SessionId": 5}, 141004),
    ({"SessionId": None}, 141004),
    ({"SessionId": ""}, 141004),
    ({"SessionId": ["x"]}, 141004),
    ({"ClientUserId": 1, "CustomerServiceId": "@cs_sales"}, 141004),
    ({"ClientUserId": "user000001", "CustomerServiceId": {"id": 1}}, 141004),
    ({"ClientUserId": "", "CustomerServiceId": "@cs_sales"}, 141004),
    ({"SessionId": "b0f4ca12-4850-4218-a284-efe679a87066"}, 141005),
])
def test_body_errors(sim, body: dict, code: int) -> None:
    assert sim().code(body) == code


def test_ended_and_unborn_sessions_are_141005(sim, population: Population) -> None:
    key = population.session_keys()[1500]
    segs = population.segments(key.session_id)
    s = sim(model_at=segs[0].start - 1)
    assert s.code({"SessionId": key.session_id}) == 141005
    s.model_clock.set(segs[0].start)
    assert s.code({"SessionId": key.session_id}) == 0
    s.model_clock.set(segs[-1].end)
    assert s.code({"SessionId": key.session_id}) == 141005


def test_frequency_window(sim) -> None:
    s = sim(rate_limit=5)
    assert [s.code() for _ in range(6)] == [141005] * 5 + [60007]
    s.limit_clock.advance(0.999)
    assert s.code() == 60007
    s.limit_clock.advance(0.001)
    assert s.code() == 141005
    # Throttled calls do not fill the window: 3 admitted at t, 2 admitted + 2 throttled at
    # t+0.5; at t+1 the first 3 leave and 3 more fit.
    s = sim(rate_limit=5)
    assert [s.code() for _ in range(3)] == [141005] * 3
    s.limit_clock.advance(0.5)
    assert [s.code() for _ in range(4)] == [141005] * 2 + [60007] * 2
    s.limit_clock.advance(0.5)
    assert [s.code() for _ in range(4)] == [141005] * 3 + [60007]
    assert s.app.stats.max_in_window() == 5
    assert s.app.stats.codes == {141005: 8, 60007: 3}
    s.app.reset_stats()
    assert s.app.stats.max_in_window() == 0 and not s.app.stats.codes


def test_max_in_window() -> None:
    stats = Stats()
    stats.admitted.extend([0.0, 0.1, 0.5, 0.99, 1.0, 1.2, 3.0])
    assert stats.max_in_window() == 4
    assert stats.max_in_window(0.2) == 2
    assert stats.max_in_window(10) == 7


def _fault(r: httpx.Response) -> str | None:
    return r.headers.get(FAULT_HEADER.decode())


def test_internal_error_and_throttle_faults(sim) -> None:
    s = sim(internal_error=1.0)
    r = s.post()
    assert (r.json()["ErrorCode"], _fault(r)) == (141002, "internal_error")
    s = sim(throttle=1.0)
    r = s.post()
    assert (r.json()["ErrorCode"], _fault(r)) == (60007, "throttle")
    assert s.app.stats.faults == {"throttle": 1}
    assert len(s.app.stats.admitted) == 1  # a fault happens to an admitted call


@pytest.mark.parametrize(("fault", "status", "text"), [
    ("http_502", 502, "502 Bad Gateway"),
    ("http_503", 503, "503 Service Temporarily Unavailable"),
    ("non_json", 200, "<html>"),
])
def test_gateway_pages(sim, fault: str, status: int, text: str) -> None:
    r = sim(**{fault: 1.0}).post()
    assert (r.status_code, _fault(r)) == (status, fault)
    assert r.headers["content-type"] == "text/html"
    assert text in r.text
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_truncated_body(sim) -> None:
    s = sim(truncated=1.0)
    r = s.post()
    assert r.status_code == 200 and r.text.startswith('{"ActionStatus":"FAIL"')
    with pytest.raises(json.JSONDecodeError):
        r.json()
    assert not s.app.stats.codes  # a cut answer is a fault, not an answer


def test_drop_closes_the_connection(sim) -> None:
    s = sim(drop=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        s.post()
    assert s.app.stats.faults == {"drop": 1}


def test_slow_answers_outlast_a_client_timeout(sim) -> None:
    with pytest.raises(httpx.ReadTimeout):
        sim(slow=1.0, slow_s=30.0).post(timeout=0.2)
    r = sim(slow=1.0, slow_s=0.01).post()
    assert (r.json()["ErrorCode"], _fault(r)) == (141005, "slow")


def test_latency_still_answers(sim) -> None:
    assert sim(latency_s=0.001, latency_jitter_s=0.001).code() == 141005


def test_chaos_shapes(sim, population: Population) -> None:
    seg = population.segments(population.session_keys()[1000].session_id)[-1]
    s = sim(model_at=seg.start, chaos=1.0, seed=11)
    seen = set()
    for _ in range(120):
        r = s.post({"SessionId": seg.session_id})
        assert r.status_code == 200
        shape = _fault(r).removeprefix("chaos:")
        seen.add(shape)
        _check_chaos(shape, r.content)
    assert seen == set(CHAOS_SHAPES)
    assert sum(s.app.stats.chaos.values()) == s.app.stats.faults["chaos"] == 120


def _check_chaos(shape: str, raw: bytes) -> None:
    """Each shape breaks what a careless client would assume."""
    if shape == "empty":
        assert raw == b""
    elif shape == "invalid_utf8":
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    elif shape == "deep_nesting":
        with pytest.raises(RecursionError):
            json.loads(raw)
    elif shape == "nan":
        with pytest.raises(ValueError):
            json.loads(raw, parse_constant=_refuse)
    elif shape == "duplicate_keys":
        assert raw.count(b'"ErrorCode"') == 2
    elif shape == "not_object":
        assert not isinstance(json.loads(raw), dict)
    else:
        doc = json.loads(raw)
        assert isinstance(doc, dict)
        if shape == "huge":
            assert len(raw) > 1 << 20
        elif shape == "missing_fields":
            assert set(doc) < {"ActionStatus", "ErrorInfo", "ErrorCode", "RequestId",
                               "SessionId", "CurrentState", "AgentId"}
        elif shape == "unknown_state":
            assert states.normalize(doc["CurrentState"]) == states.UNKNOWN
        elif shape == "unknown_code":
            assert doc["ErrorCode"] not in (0, 141002, 141004, 141005)
        else:
            assert shape == "wrong_types"
            expected = {"ActionStatus": str, "ErrorCode": int, "SessionId": str,
                        "CurrentState": str, "AgentId": str}
            assert any(type(doc[k]) is not t for k, t in expected.items())


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def test_mixed_faults_are_counted(sim) -> None:
    s = sim(internal_error=0.2, throttle=0.2, truncated=0.2, seed=5)
    kinds = Counter(_fault(s.post()) for _ in range(200))
    assert set(kinds) == {None, "internal_error", "throttle", "truncated"}
    assert s.app.stats.faults == {k: v for k, v in kinds.items() if k}
    assert s.app.stats.codes[141005] == kinds[None]


def test_simulator_config_is_checked() -> None:
    with pytest.raises(ValueError):
        _config(drop=0.6, chaos=0.6)
    with pytest.raises(ValueError):
        _config(http_502=-0.1)
    with pytest.raises(ValueError):
        _config(spelling="french")
    assert KEY not in repr(_config())


# ---------------------------------------------------------------- serving helpers


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
def test_non_loopback_hosts_are_refused(population: Population, host: str) -> None:
    app = SimulatorApp(population, _config())
    with pytest.raises(ValueError, match="loopback"), serve_in_thread(app, host):
        pass
    with pytest.raises(ValueError, match="loopback"):
        serve(app, host, 8000)


def test_build_app_runs_a_model_clock(population: Population) -> None:
    start = population.config.day_start + 12 * 3600
    app = build_app(_config(), population, speed=0.0, start=start)
    assert app.model_clock.time() == start
    fast = build_app(_config(), population, speed=1000.0)
    assert fast.model_clock.time() >= population.config.day_start + 9 * 3600


def test_write_seed_csv(tmp_path, population: Population) -> None:
    path = tmp_path / "seed.csv"
    n = write_seed_csv(population, path, pair_share=0.5)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n
    assert list(rows[0]) == ["session_id", "client_user_id", "customer_service_id"]
    with_id = [r for r in rows if r["session_id"]]
    pairs_only = [r for r in rows if not r["session_id"]]
    assert [r["session_id"] for r in with_id] == [k.session_id for k in population.session_keys()]
    distinct = {(k.client_user_id, k.customer_service_id) for k in population.session_keys()}
    assert len(pairs_only) == round(len(distinct) * 0.5)
    assert {(r["client_user_id"], r["customer_service_id"]) for r in pairs_only} <= distinct
