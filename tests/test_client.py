"""The client against the simulator over real loopback HTTP, and its pure parts."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from tencent_desk.api import codes, states
from tencent_desk.api.client import ClientConfig, FatalError, Key, base_urls, parse
from tencent_desk.api.codes import Action
from tencent_desk.api.usersig import UserSigProvider
from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.errors import ConfigError
from tencent_desk.job.rows import state_of

from .conftest import ADMIN, SDKAPPID, SECRET_KEY, make_client
from .support.harness import closed_port

# Every case on each HTTP client a user can choose (tests/conftest.py TRANSPORTS).
pytestmark = pytest.mark.usefixtures("transport")


def _ask(client, keys):
    async def go():
        async with client:
            return await client.get_many(keys)
    return asyncio.run(go())


def _active_keys(sim, n=40):
    t = sim.clock.time()
    pop = sim.population
    keys = [k for k in pop.session_keys() if pop.state_at(k.session_id, t)]
    assert len(keys) >= n // 2, "the simulated day should have live sessions at 11:00"
    return keys[:n]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx-aiohttp", "httpx"])
def test_answers_match_the_simulators_truth_by_session_and_by_pair(simulator, transport):
    sim = simulator()
    live = _active_keys(sim)
    ended = [k for k in sim.population.session_keys()
             if sim.population.ended_at(k.session_id) < sim.clock.time()][:10]
    keys = [Key(session_id=k.session_id) for k in live + ended]
    keys += [Key(client_user_id=k.client_user_id, customer_service_id=k.customer_service_id)
             for k in live[:10]]
    answers = _ask(make_client(sim.url, transport=transport), keys)
    assert len(answers) == len(keys)
    t = sim.clock.time()
    for a in answers:
        sid = a.key.session_id or a.session_id
        truth = sim.population.state_at(sid, t) if sid else None
        if truth is None:
            assert a.code == codes.SESSION_ENDED and state_of(a) == states.ENDED
            continue
        assert a.code == 0 and state_of(a) == truth.state
        assert (a.agent_id or None) == truth.agent_id
        assert a.session_id == truth.session_id
        assert a.request_id and a.request_id.startswith("Id-")
        assert a.attempts == 1 and a.latency_ms > 0


def test_every_documented_spelling_normalizes():
    spellings = {"Chatbot": states.CHATBOT, "Queuing": states.QUEUING,
                 "Queueing": states.QUEUING, "WaitingForAgentAnswering":
                 states.WAITING_FOR_AGENT, "Agent": states.AGENT,
                 "Not in session": states.NOT_IN_SESSION, "NotInSession": states.NOT_IN_SESSION,
                 "Transferring": states.UNKNOWN, "": states.UNKNOWN}
    for raw, state in spellings.items():
        assert states.normalize(raw) == state
    assert states.normalize(7) == states.UNKNOWN


@pytest.mark.parametrize(("status", "body", "code", "action"), [
    (200, {"ErrorCode": 0, "CurrentState": "Agent"}, 0, Action.OK),
    (200, {"ErrorCode": 141005}, 141005, Action.ENDED),
    (200, {"ErrorCode": 141004}, 141004, Action.REJECTED),
    (200, {"ErrorCode": 141002}, 141002, Action.TRANSIENT),
    (200, {"ErrorCode": 141000}, 141000, Action.FATAL),
    (200, {"ErrorCode": 60007}, 60007, Action.THROTTLED),
    (200, {"ErrorCode": "60019"}, 60019, Action.THROTTLED),
    (200, {"ErrorCode": 70001}, 70001, Action.RENEW_SIG),
    (200, {"ErrorCode": 70052}, 70052, Action.RENEW_SIG),
    (200, {"ErrorCode": 60020}, 60020, Action.FATAL),
    (200, {"ErrorCode": 70013}, 70013, Action.FATAL),
    (200, {"ErrorCode": 99999}, 99999, Action.REJECTED),
    (200, {"ErrorCode": None}, codes.BAD_ANSWER, Action.REJECTED),
    (200, [1, 2], codes.BAD_BODY, Action.TRANSIENT),
    (429, {}, -1429, Action.THROTTLED),
    (502, "<html>bad gateway</html>", -1502, Action.TRANSIENT),
    (404, "", -1404, Action.FATAL),
])
def test_one_table_classifies_every_answer(status, body, code, action):
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    answer = parse(Key(session_id="s"), status, content)
    assert (answer.code, answer.action) == (code, action)


def test_truncated_and_non_json_bodies_are_transient():
    for content in (b'{"ErrorCode": 0, "Curr', b"<html>", b"", b"\xff\xfe"):
        assert parse(Key(session_id="s"), 200, content).action is Action.TRANSIENT


@pytest.mark.parametrize(("kwargs", "code", "hint"), [
    ({"secret_key": "not-the-key"}, 70009, "secret_key"),
    ({"identifier": "someone"}, 60010, "administrator"),
    ({"sdkappid": 1400999999}, 60006, "sdkappid"),
])
def test_fatal_answers_stop_with_what_to_fix_and_no_secret(simulator, kwargs, code, hint):
    sim = simulator()
    sdkappid = kwargs.get("sdkappid", SDKAPPID)
    identifier = kwargs.get("identifier", ADMIN)
    sigs = UserSigProvider(sdkappid, identifier, secret_key=kwargs.get("secret_key", SECRET_KEY))
    client = make_client(sim.url, sigs)
    client.config.sdkappid, client.config.identifier = sdkappid, identifier
    with pytest.raises(FatalError) as info:
        _ask(client, [Key(session_id=f"s{i}") for i in range(20)])
    assert info.value.code == code
    text = str(info.value)
    assert hint in text
    for secret in sigs.secrets():
        assert secret not in text and secret not in repr(client) and secret not in repr(sigs)


def test_half_a_pair_is_rejected_for_its_row_only(simulator):
    sim = simulator()
    [a] = _ask(make_client(sim.url), [Key(client_user_id="u1")])
    assert (a.code, a.action, state_of(a)) == (141004, Action.REJECTED, states.ERROR)


def test_transient_faults_are_retried_until_answered(simulator):
    sim = simulator(internal_error=0.15, http_502=0.1, truncated=0.05, non_json=0.05, seed=3)
    keys = [Key(session_id=k.session_id) for k in _active_keys(sim, 60)]
    client = make_client(sim.url, max_attempts=12)
    answers = _ask(client, keys)
    assert sorted(a.key.session_id for a in answers) == sorted(k.session_id for k in keys)
    assert all(a.code == 0 for a in answers)
    assert client.stats.retries > 0 and max(a.attempts for a in answers) > 1


def test_attempts_are_bounded_and_the_last_code_is_kept(simulator):
    sim = simulator(internal_error=1.0)
    [a] = _ask(make_client(sim.url, max_attempts=3), [Key(session_id="x")])
    assert (a.code, a.attempts, state_of(a)) == (141002, 3, states.ERROR)


def test_a_closed_main_domain_falls_back_to_the_backup(simulator):
    sim = simulator()
    dead = f"http://127.0.0.1:{closed_port()}"
    client = make_client((dead, sim.url))
    answers = _ask(client, [Key(session_id=k.session_id) for k in _active_keys(sim, 10)])
    assert all(a.code == 0 for a in answers)
    assert client.stats.fallbacks == 1 and client.base_url == sim.url


def test_an_expired_usersig_is_renewed_once_and_the_run_goes_on(simulator):
    # The server's clock runs 60 s ahead: a sig the client thinks fresh is expired there,
    # and a renewed one (signed later) is accepted.
    wall = VirtualClock(1_800_000_000)
    server = VirtualClock(1_800_000_060)
    sim = simulator(auth_clock=server)
    sigs = UserSigProvider(SDKAPPID, ADMIN, secret_key=SECRET_KEY, expire=100, wall=wall.time)
    sigs.current()
    wall.advance(50)
    server.advance(50)
    client = make_client(sim.url, sigs)
    answers = _ask(client, [Key(session_id=k.session_id) for k in _active_keys(sim, 10)])
    assert all(a.code == 0 for a in answers)
    assert client.stats.renewed_sigs == 1


def test_an_expired_ready_made_usersig_stops_the_run(simulator):
    sim = simulator(auth_clock=VirtualClock(4_000_000_000))
    ready = UserSigProvider(SDKAPPID, ADMIN, usersig=UserSigProvider(
        SDKAPPID, ADMIN, secret_key=SECRET_KEY).current())
    with pytest.raises(FatalError, match="ready-made usersig has expired"):
        _ask(make_client(sim.url, ready), [Key(session_id="s")])


def test_rate_limit_holds_in_every_sliding_second(simulator):
    sim = simulator()
    client = make_client(sim.url, max_qps=40, max_concurrency=8)
    client.send_times = []
    keys = [Key(session_id=f"s{i}") for i in range(100)]
    _ask(client, keys)
    times = client.send_times
    assert len(times) == 100
    assert _max_in_window(times, 1.0) <= 40


def _max_in_window(times, span):
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_throttling_lowers_the_rate_and_every_key_still_lands(simulator):
    sim = simulator(throttle=0.3, seed=5)
    client = make_client(sim.url, max_qps=2000, max_throttled_attempts=30)
    keys = [Key(session_id=k.session_id) for k in _active_keys(sim, 40)]
    answers = _ask(client, keys)
    assert all(a.code == 0 for a in answers)
    assert client.stats.throttled > 0 and client.limiter.cuts >= 1
    assert client.limiter.rate < 2000


@pytest.mark.parametrize("transport", ["aiohttp", "httpx-aiohttp", "httpx"])
def test_no_log_record_or_error_carries_the_usersig_or_key(simulator, caplog, transport):
    sim = simulator(http_502=0.2, drop=0.1, seed=9)
    client = make_client(sim.url, max_attempts=10, transport=transport)
    sigs = client._sigs
    # httpx's own level too: a CLI run in this worker before (cli.setup_logging) quiets it
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        answers = _ask(client, [Key(session_id=f"s{i}") for i in range(30)])
    secrets = (*sigs.secrets(), SECRET_KEY)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    if transport != "aiohttp":  # httpx logs every URL: scrubbed
        assert "usersig=<redacted>" in text
    for secret in secrets:
        assert secret not in text
        assert all(secret not in (a.error_info or "") for a in answers)


def test_plain_http_is_only_for_loopback_and_regions_resolve():
    assert base_urls("singapore") == ("https://adminapisgp.im.qcloud.com",
                                      "https://adminapisgp.my-imcloud.com")
    assert base_urls(None, "http://127.0.0.1:8000/") == ("http://127.0.0.1:8000",)
    for bad in ("http://console.tim.qq.com", "ftp://x", "https://h/?usersig=1"):
        with pytest.raises(ConfigError):
            base_urls(None, bad)
    with pytest.raises(ConfigError, match="unknown region"):
        base_urls("mars")


@pytest.mark.parametrize("max_qps, max_concurrency, expected", [
    (100, None, 50), (1000, None, 500),  # max_qps at half-second answers (Little's law)
    (5, None, 16), (50_000, None, 512),  # within bounds
    (1000, 24, 24),  # as set
])
def test_calls_in_flight_follow_max_qps_unless_set(max_qps, max_concurrency, expected):
    config = ClientConfig(SDKAPPID, ADMIN, ("http://127.0.0.1:1",), max_qps=max_qps,
                          max_concurrency=max_concurrency)
    assert config.concurrency == expected
