"""A recording simulator, seeds and database checks shared by the reliability tests.

:class:`RecordingApp` is the real :class:`SimulatorApp` that also notes, per key, every
call it saw and what the client must have concluded from it (the answer run through the
client's own ``parse``; ``TIMEOUT``/``CONNECTION`` where no answer was sent). A run's rows
can then be checked key by key: one row, the conclusion of the last call, as many
attempts as calls, and the true state wherever a faithful answer came.
"""

from __future__ import annotations

import contextlib
import csv
import json
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from tencent_desk.api import codes, states
from tencent_desk.api.client import Key, parse
from tencent_desk.core.clock import VirtualClock
from tencent_desk.job.rows import state_of
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)

SDKAPPID = 1400765432
ADMIN = "administrator"
# Distinctive, so that a search of every byte written finds it if it leaks.
SECRET_KEY = "c0ffee5ecre7-d3sk-k3y-9b1e7f4a2d6c8e0b3a5f7d9c1e2b4a6f"
DATASET = "tencent_desk"
MODEL_HOUR = 11.0  # where the model clock stands: late morning, many sessions live


def population(seed: int = 11, sessions: int = 2000) -> Population:
    return Population(PopulationConfig(seed=seed, sessions_per_day=sessions))


def key_of_body(body: bytes) -> tuple[str, ...] | None:
    """The key a request asked about, as ('s', id) or ('p', user, cs)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("SessionId"):
        return ("s", doc["SessionId"])
    return ("p", doc.get("ClientUserId"), doc.get("CustomerServiceId"))


def key_of_row(session_id: str | None, user: str | None, cs: str | None,
               key_type: str) -> tuple[str, ...]:
    return ("s", session_id) if key_type == "session" else ("p", user, cs)


@dataclass
class Call:
    fault: str | None
    code: int          # what the client concludes from this call alone
    state: str         # the row state that conclusion gives
    at: float          # time.monotonic() when it came in


class _Receive:
    """Wraps ASGI ``receive`` to keep the request body; keeps ``__self__`` (the drop fault
    reaches the transport through it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.__self__ = getattr(inner, "__self__", None)
        self.body = b""
        self.fault: str | None = None
        self.read = False
        self.more = True

    async def __call__(self) -> dict[str, Any]:
        message = await self.inner()
        self.read = True
        if message["type"] == "http.request":
            self.body += message.get("body", b"")
            self.more = message.get("more_body", False)
        return message


class RecordingApp(SimulatorApp):
    """The simulator, noting every call that reached the API check per key."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: dict[tuple[str, ...], list[Call]] = defaultdict(list)
        self._calls_lock = threading.Lock()
        self.sigs: Counter[str] = Counter()  # every UserSig sent, with its count
        # called (in the server's thread) with the number of the call about to be handled
        self.on_call: Any = None
        self._n_calls = 0
        self._in_flight = 0  # handlers running: a slow answer is noted when it ends

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until every call that came in has been noted (slow answers included)."""
        deadline = time.monotonic() + timeout
        while self._in_flight:
            assert time.monotonic() < deadline, f"{self._in_flight} calls still running"
            time.sleep(0.01)

    async def _handle(self, scope: Any, receive: Any) -> Any:
        self._in_flight += 1  # the server's one thread: no lock needed
        try:
            return await self._noted(scope, receive)
        finally:
            self._in_flight -= 1

    async def _noted(self, scope: Any, receive: Any) -> Any:
        self._n_calls += 1
        if self.on_call is not None:
            self.on_call(self._n_calls)
        rec = _Receive(receive)
        sig = _query_param(scope.get("query_string", b""), "usersig")
        if sig:
            self.sigs[sig] += 1
        started = time.monotonic()  # calls of a key are ordered by when they came in
        answer = await super()._handle(scope, rec)
        if answer is not None and not rec.read:
            # refused before the body was read (a UserSig check): read it to name the key
            while (await rec())["type"] == "http.request" and rec.more:
                pass
        key = key_of_body(rec.body)
        if key is None:
            return answer
        if rec.fault == "slow":  # answered (if ever) after slow_s > the client's timeout
            call = Call("slow", codes.TIMEOUT, states.ERROR, started)
        elif rec.fault == "drop" or answer is None:
            call = Call(rec.fault, codes.CONNECTION, states.ERROR, started)
        else:
            status, body, _ctype, fault = answer
            k = Key(*key[1:]) if key[0] == "s" else Key(None, *key[1:])
            parsed = parse(k, status, body)
            call = Call(fault, parsed.code, state_of(parsed), started)
        with self._calls_lock:
            calls = self.calls[key]
            calls.append(call)
            calls.sort(key=lambda c: c.at)
        return answer

    async def _inject(self, fault: str, doc: dict, receive: Any) -> Any:
        if isinstance(receive, _Receive):  # note the fault even when nothing is sent
            receive.fault = fault
        return await super()._inject(fault, doc, receive)


def _query_param(raw: bytes, name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(raw.decode("latin-1")).get(name)
    return values[0] if values else None


@contextlib.contextmanager
def serve(pop: Population, *, hour: float = MODEL_HOUR, auth_clock: Any = None,
          limit_clock: Any = None, **fields: Any) -> Iterator[tuple[RecordingApp, str]]:
    """A recording simulator on loopback whose model clock stands still at ``hour``."""
    fields.setdefault("seed", 5)
    config = SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY, **fields)
    clock = VirtualClock(pop.config.day_start + hour * 3600)
    app = RecordingApp(pop, config, model_clock=clock, auth_clock=auth_clock,
                       limit_clock=limit_clock)
    with serve_in_thread(app) as url:
        yield app, url


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------- seeds


@dataclass
class SeedKeys:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def keys(self) -> set[tuple[str, ...]]:
        return {("s", s) if s else ("p", u, c) for s, u, c in self.rows}


def pick_keys(pop: Population, t: float, *, live: int, other: int, pairs: int,
              seed: int = 1) -> SeedKeys:
    """Sessions in progress at ``t``, others (ended or not begun), and (user, account)
    pairs, half of them with a session in progress."""
    import random

    rng = random.Random(seed)
    keys = pop.session_keys()
    in_progress = [k for k in keys if pop.state_at(k.session_id, t) is not None]
    rest = [k for k in keys if pop.state_at(k.session_id, t) is None]
    chosen = rng.sample(in_progress, min(live, len(in_progress))) + rng.sample(rest, other)
    out = SeedKeys([(k.session_id, k.client_user_id, k.customer_service_id) for k in chosen])
    pair_keys = rng.sample(in_progress, min(pairs // 2, len(in_progress))) + rng.sample(
        rest, pairs - min(pairs // 2, len(in_progress)))
    seen = set()
    for k in pair_keys:
        if (k.client_user_id, k.customer_service_id) not in seen:
            seen.add((k.client_user_id, k.customer_service_id))
            out.rows.append(("", k.client_user_id, k.customer_service_id))
    return out


def write_seed(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(("session_id", "client_user_id", "customer_service_id"))
        w.writerows(rows)
    return path


# --------------------------------------------------------------------- the database


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def rows_of_run(db: Path, run_id: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(f"SELECT * FROM {DATASET}.session_states WHERE run_id = ?", [run_id])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


@dataclass
class Figures:
    """What a faulty run came to, for the report."""

    keys: int = 0
    rows: int = 0
    lost: int = 0
    doubled: int = 0
    answered: int = 0
    errors: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    longest_recovery_s: float = 0.0
    most_attempts: int = 0


def check_run(db: Path, run_id: str, seed: SeedKeys, app: RecordingApp, pop: Population,
              t: float, *, extra_attempts: int = 0) -> Figures:
    """Every seed key has exactly one row; each row is what the last call for its key
    said (the true state where that was a faithful answer); attempts add up.

    ``extra_attempts``: calls per key that may not have reached the simulator (the main
    domain down)."""
    return check_rows(rows_of_run(db, run_id), seed, app, pop, t,
                      extra_attempts=extra_attempts)


def check_rows(rows: list[dict[str, Any]], seed: SeedKeys, app: RecordingApp,
               pop: Population, t: float, *, extra_attempts: int = 0) -> Figures:
    """:func:`check_run` on rows however they were made."""
    app.settle()
    by_key: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_key[key_of_row(r["session_id"] if r["key_type"] == "session" else None,
                          r["client_user_id"], r["customer_service_id"], r["key_type"])
               ].append(r)
    # a pair row carries the answered session id; a session row its own
    for r in rows:
        if r["key_type"] == "pair":
            assert r["client_user_id"] and r["customer_service_id"]
    wanted = seed.keys
    fig = Figures(keys=len(wanted), rows=len(rows), faults=Counter(app.stats.faults))
    fig.lost = len(wanted - set(by_key))
    fig.doubled = sum(len(v) - 1 for v in by_key.values())
    assert set(by_key) == wanted, (
        f"lost {sorted(wanted - set(by_key))[:3]}, stray {sorted(set(by_key) - wanted)[:3]}")
    assert fig.doubled == 0, [v for v in by_key.values() if len(v) > 1][:2]
    for key, (row,) in by_key.items():
        calls = app.calls.get(key, [])
        assert calls, f"{key} has a row but the simulator never saw it"
        last = calls[-1]
        assert extra_attempts >= 0
        assert len(calls) <= row["attempts"] <= len(calls) + extra_attempts, (key, row, calls)
        assert row["error_code"] == last.code, (key, row, calls)
        assert row["state"] == last.state, (key, row, calls)
        fig.most_attempts = max(fig.most_attempts, row["attempts"])
        if row["state"] == states.ERROR:
            fig.errors[row["error_code"]] += 1
            assert row["error_code"] not in (0, codes.SESSION_ENDED)
            continue
        fig.answered += 1
        if len(calls) > 1:
            fig.longest_recovery_s = max(fig.longest_recovery_s, last.at - calls[0].at)
        if last.fault is not None:
            continue  # a chaos answer that still parsed: its own test checks it
        check_truth(key, row, pop, t)
    return fig


def check_truth(key: tuple[str, ...], row: dict[str, Any], pop: Population,
                t: float) -> None:
    """A row from a faithful answer shows the population's state at model time ``t``."""
    if key[0] == "s":
        seg = pop.state_at(key[1], t)
        if seg is None:
            assert (row["state"], row["error_code"]) == (states.ENDED, codes.SESSION_ENDED)
            return
    else:
        seg = pop.current_session(key[1], key[2], t)
        if seg is None:
            assert row["state"] == states.NOT_IN_SESSION and row["error_code"] == 0, row
            return
    assert row["error_code"] == 0, row
    assert row["state"] == seg.state, (key, row, seg)
    assert row["session_id"] == seg.session_id, (key, row, seg)
    assert row["agent_id"] == (seg.agent_id if seg.state in states.WITH_AGENT else None)


def truth_state(key: tuple[str, ...], pop: Population, t: float) -> str:
    """The state a faithful answer gives for ``key`` at model time ``t``."""
    if key[0] == "s":
        seg = pop.state_at(key[1], t)
        return seg.state if seg else states.ENDED
    seg = pop.current_session(key[1], key[2], t)
    return seg.state if seg else states.NOT_IN_SESSION


def configured_transport() -> str:
    """The transport of dlt's config (what a run would take; the ``transport`` fixture sets
    it), else the default."""
    from tencent_desk.core import apps, settings

    return str(apps.setting("transport") or settings.DEFAULT_TRANSPORT)


def rows_via_client(url: str, seed: SeedKeys, t: float, **config: Any) -> tuple[
        list[dict[str, Any]], Any]:
    """The rows a run would load, made by the real client (over loopback HTTP) and the
    real row builder, without dlt: for the many small fault cases. Returns the rows and
    the client's stats."""
    import asyncio

    from tencent_desk.api.client import ClientConfig, DeskClient
    from tencent_desk.api.usersig import UserSigProvider
    from tencent_desk.job.rows import to_table

    keys = [Key(s or None, u, c) if s else Key(None, u, c) for s, u, c in seed.rows]
    cfg = ClientConfig(SDKAPPID, ADMIN, (url,), **{"transport": configured_transport(), **config})
    client = DeskClient(cfg, UserSigProvider(SDKAPPID, ADMIN, secret_key=SECRET_KEY),
                        clock=VirtualClock(t))

    async def go() -> list:
        async with client:
            return await client.get_many(keys)

    answers = asyncio.run(go())
    return to_table(answers, "run", Counter()).to_pylist(), client.stats
