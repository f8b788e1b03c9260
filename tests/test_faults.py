"""Faults: the real job (client, poller, dlt, DuckDB) against the simulator over real
loopback HTTP, with every fault kind alone and all mixed, the main domain down, a UserSig
expiring mid-run, and chaos answers.

The simulator records every call per key (``tests/support/harness.py``), so each row is
checked against what its key's last call said: one row per key, the true state where a
faithful answer came, ``error`` with the last call's code where none did, and as many
attempts as calls. Model time stands still, so the truth is ``population.state_at(t)``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import tencent_desk.job.source as source_module
from tencent_desk.api import codes, states
from tencent_desk.api.client import ClientConfig
from tencent_desk.api.usersig import DEFAULT_EXPIRE, UserSigProvider
from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.errors import JobError
from tencent_desk.run.exits import EXIT_OUTAGE
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import FAULT_KINDS

from .support import harness
from .support.harness import ADMIN, SDKAPPID, SECRET_KEY, SeedKeys

# Every case on each HTTP client a user can choose (tests/conftest.py TRANSPORTS).
pytestmark = pytest.mark.usefixtures("transport")

MAX_ATTEMPTS = 4
MAX_THROTTLED = 6
TIMEOUT_S = 3.0  # a normal answer on a loaded machine must not time out (httpx: ~40x the
# CPU per call of aiohttp, docs/transports.md; an attempt timed out before it was sent is
# one the simulator never saw)
SLOW_S = 4.0  # past the client's timeout
# Where no answer is slow on purpose: an attempt timed out under heavy load (coverage, a
# load average of 6) never reaches the simulator's log, and its row counts one attempt more
# than the simulator saw.
PATIENT_S = 30.0


@pytest.fixture(scope="module")
def pop():
    return harness.population()


@pytest.fixture(scope="module")
def t(pop) -> float:
    return pop.config.day_start + harness.MODEL_HOUR * 3600


@pytest.fixture(scope="module")
def seed_keys(pop, t) -> SeedKeys:
    return harness.pick_keys(pop, t, live=120, other=120, pairs=40)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The source builds its ClientConfig with production backoff (0.5 s .. 20 s); tests
    want the same logic, faster."""
    monkeypatch.setattr(source_module, "ClientConfig", functools.partial(
        ClientConfig, backoff_base=0.01, backoff_max=0.05, max_attempts=MAX_ATTEMPTS,
        max_throttled_attempts=MAX_THROTTLED))


def run_job(tmp_path: Path, seed_keys: SeedKeys, url: str, t: float, **over: Any
            ) -> tuple[dict[str, Any], Path]:
    seed = harness.write_seed(tmp_path / "seed.csv", seed_keys.rows)
    # These cases check rows, not alerting: no exit for too many errors (test_outage.py).
    overrides = {"api_url": url, "sdkappid": SDKAPPID, "identifier": ADMIN,
                 "secret_key": SECRET_KEY, "max_qps": 5000, "max_concurrency": 16,
                 "timeout": TIMEOUT_S, "max_error_share": 1.0, **over}
    db = tmp_path / "desk.duckdb"
    row = run(RunOptions(seed=str(seed), database=db, pipelines_dir=str(tmp_path / "dlt"),
                         overrides=overrides, progress=False), clock=VirtualClock(t))
    return row, db


def report(name: str, fig: harness.Figures, row: dict[str, Any]) -> None:
    """Figures for the reliability report: ``DESK_FIGURES=file`` collects them."""
    out = os.environ.get("DESK_FIGURES")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"case": name, "keys": fig.keys, "rows": fig.rows,
                                "lost": fig.lost, "doubled": fig.doubled,
                                "answered": fig.answered, "errors": dict(fig.errors),
                                "faults": dict(fig.faults), "calls": row["calls"],
                                "retries": row["retries"], "throttled": row["throttled"],
                                "renewed_sigs": row["renewed_sigs"],
                                "fallbacks": row["fallbacks"],
                                "most_attempts": fig.most_attempts,
                                "longest_recovery_s": round(fig.longest_recovery_s, 3)})
                    + "\n")


KINDS = ("internal_error", "throttle", "http_502", "http_503", "truncated", "non_json",
         "slow", "drop")
# Where the client's conclusion of one faulty call comes from.
FAULT_CODE = {"internal_error": 141002, "throttle": 60007, "http_502": -1502,
              "http_503": -1503, "truncated": codes.BAD_BODY, "non_json": codes.BAD_BODY,
              "slow": codes.TIMEOUT, "drop": codes.CONNECTION}


CLIENT_CONFIG = dict(max_qps=5000, max_concurrency=16, timeout=TIMEOUT_S, backoff_base=0.01,
                     backoff_max=0.05, max_attempts=MAX_ATTEMPTS,
                     max_throttled_attempts=MAX_THROTTLED)


@pytest.mark.parametrize("path", ["client", pytest.param("job", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_alone_loses_no_key(tmp_path, pop, t, seed_keys, kind, path):
    """A fifth of the calls meet the fault. ``client``: the real client and row builder
    over loopback, rows checked in memory (fast); ``job``: the whole job into DuckDB."""
    with harness.serve(pop, slow_s=SLOW_S, **{kind: 0.2}) as (app, url):
        if path == "job":
            row, db = run_job(tmp_path, seed_keys, url, t)
            fig = harness.check_run(db, row["run_id"], seed_keys, app, pop, t)
            n_calls, n_retries, n_throttled = row["calls"], row["retries"], row["throttled"]
        else:
            rows, stats = harness.rows_via_client(url, seed_keys, t, **CLIENT_CONFIG)
            fig = harness.check_rows(rows, seed_keys, app, pop, t)
            n_calls, n_retries, n_throttled = stats.calls, stats.retries, stats.throttled
            row = {"calls": n_calls, "retries": n_retries, "throttled": n_throttled,
                   "renewed_sigs": stats.renewed_sigs, "fallbacks": stats.fallbacks}
    report(f"{kind}/{path}", fig, row)
    assert fig.faults[kind] > 0 and set(fig.faults) == {kind}
    # every call that met the fault was concluded as that fault's code
    seen = Counter(c.code for calls in app.calls.values() for c in calls if c.fault)
    assert set(seen) == {FAULT_CODE[kind]}
    assert sum(seen.values()) == fig.faults[kind]
    calls = sum(len(v) for v in app.calls.values())
    assert fig.rows == len(seed_keys.keys)
    assert (n_calls, n_retries) == (calls, calls - len(seed_keys.keys))
    if kind == "throttle":
        assert n_throttled == fig.faults[kind]


def test_all_faults_mixed_lose_no_key(tmp_path, pop, t, seed_keys):
    shares = {k: 0.02 for k in KINDS}  # 16 % of calls, two percent each
    with harness.serve(pop, slow_s=SLOW_S, **shares) as (app, url):
        row, db = run_job(tmp_path, seed_keys, url, t)
        fig = harness.check_run(db, row["run_id"], seed_keys, app, pop, t)
    report("mixed", fig, row)
    assert set(fig.faults) == set(KINDS)
    assert row["status"] == "complete" and row["rows"] == len(seed_keys.keys)


FAST_NEVER = ("drop",)


@pytest.mark.parametrize("kind", [k if k in FAST_NEVER else pytest.param(
    k, marks=pytest.mark.slow) for k in KINDS])
def test_a_key_never_answered_is_an_error_row_with_the_fault_code(tmp_path, pop, t,
                                                                  seed_keys, kind):
    """The fault on every call: each row is ``error`` with that fault's code, after the
    allowed attempts, and says what happened. The run completes when the API answered
    (badly); when no call reached it (a gateway error, a drop, a timeout) it is an outage,
    loaded all the same (all keys were asked before it was noticed)."""
    few = SeedKeys(seed_keys.rows[:8] + seed_keys.rows[-4:])
    outage = not codes.reached_api(FAULT_CODE[kind])
    with harness.serve(pop, slow_s=SLOW_S, **{kind: 1.0}) as (app, url):
        try:
            row, db = run_job(tmp_path, few, url, t)
        except JobError as exc:
            assert outage and exc.exit_code == EXIT_OUTAGE, exc
            row, db = exc.row, tmp_path / "desk.duckdb"
        # a call given up in flight at the stop counts, whether or not it reached the server
        fig = harness.check_run(db, row["run_id"], few, app, pop, t,
                                extra_attempts=1 if outage else 0)
    assert fig.answered == 0 and fig.errors == Counter({FAULT_CODE[kind]: len(few.keys)})
    rows = harness.rows_of_run(db, row["run_id"])
    limit = MAX_THROTTLED if kind == "throttle" else MAX_ATTEMPTS
    # an outage noticed early (slow answers: 5 s of silence) cuts the retries short
    assert {r["attempts"] for r in rows} == {limit} or (outage and all(
        1 <= r["attempts"] <= limit for r in rows))
    info = {r["error_info"] for r in rows}
    if kind == "slow":
        assert info == {f"timed out after {TIMEOUT_S:g}s"}
    else:
        assert not any("timed out" in i for i in info), info
    assert row["status"] == ("outage" if outage else "complete")
    assert row["errors"] == len(few.keys) and row["not_asked"] == 0
    assert harness.query(db, "SELECT status FROM tencent_desk.runs") == [(row["status"],)]


@pytest.mark.slow
def test_a_throttle_storm_is_ridden_out(tmp_path, pop, t, seed_keys):
    """60007 on a third of the calls: throttled calls are retried (the limiter slows
    down) without using up the failure budget."""
    few = SeedKeys(seed_keys.rows[:120])
    with harness.serve(pop, throttle=0.35) as (app, url):
        row, db = run_job(tmp_path, few, url, t)
        fig = harness.check_run(db, row["run_id"], few, app, pop, t)
    report("throttle_storm", fig, row)
    assert row["throttled"] == fig.faults["throttle"] > 20
    # only a key throttled on every one of its calls can end in 60007
    assert set(fig.errors) <= {60007}
    rows = harness.rows_of_run(db, row["run_id"])
    assert all(r["attempts"] == MAX_THROTTLED for r in rows if r["error_code"] == 60007)


@pytest.mark.slow
def test_the_simulators_own_rate_limit_is_met_by_slowing_down(tmp_path, pop, t, seed_keys):
    """A server admitting 40 calls per sliding second, a client configured for 100: the
    adaptive limiter settles below the server's limit; every key is answered."""
    few = SeedKeys(seed_keys.rows[:100])
    with harness.serve(pop, rate_limit=40) as (app, url):
        row, db = run_job(tmp_path, few, url, t, max_qps=100, max_concurrency=8)
        fig = harness.check_run(db, row["run_id"], few, app, pop, t)
    report("rate_limit_40", fig, row)
    assert fig.errors == Counter() and fig.answered == len(few.keys)
    assert app.stats.max_in_window(1.0) <= 40


def test_the_backup_domain_takes_over_when_the_main_is_unreachable(tmp_path, pop, t,
                                                                   seed_keys):
    dead = f"http://127.0.0.1:{harness.closed_port()}"
    with harness.serve(pop, internal_error=0.1) as (app, url):
        row, db = run_job(tmp_path, seed_keys, dead, t, backup_url=url)
        # the first calls (up to max_concurrency of them) met the dead main domain
        fig = harness.check_run(db, row["run_id"], seed_keys, app, pop, t, extra_attempts=1)
    report("main_domain_down", fig, row)
    assert row["fallbacks"] == 1
    assert fig.answered >= len(seed_keys.keys) - 2
    assert row["api_host"].endswith(dead.rsplit(":", 1)[1])  # the configured main domain


def test_the_backup_domain_takes_over_when_the_main_swallows_connections(
        tmp_path, pop, t, seed_keys):
    """A main domain whose packets vanish (no refusal, no answer) must also hand over to
    the backup, not time out every key on it. A listening socket that never accepts and
    whose backlog is full makes the kernel drop new SYNs: a black hole on loopback."""
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue; later connects hang in SYN_SENT
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(hole.getsockname())
            fillers.append(s)
        dead = f"http://127.0.0.1:{hole.getsockname()[1]}"
        few = SeedKeys(seed_keys.rows[:60])
        with harness.serve(pop) as (app, url):
            row, db = run_job(tmp_path, few, dead, t, backup_url=url, max_concurrency=4)
            fig = harness.check_run(db, row["run_id"], few, app, pop, t,
                                    extra_attempts=MAX_ATTEMPTS)
    finally:
        for s in fillers:
            s.close()
        hole.close()
    report("main_domain_black_hole", fig, row)
    assert row["fallbacks"] == 1
    assert fig.answered == len(few.keys)


class SharedTime:
    """Wall time with an offset both sides see: the client's signer and the simulator's
    UserSig check. The simulator's reads are counted; at the ``jump_at``-th the offset
    jumps past the UserSig lifetime, with calls in flight carrying the old sig."""

    def __init__(self, jump_at: int, jump_s: float) -> None:
        self.offset = 0.0
        self._reads = 0
        self._jump_at, self._jump_s = jump_at, jump_s

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - not used to pace
        raise AssertionError("not a pacing clock")

    def server_clock(self) -> Any:
        shared = self

        class Auth:
            def time(self) -> float:
                shared._reads += 1
                if shared._reads == shared._jump_at:
                    shared.offset += shared._jump_s
                return shared.time()

        return Auth()


@pytest.mark.parametrize("concurrency", [pytest.param(1, marks=pytest.mark.slow), 16])
def test_a_usersig_expiring_mid_run_is_renewed_once(tmp_path, pop, t, seed_keys,
                                                      monkeypatch, concurrency):
    clock = SharedTime(jump_at=60, jump_s=DEFAULT_EXPIRE + 600)
    made: list[UserSigProvider] = []

    def provider(*args: Any, **kwargs: Any) -> UserSigProvider:
        made.append(UserSigProvider(*args, wall=clock.time, **kwargs))
        return made[-1]

    monkeypatch.setattr(source_module, "UserSigProvider", provider)
    few = SeedKeys(seed_keys.rows[:150])
    with harness.serve(pop, auth_clock=clock.server_clock()) as (app, url):
        row, db = run_job(tmp_path, few, url, t, max_concurrency=concurrency,
                          timeout=PATIENT_S)
        fig = harness.check_run(db, row["run_id"], few, app, pop, t)
    report(f"usersig_expired_c{concurrency}", fig, row)
    expired = sum(1 for calls in app.calls.values() for c in calls if c.code == 70001)
    assert expired >= 1 and clock.offset > 0
    # renewed once: one sig before the jump, one after (minted when the client saw its
    # clock jump, or on the first 70001, whichever came first), however many calls were
    # in flight with the old one
    assert len(app.sigs) == 2, app.sigs
    assert row["renewed_sigs"] <= 1 and len(made) == 1
    assert fig.errors == Counter() and fig.answered == len(few.keys)


def test_chaos_answers_become_error_or_unknown_rows_and_the_run_finishes(
        tmp_path, pop, t, seed_keys):
    """Every answer a random broken shape: non-JSON, nested past the parser's stack, 1 MB,
    wrong types, missing fields, unknown states and codes. No row claims a state the
    population was not in; the run completes."""
    with harness.serve(pop, chaos=1.0) as (app, url):
        row, db = run_job(tmp_path, seed_keys, url, t, timeout=PATIENT_S)
        fig = harness.check_run(db, row["run_id"], seed_keys, app, pop, t)
    report("chaos", fig, row)
    assert row["status"] == "complete"
    assert set(app.stats.chaos) >= {"deep_nesting", "huge", "not_object", "invalid_utf8"}
    rows = harness.rows_of_run(db, row["run_id"])
    by_state = Counter(r["state"] for r in rows)
    # Which key meets which shape depends on the order calls interleave, so only that
    # broken shapes did surface as error/unknown rows is asserted, not how many.
    assert by_state[states.ERROR] > 0 and by_state[states.UNKNOWN] > 0
    for r in rows:
        key = harness.key_of_row(r["session_id"], r["client_user_id"],
                                 r["customer_service_id"], r["key_type"])
        if r["state"] not in (states.ERROR, states.UNKNOWN):
            # a broken shape that still carried a usable state: it must be the true one
            truth = harness.truth_state(key, pop, t)
            assert r["state"] == truth, (r, truth)


@pytest.mark.slow
def test_chaos_mixed_with_faithful_answers(tmp_path, pop, t, seed_keys):
    with harness.serve(pop, chaos=0.15, drop=0.03, slow=0.02, slow_s=SLOW_S) as (app, url):
        row, db = run_job(tmp_path, seed_keys, url, t)
        fig = harness.check_run(db, row["run_id"], seed_keys, app, pop, t)
    report("chaos_15pct", fig, row)
    assert row["status"] == "complete" and fig.lost == 0


def test_fault_kinds_cover_the_simulator():
    assert set(KINDS) | {"chaos"} == set(FAULT_KINDS)
