"""The real CLI against a second implementation of the API that shares no code with ours
(``benchmarks/independent_api.py``: aiohttp.web, its own UserSig check, fixed-second limit
windows), checked against a reference client built from the official signer
(``tls-sig-api-v2``) and httpx: what works with our simulator must work with it too."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator

import duckdb
import httpx
import pytest
from tencent_desk.api.states import normalize
from TLSSigAPIv2 import TLSSigAPIv2

from .support import cli
from .support.harness import ADMIN, DATASET, SDKAPPID, SECRET_KEY

SERVER = cli.ROOT / "benchmarks" / "independent_api.py"


@pytest.fixture(scope="module")
def independent() -> Iterator[str]:
    """The independent server on a free loopback port, 150 calls per calendar second."""
    proc, port = cli.start_server([sys.executable, str(SERVER), "--rate-limit", "150",
                                   "--latency-ms", "5"])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        cli.stop_server(proc)


def reference_answers(url: str, bodies: list[dict]) -> list[dict]:
    """One call at a time, signed by Tencent's own signer: no code of this project."""
    sig = TLSSigAPIv2(SDKAPPID, SECRET_KEY).gen_sig(ADMIN)
    out = []
    with httpx.Client(trust_env=False) as http:
        for n, body in enumerate(bodies):
            while True:
                answer = http.post(
                    f"{url}/v4/desk_http_svc/get_session_state",
                    params={"sdkappid": SDKAPPID, "identifier": ADMIN, "usersig": sig,
                            "random": n, "contenttype": "json"}, json=body).json()
                if answer["ErrorCode"] != 60007:
                    break
                time.sleep(0.2)
            out.append(answer)
    return out


def test_every_key_lands_as_the_independent_server_answers_it(tmp_path, independent):
    sessions = [str(uuid.UUID(int=n)) for n in range(1, 301)]
    pairs = [(f"user{n}", "@cs_desk") for n in range(20)]
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id,client_user_id,customer_service_id\n"
                    + "".join(f"{s},,\n" for s in sessions)
                    + "".join(f",{u},{c}\n" for u, c in pairs))
    db = tmp_path / "desk.duckdb"
    # Twice the server's limit: the client must find it, and lose nothing.
    argv = [cli.CLI, "run", "--seed", str(seed), "--database", str(db), "--api-url",
            independent, "--pipelines-dir", str(tmp_path / "dlt"), "--max-qps", "300",
            "--no-progress"]
    done = cli.run(argv, tmp_path)
    assert done.returncode == 0, done.stderr

    bodies = [{"SessionId": s} for s in sessions] + [
        {"ClientUserId": u, "CustomerServiceId": c} for u, c in pairs]
    expected = {}
    for body, answer in zip(bodies, reference_answers(independent, bodies), strict=True):
        key = body.get("SessionId") or (body["ClientUserId"], body["CustomerServiceId"])
        if answer["ErrorCode"] == 141005:
            expected[key] = ("ended", None, "")
        else:
            expected[key] = (normalize(answer["CurrentState"]), answer["CurrentState"],
                             answer["AgentId"])
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            f"SELECT key_type, session_id, client_user_id, customer_service_id, state, "
            f"raw_state, coalesce(agent_id, ''), request_id FROM {DATASET}.session_states"
        ).fetchall()
        throttled = con.execute(f"SELECT throttled FROM {DATASET}.runs").fetchall()
    finally:
        con.close()
    got = {(r[1] if r[0] == "session" else (r[2], r[3])): (r[4], r[5], r[6]) for r in rows}
    assert len(rows) == len(expected) and got == expected
    assert all(r[7] for r in rows)  # the server's RequestId is kept on every row
    assert {s for s, _, _ in expected.values()} >= {"queuing", "agent", "ended"}
    assert throttled[0][0] > 0  # it did meet the limit


def test_a_wrong_secret_key_stops_with_one_line(tmp_path, independent):
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id\nabc\n")
    argv = cli.run_argv(seed, tmp_path / "desk.duckdb", independent, tmp_path / "dlt")
    done = cli.run(argv, tmp_path, SOURCES__TENCENT_DESK__SECRET_KEY="0" * 64)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    (line,) = cli.error_lines(done.stderr)
    assert "70009" in line and "secret_key" in line
    assert "0" * 64 not in done.stderr + done.stdout
