"""The receiver of ``Desk.SessionEventNotify``: hostile senders, repeats, other apps,
privacy, a receiver and a job killed with -9, and the job's seed from events.

Real parts: the receiver served by uvicorn on loopback (in a thread, or the real
``desk-sessions listen`` in a child), real spool files, the real job into real DuckDB
files. The job's crash points come from ``tests/support/crashpoint`` (test machinery).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tencent_desk.analysis import event_metrics
from tencent_desk.api import callback
from tencent_desk.core import keys
from tencent_desk.core.clock import VirtualClock
from tencent_desk.intake import events
from tencent_desk.intake.receiver import Receiver, ReceiverConfig
from tencent_desk.intake.spool import read_records, spool_dir
from tencent_desk.models import snapshot
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)
from tencent_desk.simulator.callbacks import Callback, Knobs, Sender, plan

from .support import cli
from .support.cli import CLI
from .support.harness import ADMIN, SDKAPPID, SECRET_KEY
from .support.targets import Target

CRASHPOINT = str(Path(__file__).resolve().parent / "support" / "crashpoint")
TOKEN = "webhook-t0ken-5e1f9c2a"
SECRET_TEXT = "my card number is 4111-SECRET-PRIVATE"
DAY = 1_767_571_200  # 2026-01-05, long past: no session from it is asked about


def body(session_id: str, t_ms: int, event: str = "ChatBot.UserSendMsg", **more: object
         ) -> bytes:
    doc = {"CallbackCommand": events.CALLBACK_COMMAND, "SessionId": session_id,
           "Event": event, "EventTime": t_ms, "ChannelType": "SDK", "ClientUserId": "u1",
           "CustomerServiceId": "@cs", "MsgKey": f"k-{t_ms}", "IsContactUser": False,
           "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": SECRET_TEXT}}],
           "CloudCustomData": "custom " + SECRET_TEXT, **more}
    return json.dumps(doc).encode()


def signed() -> dict[str, str]:
    now = str(int(time.time()))
    return {"RequestTime": now, "Sign": callback.expected_sign(TOKEN, now)}


def valid_callbacks(n: int, sessions: int = 500, seed: int = 1) -> list[Callback]:
    rng = random.Random(seed)
    return [Callback(0.0, f"req-{seed}-{i:07d}",
                     body(f"s-{rng.randrange(sessions):05d}", DAY * 1000 + i * 37))
            for i in range(n)]


def as_target(where: Path | Target) -> Target:
    """A DuckDB file's path stands for the DuckDB target of its folder."""
    return where if isinstance(where, Target) else Target("duckdb", where.parent)


def loaded(where: Path | Target) -> Counter[str]:
    return Counter(r[0] for r in as_target(where).query(
        "SELECT request_id FROM tencent_desk.session_events"))


@pytest.fixture
def desk(population: Population) -> Iterator[str]:
    app = SimulatorApp(population, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY))
    with serve_in_thread(app) as url:
        yield url


def run_job(where: Path | Target, url: str, seed: str | None = None,
            clock: VirtualClock | None = None, max_age_h: float = 12.0) -> dict:
    target = as_target(where)
    return run(RunOptions(seed=seed, **target.options(),
                          pipelines_dir=str(target.folder / "dlt"),
                          overrides={"api_url": url, "sdkappid": SDKAPPID,
                                     "identifier": ADMIN, "secret_key": SECRET_KEY,
                                     "max_qps": 5000, "max_concurrency": 16},
                          progress=False, max_session_age_s=max_age_h * 3600), clock=clock)


# -- pure parts ------------------------------------------------------------------------
def test_record_keeps_metadata_only_by_default() -> None:
    doc = json.loads(body("s-1", 1725540020017, AgentId="a@x", SatisfactionSelected=5))
    record = events.to_record(doc, "r1", 5)
    assert record["session_id"] == "s-1" and record["event_time"] == 1725540020017
    assert record["agent_id"] == "a@x" and record["satisfaction"] == 5
    assert SECRET_TEXT not in json.dumps(record)
    assert set(record) == set(events.COLUMNS)
    kept = events.to_record(doc, "r1", 5, keep_content=True)
    assert SECRET_TEXT in kept["msg_body"] and SECRET_TEXT in kept["cloud_custom_data"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"SessionId": None}, "session_id"), ({"SessionId": ""}, "session_id"),
    ({"SessionId": 12}, "session_id"), ({"EventTime": None}, "event_time"),
    ({"EventTime": "soon"}, "event_time"), ({"EventTime": True}, "event_time"),
    ({"EventTime": -5}, "event_time"), ({"CallbackCommand": "Other.Cmd"}, "command")])
def test_record_refuses_what_is_no_event(change: dict, reason: str) -> None:
    doc = {**json.loads(body("s-1", 1725540020017)), **change}
    with pytest.raises(events.BadEvent) as err:
        events.to_record(doc, "r", 0)
    assert err.value.reason == reason


def test_sign_is_sha256_of_token_and_time() -> None:
    sign = callback.expected_sign("tok", "1700000000")
    assert callback.sign_ok("tok", "1700000000", sign)
    assert callback.sign_ok("tok", "1700000000", sign.upper())
    assert not callback.sign_ok("tok", "1700000001", sign)
    assert not callback.sign_ok("other", "1700000000", sign)
    assert not callback.sign_ok("tok", None, sign) and not callback.sign_ok("tok", "1", None)
    assert not callback.sign_ok("tok", "1700000000", "\u00e9" * 64)


def test_event_names_table_marks_assumptions() -> None:
    documented = {n for n, e in events.EVENT_NAMES.items() if e.documented}
    assert documented == {"SessionBegin", "ChatBot.UserSendMsg", "ChatBot.RobotSendMsg"}
    assert events.meaning("Never.Heard.Of") == "unknown"
    assert set(events.CLOSING) <= {n for n, e in events.EVENT_NAMES.items() if not e.documented}


# -- a receiver on loopback ------------------------------------------------------------
def hostile(url: str, sdkappid: int) -> list[tuple[str, int, Counter]]:
    """Requests a sender must not get stored, each with the status it must get."""
    good = {"SdkAppid": str(sdkappid), "CallbackCommand": events.CALLBACK_COMMAND,
            "contenttype": "json", "RequestID": "hostile"}
    ok_body = body("s-hostile", DAY * 1000)
    deep = b"[" * 200_000 + b"]" * 200_000
    cases = [
        ("garbage", 400, dict(params={**good, **signed()}, content=b"\x00garbage{{")),
        ("2 MB", 413, dict(params={**good, **signed()}, content=b"{" + b" " * (2 << 20))),
        ("content type", 415, dict(params={**good, **signed()}, content=ok_body,
                                   headers={"Content-Type": "text/plain"})),
        ("bad token", 401, dict(params={**good, "RequestTime": "1", "Sign": "0" * 64},
                                content=ok_body)),
        ("no token", 401, dict(params=good, content=ok_body)),
        ("deep nesting", 400, dict(params={**good, **signed()}, content=deep)),
        ("invalid utf-8", 400, dict(params={**good, **signed()},
                                    content=b'{"SessionId": "\xff\xfe", "EventTime": 1}')),
        ("lone surrogate", 400, dict(params={**good, **signed()},
                                     content=b'{"SessionId": "\\ud800", "EventTime": 1}')),
        ("non-ASCII Sign", 401, dict(params={**good, "RequestTime": "1", "Sign": "\u00e9" * 64},
                                     content=ok_body)),
        ("not an object", 400, dict(params={**good, **signed()}, content=b"[1, 2]")),
        ("no SessionId", 400, dict(params={**good, **signed()},
                                   content=b'{"EventTime": 1725540020017}')),
        ("no EventTime", 400, dict(params={**good, **signed()},
                                   content=b'{"SessionId": "s-x"}')),
        ("wrong command", 400, dict(params={**good, **signed(),
                                            "CallbackCommand": "State.StateChange"},
                                    content=ok_body)),
        ("other app", 403, dict(params={**good, **signed(), "SdkAppid": "1400000001"},
                                content=ok_body)),
    ]
    out = []
    with httpx.Client(timeout=30) as http:
        for name, status, kw in cases:
            headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
            got = http.post(url, headers=headers, **kw)
            out.append((name, status, Counter({got.status_code: 1})))
            assert got.json()["ActionStatus"] == "FAIL", name
        for method in ("GET", "PUT", "DELETE"):
            got = http.request(method, url, params=good)
            out.append((method, 405, Counter({got.status_code: 1})))
        assert http.get(url.rsplit("/", 1)[0] + "/healthz").status_code == 200
    return out


def sender_mistake(field: str, raw_value: str) -> bytes:
    """A valid body whose ``field`` is ``raw_value`` as written (JSON text)."""
    doc = json.loads(body("s-mistake", DAY * 1000))
    doc[field] = "@VALUE@"
    return json.dumps(doc).encode().replace(b'"@VALUE@"', raw_value.encode())


NINES = "9" * 5000
# A rating that is no whole number: the event is kept, its rating dropped (None).
UNREADABLE_RATINGS = ['"\u00b2"', f'"{NINES}"', "1e999", "NaN", "true", "[5]", '{"v": 5}',
                      str(2**31), '"5x"', '""']
# A sender's mistake in a number or a key field: (field, its JSON text, the reason).
MISTAKES = [
    ("EventTime", '"\u00b2"', "event_time"), ("EventTime", '"\u0663"', "event_time"),
    ("EventTime", f'"{"1" * 5000}"', "event_time"), ("EventTime", '"1e999"', "event_time"),
    ("EventTime", "1e999", "event_time"), ("EventTime", "NaN", "event_time"),
    ("EventTime", "-Infinity", "event_time"), ("EventTime", "1725540020017.5", "event_time"),
    ("EventTime", "true", "event_time"), ("EventTime", '{"ms": 1}', "event_time"),
    ("EventTime", "[1725540020017]", "event_time"), ("EventTime", NINES, "json"),
    ("EventTime", '" 1725540020017"', "event_time"),
    ("SatisfactionSelected", NINES, "json"),
    ("SessionId", '["s-1"]', "session_id"), ("SessionId", '{"id": "s-1"}', "session_id"),
    ("SessionId", "1e999", "session_id"),
    # a key with a control character: the seed check would refuse it on every run
    ("SessionId", '"a\\u0000b"', "session_id"), ("SessionId", '"a\\u001bb"', "session_id"),
    ("SessionId", '"a\\u007fb"', "session_id"), ("SessionId", '"a\\u0085b"', "session_id"),
    ("ClientUserId", '"u\\u0001"', "client_user_id"),
    ("CustomerServiceId", '"@cs\\u009f"', "customer_service_id"),
]


@pytest.fixture
def token_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver(ReceiverConfig(SDKAPPID, tmp_path / "spool", token=TOKEN,
                                       seal_after_s=0.05))
    with serve_in_thread(receiver) as url:
        yield receiver, url + "/desk/callback"


def test_a_senders_mistake_in_a_field_gets_a_400_with_its_reason(token_receiver) -> None:
    """A time no number (superscript digits, 5000 digits, 1e999, NaN, a list...) or a key
    with a control character is the sender's mistake: 400 and the reason, counted, stored
    nowhere; never a 5xx (Desk would retry it for ever). A rating no number costs only the
    rating: the event's times are kept."""
    receiver, url = token_receiver
    params = {"SdkAppid": str(SDKAPPID), "CallbackCommand": events.CALLBACK_COMMAND}
    with httpx.Client(timeout=30) as http:
        for n, (field, value, reason) in enumerate(MISTAKES):
            got = http.post(url, params={**params, **signed(), "RequestID": f"bad-{n}"},
                            content=sender_mistake(field, value),
                            headers={"Content-Type": "application/json"})
            assert got.status_code == 400, (field, value[:20], got.status_code, got.text)
            info = got.json()
            assert info["ActionStatus"] == "FAIL", (field, value[:20])
            assert info["ErrorInfo"].startswith(f"{reason}: "), (field, value[:20], info)
        ok = http.post(url, params={**params, **signed(), "RequestID": "good"},
                       content=sender_mistake("SatisfactionSelected", '"4"'),
                       headers={"Content-Type": "application/json"})
        assert ok.status_code == 200, ok.text
        for n, value in enumerate(UNREADABLE_RATINGS):
            kept = http.post(url, params={**params, **signed(), "RequestID": f"rating-{n}"},
                             content=sender_mistake("SatisfactionSelected", value),
                             headers={"Content-Type": "application/json"})
            assert kept.status_code == 200, (value[:20], kept.text)
    want = Counter(f"rejected:{reason}" for _, _, reason in MISTAKES)
    assert {k: v for k, v in receiver.counts.items() if k.startswith("rejected:")} == want
    assert receiver.counts["accepted"] == 1 + len(UNREADABLE_RATINGS)
    time.sleep(0.2)
    stored = spooled(receiver.config.spool)
    assert sorted((r["request_id"], r["satisfaction"]) for r in stored) == sorted(
        [("good", 4)] + [(f"rating-{n}", None) for n in range(len(UNREADABLE_RATINGS))])


def test_the_receiver_refuses_a_key_the_seed_check_would_refuse() -> None:
    """One rule for both (core/keys.py): every character the job's seed check (DuckDB's
    regular expressions) calls a control character, the receiver (Python's) refuses in a
    key at intake, and no other."""
    texts = [f"a{chr(i)}b" for i in range(0x3000) if not 0xD800 <= i < 0xE000]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (session_id VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[t] for t in texts])
    seed_refuses = {r[0] for r in con.execute(
        f"SELECT session_id FROM t WHERE {keys.control_characters_sql('session_id')}"
    ).fetchall()}
    assert len(seed_refuses) == 65  # C0 (32), DEL, C1 (32): Unicode's Cc
    for field in ("SessionId", "ClientUserId", "CustomerServiceId"):
        refused = set()
        for text in texts:
            try:
                events.to_record({"SessionId": "s", "EventTime": 1, field: text}, "r", 0)
            except events.BadEvent as exc:
                assert str(exc) == f"{field} {keys.CONTROL_CHARACTERS_REASON}"
                refused.add(text)
        assert refused == seed_refuses, field


def flood(target: Target, desk: str, n: int) -> None:
    spool = target.spool
    receiver = Receiver(ReceiverConfig(SDKAPPID, spool, token=TOKEN, seal_after_s=0.2))
    valid = valid_callbacks(n)
    rng = random.Random(5)
    repeats = [c for c in valid if rng.random() < 0.05]
    others = [Callback(0.0, f"other-{i}", c.body) for i, c in enumerate(valid)
              if rng.random() < 0.02]
    with serve_in_thread(receiver) as base:
        url = base + "/desk"
        sender = Sender(url, SDKAPPID, concurrency=16, sign=signed)
        asyncio.run(sender.send(valid + repeats))
        foreign = Sender(url, 1400000001, sign=signed)
        asyncio.run(foreign.send(others))
        results = hostile(url, SDKAPPID)
    for name, want, got in results:
        assert got == Counter({want: 1}), name
    assert sender.statuses == Counter({200: len(valid) + len(repeats)})
    assert foreign.statuses == Counter({403: len(others)})
    assert receiver.counts["accepted"] + receiver.counts["repeats"] == len(valid) + len(repeats)
    assert not list(spool.glob("active-*"))
    stored = Counter(r["request_id"] for p in spool.glob("sealed-*")
                     for r in read_records(p))
    assert set(stored) == {c.request_id for c in valid}  # nothing rejected stored
    row = run_job(target, desk)
    assert row["events_loaded"] == sum(stored.values()) and row["keys"] == 0
    assert loaded(target) == Counter({c.request_id: 1 for c in valid})
    assert not list(spool.iterdir())  # retired once loaded
    run_job(target, desk)  # a second run loads nothing again
    assert loaded(target) == Counter({c.request_id: 1 for c in valid})


def test_valid_events_land_once_and_no_rejected_request_stores_anything(target, desk
                                                                         ) -> None:
    flood(target, desk, 4000)


@pytest.mark.slow
def test_100k_events_with_repeats_other_apps_and_hostile_requests(tmp_path, desk) -> None:
    flood(as_target(tmp_path / "desk.duckdb"), desk, 100_000)


# -- the real CLI: privacy, kill -9 ----------------------------------------------------
class Listener:
    """``desk-sessions listen`` in a child process, its log in a file."""

    def __init__(self, folder: Path, target: Target | None = None, **env: str) -> None:
        self.target = target or Target("duckdb", folder)
        self.db = self.target.anchor  # what its spool is named after
        self.log_path = folder / "listen.log"
        self.env = env
        self.start()

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.proc, port = cli.start_server(
                [CLI, "listen", *self.target.listen_argv(), "--seal-after", "0.2",
                 "--log-level", "DEBUG"], log=log, **self.env)
        self.url = f"http://127.0.0.1:{port}/desk/callback"

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        cli.stop_server(self.proc)


def test_listen_without_sdkappid_says_what_to_set(tmp_path) -> None:
    env = {k: v for k, v in cli.env().items() if k != "SOURCES__TENCENT_DESK__SDKAPPID"}
    got = subprocess.run([CLI, "listen", "--database", str(tmp_path / "d.duckdb")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert got.returncode == 2
    assert cli.error_lines(got.stderr) == [
        "desk-sessions: error: missing configuration: sdkappid: set it under "
        "[sources.tencent_desk] in .dlt/config.toml or as SOURCES__TENCENT_DESK__SDKAPPID"]
    assert "Traceback" not in got.stderr


def test_listen_on_a_taken_port_says_so_in_one_line(tmp_path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        got = subprocess.run([CLI, "listen", "--database", str(tmp_path / "d.duckdb"),
                              "--port", str(port)], env=cli.env(), capture_output=True,
                             text=True, timeout=60)
    assert got.returncode == 3
    assert cli.error_lines(got.stderr) == [
        f"desk-sessions: error: cannot listen on 127.0.0.1:{port}: Address already in use: "
        "choose another --port or stop what uses it"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_listen_stopped_by_a_signal_exits_0_with_what_it_acknowledged_stored(tmp_path, sig
                                                                            ) -> None:
    """``systemctl stop`` (SIGTERM) or Ctrl-C (SIGINT) is the receiver's normal end: exit 0
    (the documented unit has no SuccessExitStatus=143), every acknowledged event on disk,
    the open segment sealed, the counts logged."""
    listener = Listener(tmp_path)
    try:
        sender = Sender(listener.url, SDKAPPID, concurrency=8, attempts=1)
        asyncio.run(sender.send(valid_callbacks(500, seed=9)))
        assert sender.statuses == Counter({200: 500})
    finally:
        listener.proc.send_signal(sig)
        code = listener.proc.wait(timeout=30)
    log = listener.log_path.read_text()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "desk-sessions: error" not in log, log[-3000:]
    folder = spool_dir(listener.db)
    assert not list(folder.glob("active-*"))  # sealed on the way out
    assert {r["request_id"] for r in spooled(folder)} == set(sender.acknowledged)
    assert "500 accepted" in [line for line in log.splitlines() if "callbacks:" in line][-1]


def test_message_text_is_stored_nowhere_by_default(tmp_path, desk, target) -> None:
    listener = Listener(tmp_path, target, SOURCES__TENCENT_DESK__CALLBACK_TOKEN=TOKEN)
    try:
        sender = Sender(listener.url, SDKAPPID, sign=signed)
        asyncio.run(sender.send(valid_callbacks(300)))
        with httpx.Client() as http:  # a rejected one carrying the text, too
            http.post(listener.url, params={"SdkAppid": "1", "Sign": TOKEN},
                      content=body("s-1", DAY * 1000))
        spooled = b"".join(p.read_bytes() for p in spool_dir(listener.db).iterdir())
        assert len(spooled) > 0, (sender.statuses, listener.log_path.read_text()[-2000:])
    finally:
        listener.stop()
    job = cli.run([CLI, "run", *target.argv(), "--api-url", desk,
                   "--pipelines-dir", str(tmp_path / "dlt"), "--no-progress",
                   "--log-level", "DEBUG"], cwd=tmp_path, **target.env())
    assert job.returncode == 0, job.stderr
    assert sum(loaded(target).values()) == 300
    written = spooled + job.stdout.encode() + job.stderr.encode() + target.text() + b"".join(
        p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in (SECRET_TEXT, "4111-SECRET", TOKEN):
        assert secret.encode() not in written, secret


@pytest.mark.slow  # chaos: kill -9 under load
def test_receiver_killed_under_load_loses_no_acknowledged_event(tmp_path, desk) -> None:
    listener = Listener(tmp_path)
    callbacks = valid_callbacks(8000, seed=3)
    sender = Sender(listener.url, SDKAPPID, concurrency=16, attempts=1)

    def kill_under_load() -> None:
        while len(sender.acknowledged) < 2000:
            time.sleep(0.001)
        listener.kill9()

    killer = threading.Thread(target=kill_under_load)
    killer.start()
    asyncio.run(sender.send(callbacks))
    killer.join()
    acked_before = set(sender.acknowledged)
    assert 0 < len(acked_before) < len(callbacks), "the kill must come under load"
    # The job may run while no receiver is up: it seals what the dead one left open.
    first = cli.run([CLI, "run", "--database", str(listener.db), "--api-url", desk,
                     "--pipelines-dir", str(tmp_path / "dlt"), "--no-progress"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert set(loaded(listener.db)) >= acked_before
    listener.start()  # Desk retries what was not acknowledged
    try:
        rest = [c for c in callbacks if c.request_id not in acked_before]
        retry = Sender(listener.url, SDKAPPID, concurrency=16)
        asyncio.run(retry.send(rest))
        assert retry.statuses == Counter({200: len(rest)})
        time.sleep(0.5)
    finally:
        listener.stop()
    second = cli.run([CLI, "run", "--database", str(listener.db), "--api-url", desk,
                      "--pipelines-dir", str(tmp_path / "dlt"), "--no-progress"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert loaded(listener.db) == Counter({c.request_id: 1 for c in callbacks})


# Every crash point on each destination; make test takes each point on one of them, in turn,
# and make test-slow the other half.
CRASHES = ["before:session_events", "after:session_events", "recorded:session_events",
           "retire:"]


@pytest.mark.parametrize("crash, target", [
    pytest.param(crash, destination, id=f"{destination}-{crash}",
                 marks=[] if (n + (destination == "postgres")) % 2 == 0 else pytest.mark.slow)
    for n, crash in enumerate(CRASHES) for destination in ("duckdb", "postgres")],
    indirect=["target"])
def test_job_killed_while_loading_events_loads_each_once(tmp_path, desk, crash, target
                                                        ) -> None:
    spool = target.spool
    receiver = Receiver(ReceiverConfig(SDKAPPID, spool, seal_after_s=0.05))
    callbacks = valid_callbacks(1500, seed=4)
    with serve_in_thread(receiver) as url:
        for part in (callbacks[:700], callbacks[700:]):  # two segments at least
            asyncio.run(Sender(url, SDKAPPID).send(part))
            time.sleep(0.2)
    assert len(list(spool.glob("sealed-*"))) >= 2
    argv = [CLI, "run", *target.argv(), "--api-url", desk, "--pipelines-dir",
            str(tmp_path / "dlt"), "--no-progress"]
    note = tmp_path / "note"
    crashed = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                             env=cli.env(PYTHONPATH=CRASHPOINT, DESK_TEST_CRASH=crash,
                                         DESK_TEST_CRASH_NOTE=str(note), **target.env()))
    assert crashed.returncode == 137, crashed.stderr
    assert note.read_text().strip() == crash
    again = cli.run(argv, cwd=tmp_path, **target.env())
    assert again.returncode == 0, again.stderr
    assert loaded(target) == Counter({c.request_id: 1 for c in callbacks})
    assert not list(spool.iterdir())


# -- the seed from events --------------------------------------------------------------
def test_run_without_seed_polls_every_open_session_and_no_ended_one(tmp_path) -> None:
    pop = Population(PopulationConfig(seed=3, sessions_per_day=1500, agents=5))
    day = pop.config.day_start
    clock = VirtualClock(day + 9 * 3600)
    db = tmp_path / "desk.duckdb"
    sim = SimulatorApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY), model_clock=clock)
    receiver = Receiver(ReceiverConfig(SDKAPPID, spool_dir(db), seal_after_s=0.05))
    pending = plan(pop, Knobs(repeated=0.05, reordered=0.05, seed=2))
    keys = {k.session_id: k for k in pop.session_keys()}
    with serve_in_thread(sim) as api, serve_in_thread(receiver) as listener:
        sender = Sender(listener + "/cb", SDKAPPID)
        for hour in (9.0, 10.25, 11.5, 14.0):
            t = day + hour * 3600
            clock.set(t)
            due = [c for c in pending if c.send_at <= t]
            pending = [c for c in pending if c.send_at > t]
            asyncio.run(sender.send(due))
            while any(spool_dir(db).glob("active-*")):
                time.sleep(0.02)
            row = run_job(db, api, clock=clock)
            open_now = {s for s in keys if pop.state_at(s, t) is not None
                        and pop.segments(s)[0].start >= t - 12 * 3600}
            con = duckdb.connect(str(db), read_only=True)
            polled = {r[0] for r in con.execute(
                "SELECT session_id FROM tencent_desk.session_states WHERE run_id = ?",
                [row["run_id"]]).fetchall()}
            con.close()
            assert polled == open_now, hour
            assert row["n_ended"] == 0 and row["events_unknown"] == 0
    # Arrivals per hour from events equal the truth.
    con = duckdb.connect(str(db), read_only=True)
    assert event_metrics.has_events(con)
    per_hour = event_metrics.events_per_interval(con, interval="1h")
    con.close()
    from_events = {int((t.timestamp() - day) // 3600): n
                   for t, n in zip(per_hour.interval_start, per_hour.began, strict=True)}
    truth = Counter(int((pop.segments(s)[0].start - day) // 3600) for s in keys
                    if pop.segments(s)[0].start <= day + 14 * 3600)
    assert from_events == dict(truth)
    # Readers see the same events in the snapshot the job publishes.
    published = duckdb.connect(str(snapshot.paths(db)[1]), read_only=True)
    assert published.execute("SELECT count(*) FROM tencent_desk.session_events").fetchall() \
        == [(sum(loaded(db).values()),)]
    assert len(event_metrics.events_per_interval(published)) == len(per_hour)
    published.close()
    # Time to an agent, exact: the truth's agent start minus its arrival, per hour.
    served = {s: pop.segments(s) for s in keys if pop.segments(s)[0].start <= day + 14 * 3600}
    to_agent: dict[int, list[float]] = {}
    for segs in served.values():
        agent = [g.start for g in segs if g.state == "agent" and g.start <= day + 14 * 3600]
        if agent:
            to_agent.setdefault(int((segs[0].start - day) // 3600), []).append(
                agent[0] - segs[0].start)
    for t, mean_s in zip(per_hour.interval_start, per_hour.time_to_agent_s, strict=True):
        hour = int((t.timestamp() - day) // 3600)
        if hour in to_agent:
            assert mean_s == pytest.approx(sum(to_agent[hour]) / len(to_agent[hour]), abs=0.01)


def _received(db, population, *events: tuple[str, int, str]) -> VirtualClock:
    """Callbacks (session, ms before 11:00 of the day, event) through a real receiver into
    ``db``'s spool; the virtual clock at 11:00."""
    clock = VirtualClock(population.config.day_start + 11 * 3600)
    now_ms = int(clock.time() * 1000)
    receiver = Receiver(ReceiverConfig(SDKAPPID, spool_dir(db), seal_after_s=0.05))
    with serve_in_thread(receiver) as url:
        asyncio.run(Sender(url, SDKAPPID).send([
            Callback(0, str(k), body(session, now_ms - before_ms, event))
            for k, (session, before_ms, event) in enumerate(events)]))
        time.sleep(0.3)
    return clock


def test_seed_file_adds_to_sessions_from_events(tmp_path, desk, population, target) -> None:
    clock = _received(target.anchor, population,
                      ("from-events-open", 60_000, "SessionBegin"),
                      ("from-events-closed", 90_000, "SessionBegin"),
                      ("from-events-closed", 30_000, "SessionEnd"),
                      ("from-events-old", 13 * 3600_000, "SessionBegin"),
                      ("from-events-odd", 10_000, "Brand.New.Event"))
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id\nfrom-the-seed\n")
    row = run_job(target, desk, seed=str(seed), clock=clock)
    polled = {r[0] for r in target.query("SELECT session_id FROM tencent_desk.session_states")}
    assert polled == {"from-events-open", "from-events-odd", "from-the-seed"}
    assert row["events_loaded"] == 5 and row["events_unknown"] == 1
    assert os.path.basename(row["seed"]) == "seed.csv + sessions from events"


def test_an_empty_seed_beside_events_is_said_and_the_events_asked(tmp_path, desk, population,
                                                                  caplog) -> None:
    """A header alone (an export of what is open, at night): no error, as --seed adds to the
    sessions from events, but one warning line, once silent; a run given no seed (the
    events' file is its seed) says nothing of the kind."""
    db = tmp_path / "desk.duckdb"
    clock = _received(db, population, ("from-events-1", 60_000, "SessionBegin"),
                      ("from-events-2", 30_000, "SessionBegin"))
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id\n")
    caplog.set_level(logging.WARNING)
    row = run_job(db, desk, seed=str(seed), clock=clock)
    with duckdb.connect(str(db), read_only=True) as con:
        polled = {s for (s,) in con.execute(
            "SELECT session_id FROM tencent_desk.session_states").fetchall()}
    assert polled == {"from-events-1", "from-events-2"} and row["status"] == "complete"
    assert [r.getMessage() for r in caplog.records if "no rows" in r.getMessage()] == [
        f"seed {seed} has no rows: this run asks only the sessions known from received "
        "events (2)"]
    caplog.clear()
    row = run_job(db, desk, clock=clock)  # both answered ended: an empty file of events
    assert row["seed"] == "sessions from events" and row["keys"] == 0
    assert [r.getMessage() for r in caplog.records if "no rows" in r.getMessage()] == []


def test_message_content_is_kept_when_the_user_opts_in(tmp_path, desk) -> None:
    db = tmp_path / "desk.duckdb"
    receiver = Receiver(ReceiverConfig(SDKAPPID, spool_dir(db), keep_message_content=True,
                                       seal_after_s=0.05))
    with serve_in_thread(receiver) as url:
        asyncio.run(Sender(url, SDKAPPID).send(valid_callbacks(20)))
        # A 2 MB body sent in chunks (no Content-Length) is cut off at 1 MB too.
        with httpx.Client() as http:
            got = http.post(url, params={"SdkAppid": str(SDKAPPID), "RequestID": "big",
                                         "CallbackCommand": events.CALLBACK_COMMAND},
                            content=(b"x" * 65536 for _ in range(32)))
        assert got.status_code == 413
        time.sleep(0.2)
    run_job(db, desk)
    con = duckdb.connect(str(db), read_only=True)
    kept = con.execute("SELECT count(*) FROM tencent_desk.session_events WHERE "
                       "msg_body LIKE ? AND cloud_custom_data LIKE ?",
                       [f"%{SECRET_TEXT}%", f"%{SECRET_TEXT}%"]).fetchall()
    con.close()
    assert kept == [(20,)]


def spooled(folder: Path) -> list[dict]:
    """Every record in a spool a running receiver writes: listed again when a segment is
    sealed (renamed) between the listing and its reading."""
    while True:
        try:
            return [r for p in folder.iterdir() for r in read_records(p)]
        except FileNotFoundError:
            continue


def test_simulate_posts_its_day_to_a_listening_receiver(tmp_path) -> None:
    listener = Listener(tmp_path)
    pop = Population(PopulationConfig(sessions_per_day=200, seed=7))
    knobs = Knobs(lost=0.05, repeated=0.1, reordered=0.05, delayed=0.05, seed=7)
    expected = {c.request_id for c in plan(pop, knobs)}  # the same plan the command makes
    log = (tmp_path / "simulate.log").open("w")
    sim, _ = cli.start_server(
        [CLI, "simulate", "--sessions", "200", "--seed", "7", "--speed", "36000",
         "--callback-url", listener.url, "--callback-lost", "0.05", "--callback-repeated",
         "0.1", "--callback-reordered", "0.05", "--callback-delayed", "0.05"], log=log)
    stored: list[dict] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stored = spooled(spool_dir(listener.db))
            if {r["request_id"] for r in stored} == expected:
                break
            time.sleep(0.5)
    finally:
        cli.stop_server(sim)
        log.close()
        listener.stop()
    assert (sim.returncode, listener.proc.returncode) == (0, 0)  # SIGTERM: a clean stop
    assert {r["request_id"] for r in stored} == expected
    assert len(stored) == len(expected)  # repeats dropped
    assert {r["session_id"] for r in stored} <= {k.session_id for k in pop.session_keys()}
    counts = [line for line in listener.log_path.read_text().splitlines()
              if "callbacks:" in line][-1]
    assert f"{len(expected)} accepted" in counts and "0 rejected" in counts


def test_job_and_receiver_never_wait_for_each_other(tmp_path, desk) -> None:
    """The job runs (CLI, its lock held) while a sender keeps posting to the receiver: the
    receiver keeps acknowledging meanwhile; the next run loads the rest, each event once."""
    db = tmp_path / "desk.duckdb"
    receiver = Receiver(ReceiverConfig(SDKAPPID, spool_dir(db), seal_after_s=0.05))
    argv = [CLI, "run", "--database", str(db), "--api-url", desk, "--pipelines-dir",
            str(tmp_path / "dlt"), "--no-progress"]
    sent: list[Callback] = []
    stop = threading.Event()
    with serve_in_thread(receiver) as url:
        sender = Sender(url, SDKAPPID, concurrency=4)

        def keep_sending() -> None:
            for k in range(1000):
                if stop.is_set():
                    return
                batch = valid_callbacks(100, seed=100 + k)
                asyncio.run(sender.send(batch))
                sent.extend(batch)

        posting = threading.Thread(target=keep_sending)
        posting.start()
        while len(sender.acknowledged) < 300:
            time.sleep(0.01)
        acked_at_start = len(sender.acknowledged)
        during = cli.run(argv, cwd=tmp_path)
        acked_meanwhile = len(sender.acknowledged) - acked_at_start
        stop.set()
        posting.join()
        time.sleep(0.2)
    assert during.returncode == 0, during.stderr
    assert acked_meanwhile > 100, "the receiver kept acknowledging while the job ran"
    assert sender.statuses == Counter({200: len(sent)})
    after = cli.run(argv, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert loaded(db) == Counter({c.request_id: 1 for c in sent})


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10)
_FIELDS = ("SessionId", "EventTime", "Event", "AgentId", "ClientUserId", "CustomerServiceId",
           "MsgBody", "CloudCustomData", "IsContactUser", "SatisfactionSelected",
           "ForwardFromAgentId", "ChannelType", "MsgKey", "CallbackCommand")


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[str, httpx.Client]]:
    """One receiver for every example (hypothesis calls the test many times)."""
    receiver = Receiver(ReceiverConfig(SDKAPPID, tmp_path_factory.mktemp("fuzz") / "spool"))
    with serve_in_thread(receiver) as url, httpx.Client() as http:
        yield url, http


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(_FIELDS), _JSONISH, max_size=8),
       raw=st.binary(max_size=300), as_json=st.booleans())
def test_no_body_gets_a_5xx(fuzz_target, doc, raw, as_json) -> None:
    """Whatever a sender posts, the answer is 200 or a 4xx, never a 5xx."""
    url, http = fuzz_target
    content = json.dumps(doc).encode() if as_json else raw
    params = {"SdkAppid": str(SDKAPPID), "CallbackCommand": events.CALLBACK_COMMAND,
              "RequestID": hashlib.sha1(content).hexdigest()}
    got = http.post(url, params=params, content=content,
                    headers={"Content-Type": "application/json"})
    assert got.status_code == 200 or 400 <= got.status_code < 500, got.text


@pytest.mark.check
def test_the_command_line_loads_no_analysis_for_the_receiver() -> None:
    """Building ``desk-sessions``' command line (every command does, ``listen`` and ``run``
    too) loads neither pandas nor NumPy: the plan's options once brought them into the
    receiver, 176 MB against 82 MB."""
    code = ("from tencent_desk.cli import parser\n"
            "parser()\n"
            "from tencent_desk.intake import listen, receiver\n")
    assert cli.loaded_after(code, ("pandas", "numpy", "pyarrow", "matplotlib")) == []
